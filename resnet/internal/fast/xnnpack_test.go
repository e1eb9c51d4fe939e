package fast

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// withXNNPACK switches p to the "xnnpack" arithmetic with the float32
// scales its fixed-point multipliers stand for.
func withXNNPACK(p *ref.Conv) {
	p.Scale = make([]float32, len(p.Multiplier))
	for i, m := range p.Multiplier {
		p.Scale[i] = float32(math.Ldexp(float64(m), p.Shift[i]-31))
	}
}

func TestConvXNNPACKArithmeticMatchesReferenceBitForBit(t *testing.T) {
	for _, isa := range Available() {
		for ci, c := range convCases {
			threads := 1 + ci%3
			t.Run(fmt.Sprintf("%v/threads=%d/%v", isa, threads, c), func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(ci), 8))
				p, filter, bias := randomConv(r, c)
				withXNNPACK(&p)
				// Powers of two make exact ties (x.5) frequent: they
				// must round to even, as XNNPACK does.
				for i := range p.Scale {
					if i%3 == 0 {
						p.Scale[i] = 1.0 / 64
					}
				}
				checkConv(t, r, &p, filter, bias, isa, threads)
			})
		}
	}
}

func TestDepthwiseXNNPACKArithmeticMatchesReferenceBitForBit(t *testing.T) {
	cases := []dwCase{
		{1, 8, 8, 32, 1, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu6},
		{1, 7, 6, 17, 2, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},
		{1, 12, 12, 130, 1, 3, 3, 2, 2, 1, 1, resnet.PaddingSame, resnet.ActNone},
		{2, 6, 7, 70, 2, 4, 4, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActReluN1To1},
	}
	for ci, c := range cases {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(ci), 12))
			p, filter, bias := randomDepthwise(r, c)
			withXNNPACK(&p)
			input := randomInt8s(r, p.Batch*p.InH*p.InW*p.InC)
			want := make([]int8, p.Batch*p.OutH*p.OutW*p.OutC)
			ref.DepthwiseConvInt8(&p, input, filter, bias, want)
			d, err := NewDepthwise(&p, filter, bias)
			if err != nil {
				t.Fatal(err)
			}
			run := NewRunner(2, 0)
			defer run.Close()
			got := randomInt8s(r, len(want))
			run.Depthwise(d, input, got)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("output %d (pixel %d channel %d) = %d, want %d (reference, xnnpack arithmetic)", i, i/p.OutC, i%p.OutC, got[i], want[i])
				}
			}
			if slices.Min(want) == slices.Max(want) {
				t.Errorf("every reference output is %d: the case tests nothing", want[0])
			}
		})
	}
}

func TestAddXNNPACKTableMatchesReference(t *testing.T) {
	p, err := ref.NewAddXNNPACK(0.05, -3, 0.031, 7, 0.06, -10, -128, 127)
	if err != nil {
		t.Fatal(err)
	}
	a := NewAdd(&p, nil)
	r := rand.New(rand.NewPCG(3, 4))
	x, y := randomInt8s(r, 3*addChunk+5), randomInt8s(r, 3*addChunk+5)
	want := make([]int8, len(x))
	ref.AddInt8(&p, x, y, want)
	got := make([]int8, len(x))
	a.run(x, y, got, 0, 4)
	if !slices.Equal(got, want) {
		t.Fatal("the tabulated xnnpack ADD differs from ref.AddInt8")
	}
}
