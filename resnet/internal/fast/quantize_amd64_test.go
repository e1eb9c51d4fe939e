package fast

import (
	"math"
	"math/rand"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// TestQuantizeInt8MatchesRef checks QuantizeInt8 (AVX2 bulk + Go tail)
// against ref.QuantizeInt8 byte for byte: ties at +-k.5 of the scale,
// values a float32 step either side of them, NaN, infinities, huge and
// tiny values, every zero point sign, lengths around the 16-element step.
func TestQuantizeInt8MatchesRef(t *testing.T) {
	r := rand.New(rand.NewSource(19))
	for _, scale := range []float32{1, 0.5, 0.1, 0.0078125, 0.023529412, 3.7, 1e-30} {
		for _, zp := range []int32{-128, -5, 0, 17, 127} {
			for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 100, 4099} {
				in := make([]float32, n)
				for i := range in {
					k := float32(r.Intn(600) - 300)
					switch r.Intn(8) {
					case 0:
						in[i] = (k + 0.5) * scale
					case 1:
						in[i] = math.Nextafter32((k+0.5)*scale, float32(math.Inf(1)))
					case 2:
						in[i] = math.Nextafter32((k+0.5)*scale, float32(math.Inf(-1)))
					case 3:
						in[i] = []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 3e38, -3e38, 0, float32(math.Copysign(0, -1)), 1e-40}[r.Intn(8)]
					default:
						in[i] = float32(r.NormFloat64()*100) * scale
					}
				}
				want := make([]int8, n)
				got := make([]int8, n)
				ref.QuantizeInt8(in, want, scale, zp)
				QuantizeInt8(in, got, scale, zp)
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("scale %g zp %d n %d: [%d] = %g: got %d, want %d", scale, zp, n, i, in[i], got[i], want[i])
					}
				}
			}
		}
	}
}

func BenchmarkQuantizeInt8(b *testing.B) {
	in := make([]float32, 224*224*3)
	r := rand.New(rand.NewSource(1))
	for i := range in {
		in[i] = float32(r.NormFloat64())
	}
	out := make([]int8, len(in))
	b.SetBytes(int64(len(in) * 4))
	for b.Loop() {
		QuantizeInt8(in, out, 0.0186, -14)
	}
}

func BenchmarkQuantizeInt8Go(b *testing.B) {
	in := make([]float32, 224*224*3)
	r := rand.New(rand.NewSource(1))
	for i := range in {
		in[i] = float32(r.NormFloat64())
	}
	out := make([]int8, len(in))
	b.SetBytes(int64(len(in) * 4))
	for b.Loop() {
		quantizeGo(in, out, 0.0186, -14)
	}
}
