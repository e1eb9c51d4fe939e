package interp_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

// A float ResNet on the float micro-kernels (every family this CPU runs,
// one and two threads) gives the reference kernels' outputs within float
// rounding: the kernels reorder nothing but fuse each multiply-add, so
// after twenty layers the outputs agree to a relative 1e-4 of the largest
// value (the kernel tests check each convolution against the exact bound).
// Invoke allocates nothing.
func TestFloatResNetOnFastKernelsMatchesReference(t *testing.T) {
	m, err := build.ResNet(build.Config{Depth: 20, Input: [3]int{20, 20, 3}, Classes: 10, Weights: build.RandomWeights(7)})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 7))
	img := make([]float32, 20*20*3)
	for i := range img {
		img[i] = float32(r.NormFloat64())
	}
	run := func(opts interp.Options) (*interp.Interpreter, [][]float32) {
		t.Helper()
		it, err := interp.New(m, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := it.Input(0).SetFloat32(img); err != nil {
			t.Fatal(err)
		}
		if err := it.Invoke(); err != nil {
			t.Fatal(err)
		}
		var outs [][]float32
		for i := range it.NumOutputs() {
			o, err := it.Output(i).Floats()
			if err != nil {
				t.Fatal(err)
			}
			outs = append(outs, o)
		}
		return it, outs
	}
	refIt, want := run(interp.Options{Kernels: "ref", Threads: 1})
	refIt.Close()
	for _, isa := range fast.Available() {
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("%v(float %v)/threads=%d", isa, isa.Float(), threads), func(t *testing.T) {
				it, got := run(interp.Options{Kernels: isa.String(), Threads: threads})
				defer it.Close()
				for o := range want {
					var peak float64
					for _, v := range want[o] {
						peak = max(peak, math.Abs(float64(v)))
					}
					for i := range want[o] {
						if d := math.Abs(float64(got[o][i] - want[o][i])); !(d <= 1e-4*peak) {
							t.Fatalf("output %d element %d = %g, want %g (reference kernels): off by %g, above 1e-4 of the peak %g", o, i, got[o][i], want[o][i], d, peak)
						}
					}
				}
				if n := testing.AllocsPerRun(5, func() { _ = it.Invoke() }); n != 0 {
					t.Errorf("Invoke allocates %v times per run, want 0", n)
				}
			})
		}
	}
}
