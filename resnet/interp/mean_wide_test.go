package interp

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// meanInt8 gives ref.MeanInt8's bytes on wide tensors too: channel counts
// past its 256-channel blocks and off multiples of 16 and 64, and more
// than 256 pixels (fast.SumPixelsInt8's int16 chunks), in both arithmetics.
func TestMeanInt8MatchesReferenceOnWideTensors(t *testing.T) {
	r := rand.New(rand.NewPCG(29, 7))
	for i := range 40 {
		b, h, w := 1+r.IntN(2), 1+r.IntN(20), 1+r.IntN(20)
		c := []int{2048, 64 * (1 + r.IntN(10)), 1 + r.IntN(700)}[r.IntN(3)]
		inScale, outScale := float32(0.01+r.Float64()), float32(0.01+r.Float64())
		inZP, outZP := int32(r.IntN(256)-128), int32(r.IntN(256)-128)
		p := ref.NewMeanInt8(b, h, w, c, inScale, inZP, outScale, outZP)
		if i%2 == 1 {
			p = ref.NewMeanXNNPACK(b, h, w, c, inScale, inZP, outScale, outZP)
		}
		in := randInt8s(r, b*h*w*c)
		if i%5 == 0 {
			for j := range in {
				in[j] = []int8{-128, 127}[i%2]
			}
		}
		want, got := make([]int8, b*c), make([]int8, b*c)
		ref.MeanInt8(&p, in, want)
		meanInt8(&p, in, got)
		if !slices.Equal(got, want) {
			t.Fatalf("%+v: meanInt8 differs from ref.MeanInt8", p)
		}
	}
}
