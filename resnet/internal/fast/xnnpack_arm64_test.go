package fast

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// TestConvXNNPACKEdgesMatchReference drives the NEON kernels' float32
// requantization (SCVTF, FMUL, FCVTNS, then the integer clamp) through its
// edges: products beyond int32 (FCVTNS saturates) and beyond float32
// (infinity), subnormal products, exact ties (x.5 must round to even),
// accumulators near both ends of int32 (biases of +-2^30 and more), with
// and without -128 weights (the NEON kernel's one-by-one and SMLAL pair
// paths), and zero points at both ends of int8.
func TestConvXNNPACKEdgesMatchReference(t *testing.T) {
	cases := []convCase{
		{1, 5, 6, 24, 64, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},
		{1, 4, 5, 64, 80, 1, 1, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActRelu},
		{2, 3, 3, 9, 40, 3, 3, 2, 2, 1, 1, resnet.PaddingSame, resnet.ActRelu6},
	}
	// Scales chosen per channel by i%len: the first few are far from the
	// layer's usual range on purpose.
	scales := []float32{
		1e30, 3.4e38, 1 << 24, 65536, 1, 0.5, 0.25, 1.0 / 64, 1.0 / 1024,
		1e-40, 1e-45, 0x1p-126, 3e-6,
	}
	biases := []int32{0, 1 << 30, -1 << 30, math.MaxInt32 - 1000, math.MinInt32 + 1000, 3, -3, 12345}
	for ci, c := range cases {
		for _, pair := range []bool{false, true} {
			for _, zp := range []int32{-128, 0, 127} {
				for _, isa := range Available() {
					name := fmt.Sprintf("%v/%v/pairs=%v/zp=%d", isa, c, pair, zp)
					t.Run(name, func(t *testing.T) {
						r := rand.New(rand.NewPCG(uint64(ci), uint64(zp+200)))
						p, filter, _ := randomConv(r, c)
						p.OutputOffset = zp
						p.ActMin, p.ActMax = ref.ActivationRangeInt8(resnet.ActNone, 0.05, zp)
						if c.act != resnet.ActNone {
							p.ActMin, p.ActMax = max(zp, -128), 127
						}
						withXNNPACK(&p)
						bias := make([]int32, c.outC)
						for i := range p.Scale {
							if i%2 == 0 {
								p.Scale[i] = scales[(i/2)%len(scales)]
							}
							bias[i] = biases[i%len(biases)]
						}
						for i := range filter {
							if pair && filter[i] == -128 {
								filter[i] = 127
							}
							if !pair && i%97 == 0 {
								filter[i] = -128
							}
						}
						checkConv(t, r, &p, filter, bias, isa, 1+ci%2)
					})
				}
			}
		}
	}
}
