package ref

import (
	"fmt"
	"math"
)

// The int8 softmax follows TFLite's reference kernel
// (reference_ops::Softmax<int8_t, int8_t>, used by TFLite's kReference kernel
// type): input differences from the row maximum are rescaled to Q5.26, exp is
// gemmlowp's fixed-point exp_on_negative_values, the sum is accumulated in
// Q12.19, and its reciprocal comes from gemmlowp's Newton-Raphson
// one_over_one_plus_x_for_x_in_0_1. TFLite's default (kGenericOptimized)
// build instead uses a float32 lookup table (optimized_ops::Softmax) or a
// uint16 LUT; those can differ from this one by about 1 LSB. XNNPACK does
// not take int8 softmax in TFLite's delegate.
const (
	softmaxScaledDiffIntegerBits = 5  // Q5.26 for the rescaled differences
	softmaxAccumulationBits      = 12 // Q12.19 for the sum of exps
)

// Softmax describes one SOFTMAX over the last axis: Outer rows of Depth
// values each.
type Softmax struct {
	Outer, Depth int

	// Quantized (int8) kernel only; see NewSoftmaxInt8.
	InputMultiplier int32
	InputLeftShift  int
	DiffMin         int32

	// Float kernel only.
	Beta float32
}

// NewSoftmaxInt8 prepares TFLite's int8 softmax (PreprocessSoftmaxScaling and
// CalculateInputRadius). The output must be scale 1/256, zero point -128;
// the caller checks that. It fails where TFLite would abort: beta*scale so
// small that the input multiplier is not above 1.
func NewSoftmaxInt8(outer, depth int, beta, inputScale float32) (Softmax, error) {
	s := Softmax{Outer: outer, Depth: depth, Beta: beta}
	real := math.Min(float64(beta)*float64(inputScale)*(1<<(31-softmaxScaledDiffIntegerBits)), (1<<31)-1.0)
	if !(real > 1) {
		return Softmax{}, fmt.Errorf("softmax input multiplier beta*scale*2^26 = %g must be > 1 (beta %g, input scale %g)", real, beta, inputScale)
	}
	s.InputMultiplier, s.InputLeftShift = QuantizeMultiplier(real)
	if s.InputLeftShift < 0 || s.InputLeftShift > 31 {
		return Softmax{}, fmt.Errorf("softmax input shift %d out of range", s.InputLeftShift)
	}
	// CalculateInputRadius(5, left_shift): the largest difference whose
	// rescaled value still fits; smaller (more negative) ones give exp = 0.
	maxRescaled := float64((1<<softmaxScaledDiffIntegerBits)-1) *
		float64(int64(1)<<(31-softmaxScaledDiffIntegerBits)) / float64(int64(1)<<s.InputLeftShift)
	s.DiffMin = -int32(math.Floor(maxRescaled))
	return s, nil
}

// SoftmaxInt8 is reference_ops::Softmax for int8 input and output (output
// scale 1/256, zero point -128).
func SoftmaxInt8(p *Softmax, input, output []int8) {
	for r := 0; r < p.Outer; r++ {
		in := input[r*p.Depth:][:p.Depth]
		out := output[r*p.Depth:][:p.Depth]
		maxIn := int32(math.MinInt8)
		for _, v := range in {
			maxIn = max(maxIn, int32(v))
		}
		var sumOfExps int32 // Q12.19
		for _, v := range in {
			diff := int32(v) - maxIn
			if diff >= p.DiffMin {
				sumOfExps += RoundingDivideByPOT(p.Exp(diff), softmaxAccumulationBits)
			}
		}
		recip, shift := SoftmaxReciprocal(sumOfExps)
		for i, v := range in {
			diff := int32(v) - maxIn
			if diff < p.DiffMin {
				out[i] = math.MinInt8
				continue
			}
			unsat := RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(recip, p.Exp(diff)), shift)
			out[i] = int8(clampInt32(unsat+math.MinInt8, math.MinInt8, math.MaxInt8))
		}
	}
}

// Exp is SoftmaxInt8's exp of one difference diff = x - max of its row
// (diff >= p.DiffMin): the difference rescaled by beta and the input scale
// to Q5.26, then gemmlowp's exp_on_negative_values, in Q0.31.
func (p *Softmax) Exp(diff int32) int32 {
	return expOnNegativeValues(MultiplyByQuantizedMultiplierGreaterThanOne(diff, p.InputMultiplier, p.InputLeftShift))
}

// SoftmaxAccumulationBits is the integer bits of SoftmaxInt8's sum of exps
// (Q12.19): each exp enters it as RoundingDivideByPOT(exp, this).
const SoftmaxAccumulationBits = softmaxAccumulationBits

// SoftmaxReciprocal is SoftmaxInt8's reciprocal of a row's sum of exps
// (Q12.19) and the shift of its final RoundingDivideByPOT: an output is
// RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(recip, exp),
// shift) - 128, clamped to int8.
func SoftmaxReciprocal(sum int32) (recip int32, shift int) {
	recip, bitsOverUnit := reciprocal(sum, softmaxAccumulationBits)
	return recip, bitsOverUnit + 31 - 8
}

