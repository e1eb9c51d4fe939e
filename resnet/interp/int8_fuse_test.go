package interp_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

// Each int8 residual ADD of a ResNet runs in the output stage of the
// convolution before it where the kernel family has that path
// (fast.Conv.FuseAdd), the stem's PAD is read through by the max pool after
// it on every family, and every output byte is the unfused program's
// (Options.KeepAll fuses nothing) and the reference kernels': bottleneck
// blocks with projection shortcuts (ResNet-50) and basic blocks
// (ResNet-20), one and two threads, both arithmetics.
func TestInt8ResNetFusesAddsAndThePoolPadExactly(t *testing.T) {
	// The families whose fused path is known to exist: the test fails if
	// they stop fusing (a silent fallback would keep the outputs right).
	mustFuse := map[string]bool{"go": true, "neondot": true}
	for _, depth := range []int{50, 20} {
		hwc := [3]int{36, 36, 3}
		if depth == 20 {
			hwc = [3]int{16, 16, 3}
		}
		m, sample := int8ResNet(t, depth, hwc, 11, rand.New(rand.NewPCG(13, uint64(depth))))
		adds, pads := 0, 0 // pads: PADs right before a max pool (ResNet-50's stem; the other one pads the image for the 7x7 convolution)
		for i, o := range m.Operators {
			switch {
			case o.Op == resnet.OpAdd:
				adds++
			case o.Op == resnet.OpPad && i+1 < len(m.Operators) && m.Operators[i+1].Op == resnet.OpMaxPool2D && m.Operators[i+1].Inputs[0] == o.Outputs[0]:
				pads++
			}
		}
		if wantPads := map[int]int{50: 1, 20: 0}[depth]; pads != wantPads {
			t.Fatalf("ResNet-%d has %d PADs before a max pool, want %d", depth, pads, wantPads)
		}
		input := sample()
		run := func(opts interp.Options) ([]byte, map[int]int) {
			it, err := interp.New(m, opts)
			if err != nil {
				t.Fatalf("New(%+v): %v", opts, err)
			}
			defer it.Close()
			copy(it.Input(0).Float32(), input)
			if err := it.Invoke(); err != nil {
				t.Fatal(err)
			}
			return slices.Clone(it.Output(0).Bytes()), it.Fused()
		}
		for _, arith := range []string{interp.ArithmeticReference, interp.ArithmeticXNNPACK} {
			want, _ := run(interp.Options{Kernels: "ref", Threads: 1, Arithmetic: arith})
			for _, k := range []string{"go", "auto", "avx512vnni", "avxvnni", "avx2", "neondot", "neon"} {
				for _, threads := range []int{1, 2} {
					t.Run(fmt.Sprintf("resnet%d/arithmetic=%s/kernels=%s/threads=%d", depth, arith, k, threads), func(t *testing.T) {
						if _, err := interp.New(m, interp.Options{Kernels: k}); err != nil {
							t.Skipf("this CPU cannot run kernels %q: %v", k, err)
						}
						kept, none := run(interp.Options{Kernels: k, Threads: threads, Arithmetic: arith, KeepAll: true})
						if len(none) != 0 {
							t.Fatalf("KeepAll: %d operators fused, want none", len(none))
						}
						got, fused := run(interp.Options{Kernels: k, Threads: threads, Arithmetic: arith})
						n, np := 0, 0
						for op, with := range fused {
							switch m.Operators[op].Op {
							case resnet.OpAdd:
								n++
								if with != op-1 || m.Operators[with].Op != resnet.OpConv2D {
									t.Errorf("ADD %d fused into operator %d (%v); want the convolution just before it", op, with, m.Operators[with].Op)
								}
							case resnet.OpPad:
								np++
								if with != op+1 || m.Operators[with].Op != resnet.OpMaxPool2D {
									t.Errorf("PAD %d fused into operator %d (%v); want the max pool just after it", op, with, m.Operators[with].Op)
								}
							default:
								t.Errorf("operator %d (%v) fused; only ADDs and PADs fuse", op, m.Operators[op].Op)
							}
						}
						if np != pads {
							t.Errorf("%d PADs fused; want %d (the stem's, before the max pool: every family's max pool reads through it)", np, pads)
						}
						if mustFuse[k] && arith == interp.ArithmeticReference && n != adds {
							t.Errorf("%d of %d ADDs fused; kernels %q have a fused path for every one", n, adds, k)
						}
						t.Logf("%d of %d ADDs fused", n, adds)
						if !slices.Equal(got, kept) {
							t.Fatalf("output differs from the unfused program's (KeepAll)")
						}
						if !slices.Equal(got, want) {
							t.Fatalf("output differs from the reference kernels'")
						}
					})
				}
			}
		}
	}
}
