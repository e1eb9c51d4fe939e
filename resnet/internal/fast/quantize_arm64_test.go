package fast

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// quantizeMulNEON (the multiply by the float64 reciprocal, the bulk of
// QuantizeInt8 for normal scales) gives ref.QuantizeInt8's bytes: for
// random scales of every significand, values at and a float32 step or two
// either side of the rounding ties (k + 0.5) * scale, at the int8
// saturation edges, random bit patterns (every exponent, NaNs, infinities,
// subnormals) and the special values, every zero point sign. And it takes
// the same bytes as the division kernel, quantizeNEON, on them.
func TestQuantizeMulNEONMatchesRef(t *testing.T) {
	r := rand.New(rand.NewPCG(101, 102))
	scales := []float32{1, 0.5, 0.1, 0.0186, 0.0078125, 0.023529412, 1.9999999, 1.0000001, 3.7, 1e-30, 3e38, -0.7}
	for range 40 {
		scales = append(scales, math.Float32frombits(uint32(r.IntN(0x7f000000-0x00800000)+0x00800000))) // any positive normal
	}
	for _, scale := range scales {
		zp := int32(r.IntN(256) - 128)
		n := 4096
		in := make([]float32, n)
		for i := range in {
			k := float32(r.IntN(600) - 300)
			tie := (k + 0.5) * scale
			switch r.IntN(6) {
			case 0:
				in[i] = tie
			case 1, 2:
				x := tie
				for range 1 + r.IntN(2) {
					x = math.Nextafter32(x, float32(math.Inf(2*r.IntN(2)-1)))
				}
				in[i] = x
			case 3:
				in[i] = math.Float32frombits(r.Uint32())
			case 4:
				in[i] = []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 3e38, -3e38, 0, float32(math.Copysign(0, -1)), 1e-40, 1e-45}[r.IntN(9)]
			default:
				in[i] = float32(r.NormFloat64()*100) * scale
			}
		}
		want, got, div := make([]int8, n), make([]int8, n), make([]int8, n)
		ref.QuantizeInt8(in, want, scale, zp)
		QuantizeInt8(in, got, scale, zp)
		quantizeNEON(&in[0], &div[0], n, scale, zp)
		for i := range want {
			if got[i] != want[i] || div[i] != want[i] {
				t.Fatalf("scale %g zp %d: quantize(%g) = %d (division kernel %d), ref %d", scale, zp, in[i], got[i], div[i], want[i])
			}
		}
	}
}
