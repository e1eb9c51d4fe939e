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
