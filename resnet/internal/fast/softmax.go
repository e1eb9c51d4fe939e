package fast

import (
	"math"

	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// Softmax is a prepared int8 SOFTMAX: ref.SoftmaxInt8's bytes with its
// fixed-point exp looked up instead of evaluated. In the reference each
// element's exp depends only on its difference from the row's maximum,
// diff = x - max, an integer in [-255, 0], and on the prepared parameters
// (InputMultiplier, InputLeftShift, DiffMin), so the 256 possible values are
// computed once here by the reference's own function (ref.Softmax.Exp), and
// Run does a lookup, a sum and the reference's final rescaling per element.
// A difference below DiffMin gets exp 0: it then adds nothing to the sum
// (the reference skips it) and its output is 0 + (-128) = -128, the value
// the reference stores for it, except where the int32 sum wrapped
// (runWrapped).
type Softmax struct {
	p   ref.Softmax
	exp [256]int32 // exp[-diff]: the reference's Q0.31 exp of diff
	acc [256]int32 // exp[-diff] rescaled to the Q12.19 sum (RoundingDivideByPOT by 12)
}

// NewSoftmax prepares p (from ref.NewSoftmaxInt8).
func NewSoftmax(p *ref.Softmax) *Softmax {
	s := &Softmax{p: *p}
	for i := range 256 {
		diff := int32(-i)
		if diff < p.DiffMin {
			continue // exp 0
		}
		e := p.Exp(diff)
		s.exp[i] = e
		s.acc[i] = ref.RoundingDivideByPOT(e, ref.SoftmaxAccumulationBits)
	}
	return s
}

// Run computes the softmax of every row of input into output.
func (s *Softmax) Run(input, output []int8) {
	p := &s.p
	for r := 0; r < p.Outer; r++ {
		in := input[r*p.Depth:][:p.Depth]
		out := output[r*p.Depth:][:p.Depth]
		maxIn, minIn := int8(math.MinInt8), int8(math.MaxInt8)
		for _, v := range in {
			maxIn, minIn = max(maxIn, v), min(minIn, v)
		}
		var sum int32 // Q12.19, wrapping as the reference's int32 does
		for _, v := range in {
			sum += s.acc[uint8(maxIn-v)] // maxIn - v in [0, 255]: wraps into uint8 exactly
		}
		recip, shift := ref.SoftmaxReciprocal(sum) // shift >= 23: the maximum's own exp puts 2^19 in the sum
		if shift > 31 {
			// The sum wrapped (rows of thousands): the reference's
			// RoundingDivideByPOT by more than 31 turns an exp of 0 into
			// 1, so the differences it skips must be told apart.
			s.runWrapped(in, out, maxIn, recip, shift)
			continue
		}
		if span := int(maxIn) - int(minIn); span < len(in) {
			// Fewer distinct differences than elements (a classifier's
			// 1000 logits): each output byte is a function of the
			// difference alone within the row, so compute it once per
			// difference and look it up.
			var tab [256]int8
			for d := range span + 1 {
				unsat := ref.RoundingDivideByPOT(ref.SaturatingRoundingDoublingHighMul(recip, s.exp[d]), shift)
				tab[d] = int8(min(max(unsat+math.MinInt8, math.MinInt8), math.MaxInt8))
			}
			for i, v := range in {
				out[i] = tab[uint8(maxIn-v)]
			}
			continue
		}
		for i, v := range in {
			e := s.exp[uint8(maxIn-v)]
			unsat := ref.RoundingDivideByPOT(ref.SaturatingRoundingDoublingHighMul(recip, e), shift)
			out[i] = int8(min(max(unsat+math.MinInt8, math.MinInt8), math.MaxInt8))
		}
	}
}

// runWrapped is Run's output loop with the reference's cut at DiffMin made
// explicit (there an exp of 0 need not give -128).
func (s *Softmax) runWrapped(in, out []int8, maxIn int8, recip int32, shift int) {
	for i, v := range in {
		diff := int32(v) - int32(maxIn)
		if diff < s.p.DiffMin {
			out[i] = math.MinInt8
			continue
		}
		e := s.exp[uint8(maxIn-v)]
		unsat := ref.RoundingDivideByPOT(ref.SaturatingRoundingDoublingHighMul(recip, e), shift)
		out[i] = int8(min(max(unsat+math.MinInt8, math.MinInt8), math.MaxInt8))
	}
}