// SoftmaxFloat is reference_ops::Softmax for float32:
// exp((x - max) * beta) / sum.
func SoftmaxFloat(p *Softmax, input, output []float32) {
	for r := 0; r < p.Outer; r++ {
		in := input[r*p.Depth:][:p.Depth]
		out := output[r*p.Depth:][:p.Depth]
		m := float32(-math.MaxFloat32)
		for _, v := range in {
			m = max(m, v)
		}
		var sum float32
		for i, v := range in {
			e := float32(math.Exp(float64((v - m) * p.Beta)))
			out[i] = e
			sum += e
		}
		for i := range out {
			out[i] /= sum
		}
	}
}

// --- gemmlowp fixed-point helpers (fixedpoint.h), int32 raw values ---

// saturatingMulByPOTPositive is SaturatingRoundingMultiplyByPOT<e> for e > 0.
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

// expOnIntervalNegQuarterToZero is
// exp_on_interval_between_negative_one_quarter_and_0_excl: a Taylor series
// around -1/8 in Q0.31.
func expOnIntervalNegQuarterToZero(a int32) int32 {
	const (
		constantTerm = 1895147668 // exp(-1/8) in Q0.31
		oneOverThree = 715827883  // 1/3 in Q0.31
	)
	mul := SaturatingRoundingDoublingHighMul
	x := a + 1<<28 // a + 1/8
	x2 := mul(x, x)
	x3 := mul(x2, x)
	x4 := mul(x2, x2)
	x4Over4 := RoundingDivideByPOT(x4, 2)
	poly := RoundingDivideByPOT(mul(x4Over4+x3, oneOverThree)+x2, 1)
	return constantTerm + mul(constantTerm, x+poly)
}

// expOnNegativeValues is gemmlowp's exp_on_negative_values for a Q5.26 input
// a <= 0, returning Q0.31. It splits a into a multiple of 1/4 and a rest in
// [-1/4, 0), evaluates the rest with a polynomial and the multiple with a
// barrel shifter of exp(-2^k) constants.
func expOnNegativeValues(a int32) int32 {
	const fractionalBits = 31 - softmaxScaledDiffIntegerBits // 26
	const oneQuarter = int32(1) << (fractionalBits - 2)
	mask := oneQuarter - 1
	aModQuarterMinusQuarter := (a & mask) - oneQuarter
	// Rescale Q5.26 -> Q0.31 (a saturating left shift by 5).
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
		// Every exponent is below the 5 integer bits, so all seven apply.
		if remainder&(int32(1)<<(fractionalBits+b.exponent)) != 0 {
			result = SaturatingRoundingDoublingHighMul(result, b.multiplier)
		}
	}
	if a == 0 {
		return math.MaxInt32 // exactly one
	}
	return result
}

// oneOverOnePlusX is gemmlowp's one_over_one_plus_x_for_x_in_0_1: 1/(1+x)
// for x in [0, 1) in Q0.31, by three Newton-Raphson steps in Q2.29.
func oneOverOnePlusX(a int32) int32 {
	const (
		constant48Over17    = 1515870810  // Q2.29
		constantNeg32Over17 = -1010580540 // Q2.29
		oneQ2               = int32(1) << 29
	)
	mul := SaturatingRoundingDoublingHighMul
	halfDenominator := roundingHalfSum(a, math.MaxInt32) // (a + 1) / 2 in Q0.31
	x := constant48Over17 + mul(halfDenominator, constantNeg32Over17)
	for range 3 {
		halfDenominatorTimesX := mul(halfDenominator, x)     // Q2.29
		oneMinus := oneQ2 - halfDenominatorTimesX            // Q2.29
		x += saturatingMulByPOTPositive(mul(x, oneMinus), 2) // Q4.27 -> Q2.29
	}
	// ExactMulByPot<-1> (Q2.29 -> Q1.30, same raw), then Rescale<0> (Q1.30 -> Q0.31).
	return saturatingMulByPOTPositive(x, 1)
}

// roundingHalfSum is gemmlowp's RoundingHalfSum for int32.
func roundingHalfSum(a, b int32) int32 {
	sum := int64(a) + int64(b)
	sign := int64(1)
	if sum < 0 {
		sign = -1
	}
	return int32((sum + sign) / 2)
}

// reciprocal is TFLite's GetReciprocal: 1/x for x with integerBits integer
// bits, as a Q0.31 value scaled by 2^-bitsOverUnit.
func reciprocal(x int32, integerBits int) (int32, int) {
	headroomPlusOne := countLeadingZeros32(uint32(x))
	bitsOverUnit := integerBits - headroomPlusOne
	shiftedMinusOne := int32((uint32(x) << headroomPlusOne) - (uint32(1) << 31))
	return oneOverOnePlusX(shiftedMinusOne), bitsOverUnit
}
