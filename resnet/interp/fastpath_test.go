package interp

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

func TestQuantizeMatchesReferenceOnTiesAndSpecialValues(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 3))
	in := []float32{0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 127.5, -128.5, 1e30, -1e30,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), math.MaxFloat32, -math.MaxFloat32, 1e-40}
	for range 5000 {
		in = append(in, float32(r.NormFloat64()*100), float32(r.IntN(600)-300)/2)
	}
	for _, scale := range []float32{1, 0.5, 0.0123, 3.7, 1e-30} {
		for _, zp := range []int32{-128, -7, 0, 5, 127} {
			want := make([]int8, len(in))
			got := make([]int8, len(in))
			ref.QuantizeInt8(in, want, scale, zp)
			quantizeInt8(in, got, scale, zp)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("scale %g zp %d: quantize(%g) = %d, ref %d", scale, zp, in[i], got[i], want[i])
				}
			}
		}
	}
}

func TestPadMatchesReferenceOnRandomShapes(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 4))
	for i := range 200 {
		var p ref.Pad
		n := 1
		for d := range 4 {
			p.InShape[d] = 1 + r.IntN(5)
			if d > 0 {
				p.Before[d] = r.IntN(3)
			}
			p.OutShape[d] = p.InShape[d] + p.Before[d] + r.IntN(3)
			if d == 3 && i%2 == 1 { // channels unpadded: the row path
				p.Before[d], p.OutShape[d] = 0, p.InShape[d]
			}
			n *= p.InShape[d]
		}
		in := make([]int8, n)
		for j := range in {
			in[j] = int8(r.IntN(256) - 128)
		}
		m := p.OutShape[0] * p.OutShape[1] * p.OutShape[2] * p.OutShape[3]
		want, got := make([]int8, m), make([]int8, m)
		for j := range got {
			got[j] = int8(j) // garbage that must be overwritten
		}
		ref.PadTensor(&p, in, want, -3)
		padTensor(&p, in, got, -3)
		if !slices.Equal(got, want) {
			t.Fatalf("%+v: padTensor differs from ref.PadTensor", p)
		}
		fin := make([]float32, n)
		for j := range fin {
			fin[j] = float32(in[j])
		}
		fwant, fgot := make([]float32, m), make([]float32, m)
		ref.PadTensor(&p, fin, fwant, 0)
		padTensor(&p, fin, fgot, 0)
		if !slices.Equal(fgot, fwant) {
			t.Fatalf("%+v: float padTensor differs from ref.PadTensor", p)
		}
	}
}

func TestMeanMatchesReferenceInBothArithmetics(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 5))
	for i := range 60 {
		b, h, w, c := 1+r.IntN(2), 1+r.IntN(9), 1+r.IntN(9), 1+r.IntN(200)
		inScale, outScale := float32(0.01+r.Float64()), float32(0.01+r.Float64())
		inZP, outZP := int32(r.IntN(256)-128), int32(r.IntN(256)-128)
		p := ref.NewMeanInt8(b, h, w, c, inScale, inZP, outScale, outZP)
		if i%2 == 1 {
			p = ref.NewMeanXNNPACK(b, h, w, c, inScale, inZP, outScale, outZP)
		}
		in := make([]int8, b*h*w*c)
		for j := range in {
			in[j] = int8(r.IntN(256) - 128)
		}
		want, got := make([]int8, b*c), make([]int8, b*c)
		ref.MeanInt8(&p, in, want)
		meanInt8(&p, in, got)
		if !slices.Equal(got, want) {
			t.Fatalf("%+v: meanInt8 differs from ref.MeanInt8", p)
		}
	}
}
