// Package ref holds Shortcut's reference kernels: plain Go, one loop nest per
// operator, written to be read. They are the specification of what every
// operator computes. The integer arithmetic is TFLite's, step for step
// (tensorflow/lite/kernels/internal/common.h, quantization_util.cc and
// reference/integer_ops/*.h), so that an int8 model gives the same bytes here
// as in a real TFLite. Faster kernels elsewhere are tested against these.
//
// Every kernel takes plain slices in NHWC order and a parameter struct that
// the caller prepares once (shapes, padding, multipliers); kernels never
// allocate and never check their arguments: the interpreter's Prepare step
// does that.
package ref

import (
	"math"
	"math/bits"

	"github.com/shortcut-edge/shortcut/resnet"
)

// QuantizeMultiplier turns a real multiplier into TFLite's fixed-point form:
// a Q0.31 significand in [2^30, 2^31) and a power-of-two exponent, so that
// real ≈ multiplier * 2^(shift-31). Like TFLite it rounds the significand half
// away from zero, renormalizes when rounding reaches 2^31, and flushes
// multipliers below about 2^-31 to zero.
func QuantizeMultiplier(real float64) (multiplier int32, shift int) {
	if real == 0 {
		return 0, 0
	}
	q, exp := math.Frexp(real) // q in [0.5, 1), as std::frexp
	fixed := int64(math.Round(q * (1 << 31)))
	if fixed == 1<<31 {
		fixed /= 2
		exp++
	}
	if exp < -31 {
		return 0, 0
	}
	return int32(fixed), exp
}

// SaturatingRoundingDoublingHighMul is gemmlowp's high half of 2*a*b, rounded
// to nearest by a nudge of ±2^30 before a truncating division (so an exact
// half rounds toward +infinity), saturated for the one overflowing case.
func SaturatingRoundingDoublingHighMul(a, b int32) int32 {
	if a == b && a == math.MinInt32 {
		return math.MaxInt32
	}
	ab := int64(a) * int64(b)
	nudge := int64(1 << 30)
	if ab < 0 {
		nudge = 1 - (1 << 30)
	}
	// Go's integer division truncates toward zero, as C++'s does.
	return int32((ab + nudge) / (1 << 31))
}

// RoundingDivideByPOT is x / 2^exponent rounded to nearest, ties away from
// zero (gemmlowp). exponent must be in [0, 31].
func RoundingDivideByPOT(x int32, exponent int) int32 {
	mask := int32(int64(1)<<exponent - 1)
	remainder := x & mask
	threshold := mask >> 1
	if x < 0 {
		threshold++
	}
	result := x >> exponent
	if remainder > threshold {
		result++
	}
	return result
}

// MultiplyByQuantizedMultiplier is TFLite's default (double-rounding)
// requantization: x * multiplier * 2^(shift-31), rounded. A positive shift is
// applied before the multiplication (wrapping like the C++ does), a negative
// one after it, with rounding.
func MultiplyByQuantizedMultiplier(x, multiplier int32, shift int) int32 {
	left, right := 0, 0
	if shift > 0 {
		left = shift
	} else {
		right = -shift
	}
	return RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x*(int32(1)<<left), multiplier), right)
}

// MultiplyByQuantizedMultiplierGreaterThanOne is the left-shift-only variant
// used by softmax: no rounding shift afterwards.
func MultiplyByQuantizedMultiplierGreaterThanOne(x, multiplier int32, leftShift int) int32 {
	return SaturatingRoundingDoublingHighMul(x*(int32(1)<<leftShift), multiplier)
}

// Round is TfLiteRound (std::round): half away from zero.
func Round(x float64) float64 { return math.Round(x) }

// roundToInt32 rounds half away from zero and clamps to the int32 range, so
// that NaN, infinities and huge values cannot produce an undefined
// conversion (C++ would be undefined there; we pick a defined answer: NaN -> 0).
func roundToInt32(x float64) int32 {
	if x != x {
		return 0
	}
	r := math.Round(x)
	if r >= math.MaxInt32 {
		return math.MaxInt32
	}
	if r <= math.MinInt32 {
		return math.MinInt32
	}
	return int32(r)
}

// ActivationRangeInt8 is CalculateActivationRangeQuantized for an int8 output
// with the given scale and zero point: the fused activation becomes a clamp in
// the quantized domain. Bounds are zero_point + round(f / scale), with the
// division done in float32 as TFLite does.
func ActivationRangeInt8(act resnet.Activation, scale float32, zeroPoint int32) (lo, hi int32) {
	quantize := func(f float32) int32 {
		return addSat(zeroPoint, roundToInt32(float64(f/scale)))
	}
	lo, hi = math.MinInt8, math.MaxInt8
	switch act {
	case resnet.ActRelu:
		lo = max(lo, quantize(0))
	case resnet.ActRelu6:
		lo = max(lo, quantize(0))
		hi = min(hi, quantize(6))
	case resnet.ActReluN1To1:
		lo = max(lo, quantize(-1))
		hi = min(hi, quantize(1))
	}
	return lo, hi
}

// ActivationRangeFloat is CalculateActivationRange for float32 outputs.
func ActivationRangeFloat(act resnet.Activation) (lo, hi float32) {
	switch act {
	case resnet.ActRelu:
		return 0, math.MaxFloat32
	case resnet.ActRelu6:
		return 0, 6
	case resnet.ActReluN1To1:
		return -1, 1
	}
	return -math.MaxFloat32, math.MaxFloat32
}

// ActivationSupported reports whether the fused activation is one these
// kernels implement (NONE, RELU, RELU_N1_TO_1, RELU6).
func ActivationSupported(act resnet.Activation) bool {
	switch act {
	case resnet.ActNone, resnet.ActRelu, resnet.ActRelu6, resnet.ActReluN1To1:
		return true
	}
	return false
}

func addSat(a, b int32) int32 {
	s := int64(a) + int64(b)
	if s > math.MaxInt32 {
		return math.MaxInt32
	}
	if s < math.MinInt32 {
		return math.MinInt32
	}
	return int32(s)
}

func clampInt32(x, lo, hi int32) int32 {
	return min(max(x, lo), hi)
}

func clampFloat(x, lo, hi float32) float32 {
	return min(max(x, lo), hi)
}

// countLeadingZeros32 is TFLite's CountLeadingZeros for uint32 (32 for 0).
func countLeadingZeros32(x uint32) int { return bits.LeadingZeros32(x) }

// countLeadingZeros64 is the same for uint64 (64 for 0).
func countLeadingZeros64(x uint64) int { return bits.LeadingZeros64(x) }
