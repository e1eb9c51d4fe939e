package interp_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

// Each int8 residual ADD of a ResNet runs in the output stage of the
// convolution before it where the kernel family has that path
// (fast.Conv.FuseAdd), and every output byte is the unfused program's
// (Options.KeepAll fuses nothing) and the reference kernels': bottleneck
// blocks with projection shortcuts (ResNet-50) and basic blocks
// (ResNet-20), one and two threads, both arithmetics.
func TestInt8AddsFuseIntoTheConvolutionBeforeThemExactly(t *testing.T) {
	// The families whose fused path is known to exist: the test fails if
	// they stop fusing (a silent fallback would keep the outputs right).
	mustFuse := map[string]bool{"go": true, "neondot": true}
	for _, depth := range []int{50, 20} {
		hwc := [3]int{36, 36, 3}
		if depth == 20 {
			hwc = [3]int{16, 16, 3}
		}
		f, err := build.ResNet(build.Config{Depth: depth, Input: hwc, Classes: 10, Weights: build.RandomWeights(11)})
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(13, uint64(depth)))
		sample := func() []float32 {
			v := make([]float32, hwc[0]*hwc[1]*hwc[2])
			for i := range v {
				v[i] = float32(r.NormFloat64())
			}
			return v
		}
		m, err := quant.Model(f, []quant.Sample{{sample()}, {sample()}}, quant.Options{})
		if err != nil {
			t.Fatal(err)
		}
		adds := 0
		for _, o := range m.Operators {
			if o.Op == resnet.OpAdd {
				adds++
			}
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
						n := 0
						for op, with := range fused {
							if m.Operators[op].Op == resnet.OpAdd {
								n++
								if with != op-1 || m.Operators[with].Op != resnet.OpConv2D {
									t.Errorf("ADD %d fused into operator %d (%v); want the convolution just before it", op, with, m.Operators[with].Op)
								}
							}
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
