package fast

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// dwCase is one depthwise geometry: inC input channels times mult.
type dwCase struct {
	batch, inH, inW, inC, mult, fh, fw, sh, sw, dh, dw int
	padding                                            resnet.Padding
	act                                                resnet.Activation
}

func randomDepthwise(r *rand.Rand, c dwCase) (ref.Conv, []int8, []int32) {
	p, _, bias := randomConv(r, convCase{c.batch, c.inH, c.inW, c.inC, c.inC * c.mult, c.fh, c.fw, c.sh, c.sw, c.dh, c.dw, c.padding, c.act})
	p.DepthMultiplier = c.mult
	// randomConv sized the multipliers for inC*fh*fw products per output;
	// a depthwise output has fh*fw: rescale so outputs spread over int8.
	for i := range p.Multiplier {
		p.Shift[i] += 5
		if p.Shift[i] > 30 {
			p.Shift[i] = 30
		}
	}
	return p, randomInt8s(r, c.fh*c.fw*p.OutC), bias
}

func TestDepthwiseMatchesReferenceBitForBit(t *testing.T) {
	cases := []dwCase{
		{1, 8, 8, 32, 1, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu6},
		{1, 9, 9, 5, 1, 3, 3, 2, 2, 1, 1, resnet.PaddingSame, resnet.ActNone},     // channels not a multiple of 16
		{1, 7, 6, 17, 2, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},    // multiplier 2
		{1, 10, 9, 3, 3, 5, 5, 2, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},    // multiplier 3, 5x5, odd strides
		{1, 12, 12, 130, 1, 3, 3, 2, 2, 1, 1, resnet.PaddingSame, resnet.ActNone}, // more than one channel block
		{2, 6, 7, 70, 2, 4, 4, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},    // even filter: more padding after than before
		{1, 11, 11, 9, 1, 3, 3, 1, 1, 2, 3, resnet.PaddingSame, resnet.ActNone},   // dilation
		{1, 3, 3, 8, 1, 7, 7, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},     // filter larger than the image
		{3, 8, 8, 1, 1, 3, 3, 2, 2, 1, 1, resnet.PaddingValid, resnet.ActReluN1To1},
		{1, 1, 1, 64, 1, 1, 1, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActNone},
	}
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 30 {
		c := dwCase{1 + r.IntN(2), 1 + r.IntN(12), 1 + r.IntN(12), 1 + r.IntN(100), 1 + r.IntN(3),
			1 + r.IntN(5), 1 + r.IntN(5), 1 + r.IntN(3), 1 + r.IntN(3), 1 + r.IntN(2), 1 + r.IntN(2), resnet.PaddingSame, resnet.Activation(r.IntN(4))}
		if i%3 == 0 {
			c.padding = resnet.PaddingValid
		}
		if ref.OutSize(c.padding, c.inH, c.fh, c.sh, c.dh) >= 1 && ref.OutSize(c.padding, c.inW, c.fw, c.sw, c.dw) >= 1 {
			cases = append(cases, c)
		}
	}
	for ci, c := range cases {
		for threads := 1; threads <= 3; threads++ {
			t.Run(fmt.Sprintf("%d/threads=%d/%+v", ci, threads, c), func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(ci), 11))
				p, filter, bias := randomDepthwise(r, c)
				input := randomInt8s(r, p.Batch*p.InH*p.InW*p.InC)
				want := make([]int8, p.Batch*p.OutH*p.OutW*p.OutC)
				ref.DepthwiseConvInt8(&p, input, filter, bias, want)
				d, err := NewDepthwise(&p, filter, bias)
				if err != nil {
					t.Fatal(err)
				}
				run := NewRunner(threads, 0)
				defer run.Close()
				got := randomInt8s(r, len(want))
				run.Depthwise(d, input, got)
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("output %d (pixel %d channel %d) = %d, want %d (reference)", i, i/p.OutC, i%p.OutC, got[i], want[i])
					}
				}
				if len(want) > 32 && slices.Min(want) == slices.Max(want) {
					t.Errorf("every reference output is %d: the case tests nothing", want[0])
				}
			})
		}
	}
}

func TestNewDepthwiseRejectsSizesThatDisagree(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	p, filter, _ := randomDepthwise(r, dwCase{1, 4, 4, 8, 2, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone})
	if _, err := NewDepthwise(&p, filter[1:], nil); err == nil {
		t.Error("NewDepthwise with a filter one value short succeeded, want an error")
	}
	if _, err := NewDepthwise(&p, filter, make([]int32, 3)); err == nil {
		t.Error("NewDepthwise with 3 bias values for 16 channels succeeded, want an error")
	}
}
