package interp

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// Each float residual ADD of a ResNet runs in the output stage of the
// convolution before it, writing its sum in place of the residual (the
// ADD is the residual's last reader), and the outputs are bit for bit those of the
// unfused program (Options.KeepAll fuses nothing): the fused stage performs
// ref.AddFloat's own float32 operations on the value the convolution would
// have stored. Both agree with the reference kernels within float rounding.
func TestFloatAddsFuseIntoTheConvolutionBeforeThemExactly(t *testing.T) {
	for _, depth := range []int{18, 20} {
		m, err := build.ResNet(build.Config{Depth: depth, Input: [3]int{20, 20, 3}, Classes: 10, Weights: build.RandomWeights(3)})
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(3, 3))
		img := make([]float32, 20*20*3)
		for i := range img {
			img[i] = float32(r.NormFloat64())
		}
		refIt, err := New(m, Options{Kernels: "ref", Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := refIt.Input(0).SetFloat32(img); err != nil {
			t.Fatal(err)
		}
		if err := refIt.Invoke(); err != nil {
			t.Fatal(err)
		}
		want, err := refIt.Output(0).Floats()
		if err != nil {
			t.Fatal(err)
		}
		refIt.Close()
		var peak float64
		for _, v := range want {
			peak = max(peak, math.Abs(float64(v)))
		}
		for _, isa := range fast.Available() {
			for _, threads := range []int{1, 2} {
				t.Run(fmt.Sprintf("resnet%d/%v/threads=%d", depth, isa, threads), func(t *testing.T) {
					var outs [2][]float32
					for i, keep := range []bool{true, false} {
						it, err := New(m, Options{Kernels: isa.String(), Threads: threads, KeepAll: keep})
						if err != nil {
							t.Fatal(err)
						}
						defer it.Close()
						fused, adds, inPlace := 0, 0, 0
						for _, k := range it.prog.kernels {
							switch k := k.(type) {
							case *fastFConvAddKernel:
								fused++
								if it.prog.offsets[k.out] == it.prog.offsets[k.res] {
									inPlace++
								}
							case *addKernel:
								if !k.quantized {
									adds++
								}
							}
						}
						if keep && fused != 0 {
							t.Fatalf("KeepAll: %d fused convolutions, want none", fused)
						}
						if !keep && (fused == 0 || adds != 0 || inPlace != fused) {
							t.Fatalf("%d ADDs fused (%d in place of their residual), %d left: want every residual ADD fused, in place", fused, inPlace, adds)
						}
						if err := it.Input(0).SetFloat32(img); err != nil {
							t.Fatal(err)
						}
						if err := it.Invoke(); err != nil {
							t.Fatal(err)
						}
						if outs[i], err = it.Output(0).Floats(); err != nil {
							t.Fatal(err)
						}
					}
					for i := range outs[0] {
						if math.Float32bits(outs[0][i]) != math.Float32bits(outs[1][i]) {
							t.Fatalf("output %d: fused %g, unfused %g", i, outs[1][i], outs[0][i])
						}
						// And both are the reference kernels' within rounding
						// (ResNet-18's stem max pool on fast.FMaxPool included).
						if d := math.Abs(float64(outs[1][i] - want[i])); !(d <= 1e-4*peak) {
							t.Fatalf("output %d = %g, want %g (reference kernels): off by %g, above 1e-4 of the peak %g", i, outs[1][i], want[i], d, peak)
						}
					}
				})
			}
		}
	}
}

// meanFloat (pixel by pixel over contiguous channels) gives ref.MeanFloat's
// bits: each channel still sums its pixels in the same order.
func TestFloatMeanMatchesReferenceBitForBit(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 5))
	for range 60 {
		p := ref.Mean{Batch: 1 + r.IntN(2), H: 1 + r.IntN(9), W: 1 + r.IntN(9), C: 1 + r.IntN(200)}
		in := make([]float32, p.Batch*p.H*p.W*p.C)
		for j := range in {
			in[j] = float32(r.NormFloat64() * 100)
		}
		want, got := make([]float32, p.Batch*p.C), make([]float32, p.Batch*p.C)
		ref.MeanFloat(&p, in, want)
		meanFloat(&p, in, got)
		for j := range want {
			if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
				t.Fatalf("%+v: output %d = %g, want %g (ref.MeanFloat)", p, j, got[j], want[j])
			}
		}
	}
}
