package fast

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// TestConvWithoutLeftShiftsMatchesReference runs layers none of whose
// channels shifts left (multipliers below 1, as a trained network's
// are): the arm64 kernels then take their inline epilogue, which the
// random cases (a left shift in one channel of eight) seldom reach. Bytes
// per tap that are whole chunks (the fast copy of the loops) and not (the
// general one), with and without -128 weights (NEON's pairs).
func TestConvWithoutLeftShiftsMatchesReference(t *testing.T) {
	cases := []convCase{
		{1, 6, 5, 64, 64, 1, 1, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},
		{1, 7, 6, 32, 70, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},
		{1, 9, 9, 24, 64, 3, 3, 2, 2, 1, 1, resnet.PaddingSame, resnet.ActRelu6},
		{2, 5, 5, 20, 40, 3, 3, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActNone},
		{1, 11, 10, 3, 64, 7, 7, 2, 2, 1, 1, resnet.PaddingSame, resnet.ActRelu},
		{1, 4, 4, 136, 128, 1, 1, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActReluN1To1},
	}
	for ci, c := range cases {
		for _, pairs := range []bool{true, false} {
			for _, small := range []bool{false, true} {
				for _, isa := range Available() {
					t.Run(fmt.Sprintf("%v/%v/pairs=%v/small=%v", isa, c, pairs, small), func(t *testing.T) {
						r := rand.New(rand.NewPCG(uint64(ci), 31))
						p, filter, bias := randomConv(r, c)
						scales := make([]float32, c.outC)
						k := c.fh * c.fw * c.inC
						for i := range scales {
							scales[i] = float32((0.2 + r.Float64()) / float64(k*40))
							switch {
							case small:
								// Small weights and biases, multipliers
								// 1/64 to 1/8: outputs inside int8 and
								// frequent ties in the rounding shift.
								scales[i] = float32(0.05 / float64(int(8)<<r.IntN(4)) * (1 - 0.4*r.Float64()))
							case i%7 == 0:
								scales[i] /= 3000 // large right shifts
							case i%7 == 3:
								scales[i] = 0.035 // multiplier 0.7: no shift at all
							}
						}
						p.Multiplier, p.Shift = ref.PerChannelMultipliers(1, scales, 0.05, c.outC)
						if slices.Max(p.Shift) > 0 {
							t.Fatalf("a channel shifts left by %d", slices.Max(p.Shift))
						}
						for i := range filter {
							if small {
								filter[i] = int8(r.IntN(5) - 2)
							}
							if pairs && filter[i] == -128 {
								filter[i] = -127
							}
							if !pairs && i%53 == 0 {
								filter[i] = -128
							}
						}
						if small && bias != nil {
							for i := range bias {
								bias[i] = int32(r.IntN(401) - 200)
							}
						}
						checkConv(t, r, &p, filter, bias, isa, 1+ci%2)
					})
				}
			}
		}
	}
}
