package fast

import (
	"math"
	"math/bits"

	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// Softmax is a prepared int8 SOFTMAX: ref.SoftmaxInt8's bytes with its
// fixed-point exp looked up instead of evaluated. In the reference each
// element's exp depends only on its difference from the row's maximum,
// diff = x - max, an integer in [-255, 0], and on the prepared parameters
// (InputMultiplier, InputLeftShift, DiffMin), so the 256 possible values are
// computed once here by the reference's own steps (the same gemmlowp
// fixed-point arithmetic, copied below because ref keeps it unexported), and
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

const (
	softmaxScaledDiffIntegerBits = 5  // Q5.26, as ref
	softmaxAccumulationBits      = 12 // Q12.19, as ref
)

// NewSoftmax prepares p (from ref.NewSoftmaxInt8).
func NewSoftmax(p *ref.Softmax) *Softmax {
	s := &Softmax{p: *p}
	for i := range 256 {
		diff := int32(-i)
		if diff < p.DiffMin {
			continue // exp 0
		}
		scaled := ref.MultiplyByQuantizedMultiplierGreaterThanOne(diff, p.InputMultiplier, p.InputLeftShift)
		e := expOnNegativeValues(scaled)
		s.exp[i] = e
		s.acc[i] = ref.RoundingDivideByPOT(e, softmaxAccumulationBits)
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
		recip, bitsOverUnit := reciprocal(sum, softmaxAccumulationBits)
		shift := bitsOverUnit + 31 - 8 // >= 23: the maximum's own exp puts 2^19 in the sum
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

// --- copies of ref's unexported gemmlowp helpers (ref/softmax.go) ---

func saturatingMulByPOTPositive(x int32, e int) int32 {
	threshold := int32(1)<<(31-e) - 1
	switch {
	case x > threshold:
		return math.MaxInt32
	case x < -threshold:
		return math.MinInt32
	}
	return x << e
}

func expOnIntervalNegQuarterToZero(a int32) int32 {
	const (
		constantTerm = 1895147668 // exp(-1/8) in Q0.31
		oneOverThree = 715827883  // 1/3 in Q0.31
	)
	mul := ref.SaturatingRoundingDoublingHighMul
	x := a + 1<<28 // a + 1/8
	x2 := mul(x, x)
	x3 := mul(x2, x)
	x4 := mul(x2, x2)
	x4Over4 := ref.RoundingDivideByPOT(x4, 2)
	poly := ref.RoundingDivideByPOT(mul(x4Over4+x3, oneOverThree)+x2, 1)
	return constantTerm + mul(constantTerm, x+poly)
}

func expOnNegativeValues(a int32) int32 {
	const fractionalBits = 31 - softmaxScaledDiffIntegerBits // 26
	const oneQuarter = int32(1) << (fractionalBits - 2)
	mask := oneQuarter - 1
	aModQuarterMinusQuarter := (a & mask) - oneQuarter
	result := expOnIntervalNegQuarterToZero(saturatingMulByPOTPositive(aModQuarterMinusQuarter, softmaxScaledDiffIntegerBits))
	remainder := aModQuarterMinusQuarter - a
	barrel := [...]struct {
		exponent   int
		multiplier int32 // exp(-2^exponent) in Q0.31
	}{
		{-2, 1672461947}, {-1, 1302514674}, {0, 790015084}, {1, 290630308},
		{2, 39332535}, {3, 720401}, {4, 242},
	}
	for _, b := range barrel {
		if remainder&(int32(1)<<(fractionalBits+b.exponent)) != 0 {
			result = ref.SaturatingRoundingDoublingHighMul(result, b.multiplier)
		}
	}
	if a == 0 {
		return math.MaxInt32 // exactly one
	}
	return result
}

func oneOverOnePlusX(a int32) int32 {
	const (
		constant48Over17    = 1515870810  // Q2.29
		constantNeg32Over17 = -1010580540 // Q2.29
		oneQ2               = int32(1) << 29
	)
	mul := ref.SaturatingRoundingDoublingHighMul
	halfDenominator := roundingHalfSum(a, math.MaxInt32)
	x := constant48Over17 + mul(halfDenominator, constantNeg32Over17)
	for range 3 {
		halfDenominatorTimesX := mul(halfDenominator, x)
		oneMinus := oneQ2 - halfDenominatorTimesX
		x += saturatingMulByPOTPositive(mul(x, oneMinus), 2)
	}
	return saturatingMulByPOTPositive(x, 1)
}

func roundingHalfSum(a, b int32) int32 {
	sum := int64(a) + int64(b)
	sign := int64(1)
	if sum < 0 {
		sign = -1
	}
	return int32((sum + sign) / 2)
}

func reciprocal(x int32, integerBits int) (int32, int) {
	headroomPlusOne := bits.LeadingZeros32(uint32(x))
	bitsOverUnit := integerBits - headroomPlusOne
	shiftedMinusOne := int32((uint32(x) << headroomPlusOne) - (uint32(1) << 31))
	return oneOverOnePlusX(shiftedMinusOne), bitsOverUnit
}
