package interp_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

func fusedPadsExt(t *testing.T, m *resnet.Model, it *interp.Interpreter) int {
	t.Helper()
	n, err := interp.FusedPadCount(m, it)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The int8 ResNet-50 the trainer's random-model builds (build.ResNet, then
// quant.Model) has its stem PAD fused into the max pool, and its outputs are
// the reference kernels' bytes.
func TestInt8ResNetStemPadIsFused(t *testing.T) {
	hwc := [3]int{40, 40, 3}
	f, err := build.ResNet(build.Config{Depth: 50, Input: hwc, Classes: 10, Weights: build.RandomWeights(5)})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 10))
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
	pads := 0 // PADs right before a max pool (the stem's; the other one pads the image for the 7x7 convolution)
	for i, op := range m.Operators {
		if op.Op == resnet.OpPad && i+1 < len(m.Operators) && m.Operators[i+1].Op == resnet.OpMaxPool2D && m.Operators[i+1].Inputs[0] == op.Outputs[0] {
			pads++
		}
	}
	input := sample()
	run := func(opts interp.Options) ([]byte, int) {
		it, err := interp.New(m, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		copy(it.Input(0).Float32(), input)
		if err := it.Invoke(); err != nil {
			t.Fatal(err)
		}
		return slices.Clone(it.Output(0).Bytes()), fusedPadsExt(t, m, it)
	}
	want, _ := run(interp.Options{Kernels: "ref", Threads: 1})
	for _, k := range []string{"auto", "go", "neondot", "neon", "avx2", "avx512vnni"} {
		t.Run(k, func(t *testing.T) {
			if _, err := interp.New(m, interp.Options{Kernels: k}); err != nil {
				t.Skipf("this CPU cannot run kernels %q: %v", k, err)
			}
			got, fused := run(interp.Options{Kernels: k, Threads: 2})
			if pads != 1 || fused != pads {
				t.Fatalf("%d PADs fused; want %d (the stem's, before the max pool)", fused, pads)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("output differs from the reference kernels'")
			}
		})
	}
}
