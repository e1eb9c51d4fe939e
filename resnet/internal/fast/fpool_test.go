package fast

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// specialFloats mixes ordinary values with the ones max gets wrong most
// easily: NaNs of several payloads and signs, signed zeros, infinities,
// the largest finite values.
func specialFloats(r *rand.Rand, n int) []float32 {
	specials := []float32{
		float32(math.NaN()), math.Float32frombits(0x7FC00001), math.Float32frombits(0xFFC12345), math.Float32frombits(0x7F800001),
		0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.MaxFloat32, -math.MaxFloat32, 6, 1, -1,
	}
	v := make([]float32, n)
	for i := range v {
		if r.IntN(6) == 0 {
			v[i] = specials[r.IntN(len(specials))]
		} else {
			v[i] = float32(r.NormFloat64())
		}
	}
	return v
}

// FMaxPool gives ref.MaxPoolFloat's bits on every output, the sign of zero
// and infinities included, NaN where it gives NaN (which NaN the Go
// spec leaves open: the compiled reference makes its own on amd64), on
// random shapes (windows cut by the border, channel counts below, at and
// past multiples of 32) and every fused activation.
func TestFMaxPoolMatchesReferenceBitForBit(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 19))
	cases := []ref.Pool{
		{Batch: 1, InH: 112, InW: 112, C: 64, FilterH: 3, FilterW: 3, StrideH: 2, StrideW: 2},
	}
	for range 60 {
		cases = append(cases, ref.Pool{Batch: 1 + r.IntN(2), InH: 1 + r.IntN(12), InW: 1 + r.IntN(12), C: 1 + r.IntN(100),
			FilterH: 1 + r.IntN(4), FilterW: 1 + r.IntN(4), StrideH: 1 + r.IntN(3), StrideW: 1 + r.IntN(3)})
	}
	for i, p := range cases {
		padding := resnet.PaddingSame
		if i%3 == 2 {
			padding = resnet.PaddingValid
		}
		p.OutH = ref.OutSize(padding, p.InH, p.FilterH, p.StrideH, 1)
		p.OutW = ref.OutSize(padding, p.InW, p.FilterW, p.StrideW, 1)
		if p.OutH < 1 || p.OutW < 1 {
			continue
		}
		p.PadH, _ = ref.PaddingBefore(p.StrideH, 1, p.InH, p.FilterH, p.OutH)
		p.PadW, _ = ref.PaddingBefore(p.StrideW, 1, p.InW, p.FilterW, p.OutW)
		p.FloatMin, p.FloatMax = ref.ActivationRangeFloat(resnet.Activation(i % 4))
		t.Run(fmt.Sprintf("%d/%dx%dx%dx%d_k%dx%d_s%dx%d_act%d", i, p.Batch, p.InH, p.InW, p.C, p.FilterH, p.FilterW, p.StrideH, p.StrideW, i%4), func(t *testing.T) {
			in := specialFloats(r, p.Batch*p.InH*p.InW*p.C)
			want := make([]float32, p.Batch*p.OutH*p.OutW*p.C)
			ref.MaxPoolFloat(&p, in, want)
			got := randomFloats(r, len(want))
			// Odd cases on 3 threads: the output rows are shared out.
			run := NewRunner(1+2*(i%2), 0)
			defer run.Close()
			m := NewFMaxPool(&p)
			run.FMaxPool(m, in, got)
			for j := range want {
				if math.Float32bits(got[j]) != math.Float32bits(want[j]) && !(got[j] != got[j] && want[j] != want[j]) {
					t.Fatalf("output %d (pixel %d channel %d) = %g (%#08x), want %g (%#08x)", j, j/p.C, j%p.C,
						got[j], math.Float32bits(got[j]), want[j], math.Float32bits(want[j]))
				}
			}
			if n := testing.AllocsPerRun(3, func() { run.FMaxPool(m, in, got) }); n != 0 {
				t.Errorf("%v allocations per run, want 0", n)
			}
		})
	}
}

// BenchmarkFMaxPool times ResNet-50's stem MAX_POOL_2D (112x112x64, 3x3,
// stride 2) on 1 and 2 threads.
func BenchmarkFMaxPool(b *testing.B) {
	p := ref.Pool{Batch: 1, InH: 112, InW: 112, C: 64, FilterH: 3, FilterW: 3, StrideH: 2, StrideW: 2, OutH: 56, OutW: 56}
	p.FloatMin, p.FloatMax = ref.ActivationRangeFloat(resnet.Activation(0))
	r := rand.New(rand.NewPCG(1, 1))
	in := randomFloats(r, 112*112*64)
	out := make([]float32, 56*56*64)
	m := NewFMaxPool(&p)
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			run := NewRunner(threads, 0)
			defer run.Close()
			for b.Loop() {
				run.FMaxPool(m, in, out)
			}
		})
	}
}
