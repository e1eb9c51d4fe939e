package fast

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

func TestMaxPoolMatchesReferenceBitForBit(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for i := range 60 {
		p := ref.Pool{Batch: 1 + r.IntN(2), InH: 1 + r.IntN(12), InW: 1 + r.IntN(12), C: 1 + r.IntN(100),
			FilterH: 1 + r.IntN(4), FilterW: 1 + r.IntN(4), StrideH: 1 + r.IntN(3), StrideW: 1 + r.IntN(3)}
		pad := resnet.PaddingSame
		if i%3 == 0 {
			pad = resnet.PaddingValid
		}
		p.OutH = ref.OutSize(pad, p.InH, p.FilterH, p.StrideH, 1)
		p.OutW = ref.OutSize(pad, p.InW, p.FilterW, p.StrideW, 1)
		if p.OutH < 1 || p.OutW < 1 {
			continue
		}
		p.PadH, _ = ref.PaddingBefore(p.StrideH, 1, p.InH, p.FilterH, p.OutH)
		p.PadW, _ = ref.PaddingBefore(p.StrideW, 1, p.InW, p.FilterW, p.OutW)
		p.ActMin, p.ActMax = -128, 127
		if i%4 == 1 {
			p.ActMin, p.ActMax = int32(r.IntN(100)-50), int32(50+r.IntN(60))
		}
		t.Run(fmt.Sprintf("%d/%+v", i, p), func(t *testing.T) {
			in := randomInt8s(r, p.Batch*p.InH*p.InW*p.C)
			want := make([]int8, p.Batch*p.OutH*p.OutW*p.C)
			ref.MaxPoolInt8(&p, in, want)
			run := NewRunner(1+i%2, 0)
			defer run.Close()
			got := randomInt8s(r, len(want))
			run.MaxPool(NewMaxPool(&p), in, got)
			if !slices.Equal(got, want) {
				t.Errorf("output differs from ref.MaxPoolInt8")
			}
		})
	}
}

func TestAddTableMatchesReferenceBitForBit(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for i := range 20 {
		p, err := ref.NewAddInt8(float32(0.01+r.Float64()*0.1), int32(r.IntN(256)-128), float32(0.01+r.Float64()*0.1), int32(r.IntN(256)-128),
			float32(0.02+r.Float64()*0.2), int32(r.IntN(256)-128), int32(-128+r.IntN(3)*60), 127)
		if err != nil {
			t.Fatal(err)
		}
		n := 1 + r.IntN(3*addChunk)
		in1, in2 := randomInt8s(r, n), randomInt8s(r, n)
		want := make([]int8, n)
		ref.AddInt8(&p, in1, in2, want)
		run := NewRunner(1+i%3, 0)
		got := randomInt8s(r, n)
		run.Add(NewAdd(&p, nil), in1, in2, got)
		run.Close()
		if !slices.Equal(got, want) {
			t.Errorf("case %d (%+v, %d elements): output differs from ref.AddInt8", i, p, n)
		}
	}
}

// TestMaxPoolWideChannelsMatchesReference covers the whole-window kernel
// (channel counts that are multiples of 32): ResNet's 3x3 stride-2 SAME
// pool on odd and even sizes (edge windows of 2x2, 2x3, 3x2 taps), VALID,
// 1x1, and a clamped activation.
func TestMaxPoolWideChannelsMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, c := range []int{32, 64, 96, 256} {
		for _, g := range []struct{ in, f, s int }{{9, 3, 2}, {8, 3, 2}, {7, 2, 2}, {5, 1, 1}, {6, 3, 1}} {
			for _, pad := range []resnet.Padding{resnet.PaddingSame, resnet.PaddingValid} {
				p := ref.Pool{Batch: 2, InH: g.in, InW: g.in + 1, C: c, FilterH: g.f, FilterW: g.f, StrideH: g.s, StrideW: g.s, ActMin: -128, ActMax: 127}
				if c == 96 {
					p.ActMin, p.ActMax = -20, 90
				}
				p.OutH = ref.OutSize(pad, p.InH, p.FilterH, p.StrideH, 1)
				p.OutW = ref.OutSize(pad, p.InW, p.FilterW, p.StrideW, 1)
				p.PadH, _ = ref.PaddingBefore(p.StrideH, 1, p.InH, p.FilterH, p.OutH)
				p.PadW, _ = ref.PaddingBefore(p.StrideW, 1, p.InW, p.FilterW, p.OutW)
				in := randomInt8s(r, p.Batch*p.InH*p.InW*p.C)
				want := make([]int8, p.Batch*p.OutH*p.OutW*p.C)
				ref.MaxPoolInt8(&p, in, want)
				run := NewRunner(2, 0)
				got := randomInt8s(r, len(want))
				run.MaxPool(NewMaxPool(&p), in, got)
				run.Close()
				if !slices.Equal(got, want) {
					t.Errorf("%+v: output differs from ref.MaxPoolInt8", p)
				}
			}
		}
	}
}

// BenchmarkMaxPoolResNet is ResNet's int8 stem pool at 224: 112x112x64,
// 3x3 stride 2 SAME, one thread.
func BenchmarkMaxPoolResNet(b *testing.B) {
	p := ref.Pool{Batch: 1, InH: 112, InW: 112, C: 64, FilterH: 3, FilterW: 3, StrideH: 2, StrideW: 2, OutH: 56, OutW: 56, ActMin: -128, ActMax: 127}
	p.PadH, _ = ref.PaddingBefore(2, 1, 112, 3, 56)
	p.PadW, _ = ref.PaddingBefore(2, 1, 112, 3, 56)
	in := randomInt8s(rand.New(rand.NewPCG(1, 1)), 112*112*64)
	out := make([]int8, 56*56*64)
	m := NewMaxPool(&p)
	for b.Loop() {
		m.run(in, out, 0, m.rows())
	}
}
