package fast

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// SumPixelsInt8 (NEON blocks of 64 channels on arm64, Go for the rest) and
// sumPixelsGo add the plain int32 per-channel sums to acc, for channel
// counts on and off multiples of 16 and 64, strides wider than the
// channels summed, pixel counts across the 256-pixel int16 limit, and the
// extremes (all -128 or all 127: an int16 accumulator at its bounds).
func TestSumPixelsInt8MatchesPlainSums(t *testing.T) {
	r := rand.New(rand.NewPCG(91, 92))
	for n := range 400 {
		c := 1 + r.IntN(300)
		switch r.IntN(4) {
		case 0:
			c = 64 * (1 + r.IntN(5))
		case 1:
			c = 16 * (1 + r.IntN(12))
		}
		stride := c + []int{0, 0, 1, 64, r.IntN(100)}[r.IntN(5)]
		pixels := 1 + r.IntN(80)
		switch r.IntN(5) {
		case 0:
			pixels = 255 + r.IntN(3)
		case 1:
			pixels = 500 + r.IntN(300)
		}
		src := make([]int8, (pixels-1)*stride+c+r.IntN(3))
		fill := r.IntN(4)
		for i := range src {
			switch fill {
			case 0:
				src[i] = -128
			case 1:
				src[i] = 127
			default:
				src[i] = int8(r.IntN(256) - 128)
			}
		}
		start := make([]int32, c)
		for k := range start {
			start[k] = int32(r.Uint32())
		}
		want := slices.Clone(start)
		for k := range c {
			for p := range pixels {
				want[k] += int32(src[p*stride+k])
			}
		}
		got := slices.Clone(start)
		SumPixelsInt8(got, src, pixels, stride)
		if !slices.Equal(got, want) {
			t.Fatalf("case %d (c %d, stride %d, pixels %d): SumPixelsInt8 differs from the plain sums", n, c, stride, pixels)
		}
		got = slices.Clone(start)
		sumPixelsGo(got, src, pixels, stride)
		if !slices.Equal(got, want) {
			t.Fatalf("case %d (c %d, stride %d, pixels %d): sumPixelsGo differs from the plain sums", n, c, stride, pixels)
		}
	}
}
