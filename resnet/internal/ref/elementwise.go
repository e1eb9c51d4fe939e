package ref

import (
	"fmt"
	"math"
)

// Add describes one ADD of two same-shaped tensors.
type Add struct {
	// Quantized (int8) kernel only: TFLite's scheme (add.cc). Inputs are
	// shifted left by LeftShift (20) for headroom, each rescaled to a common
	// scale of twice the larger input scale, summed, then rescaled to the
	// output.
	Input1Offset, Input2Offset int32 // minus the input zero points
	OutputOffset               int32 // the output zero point
	LeftShift                  int
	Input1Multiplier           int32
	Input1Shift                int
	Input2Multiplier           int32
	Input2Shift                int
	OutputMultiplier           int32
	OutputShift                int
	ActMin, ActMax             int32
	// XNNPACK selects the "xnnpack" arithmetic (NewAddXNNPACK): then
	// Input1/2Multiplier are XNNPACK's 21-bit multipliers, OutputShift its
	// right shift and XNNPACKBias its bias; the other quantized fields are
	// unused.
	XNNPACK     bool
	XNNPACKBias int32

	// Float kernel only.
	FloatMin, FloatMax float32
}

// NewAddInt8 prepares an int8 ADD exactly as TFLite's PrepareGeneralSubOp /
// add.cc Prepare does for int8. It fails where TFLite would abort: a
// multiplier not strictly between 0 and 1 (for the output one this means the
// output scale is more than 2^20 times smaller than the inputs').
func NewAddInt8(scale1 float32, zp1 int32, scale2 float32, zp2 int32, outScale float32, outZP int32, actMin, actMax int32) (Add, error) {
	const leftShift = 20
	// 2*max(s1, s2) is computed in float32, then widened, as in the C++.
	twiceMax := float64(2 * max(scale1, scale2))
	real1 := float64(scale1) / twiceMax
	real2 := float64(scale2) / twiceMax
	realOut := twiceMax / float64(float32(1<<leftShift)*outScale)
	a := Add{
		Input1Offset: -zp1, Input2Offset: -zp2, OutputOffset: outZP,
		LeftShift: leftShift, ActMin: actMin, ActMax: actMax,
	}
	var err error
	if a.Input1Multiplier, a.Input1Shift, err = smallerThanOne(real1); err != nil {
		return Add{}, fmt.Errorf("input 1 multiplier: %w", err)
	}
	if a.Input2Multiplier, a.Input2Shift, err = smallerThanOne(real2); err != nil {
		return Add{}, fmt.Errorf("input 2 multiplier: %w", err)
	}
	if a.OutputMultiplier, a.OutputShift, err = smallerThanOne(realOut); err != nil {
		return Add{}, fmt.Errorf("output multiplier: %w", err)
	}
	return a, nil
}

// smallerThanOne is QuantizeMultiplierSmallerThanOneExp, with errors where
// TFLite has CHECKs.
func smallerThanOne(real float64) (int32, int, error) {
	if !(real > 0 && real < 1) {
		return 0, 0, fmt.Errorf("real multiplier %g is not in (0, 1)", real)
	}
	m, s := QuantizeMultiplier(real)
	if s > 0 {
		return 0, 0, fmt.Errorf("real multiplier %g gives shift %d > 0", real, s)
	}
	return m, s, nil
}

// AddInt8 is reference_integer_ops::AddElementwise for int8.
// With p.XNNPACK it is XNNPACK's qs8 vadd instead.
func AddInt8(p *Add, in1, in2, output []int8) {
	if p.XNNPACK {
		for i := range output {
			output[i] = addXNNPACK(p, in1[i], in2[i])
		}
		return
	}
	for i := range output {
		v1 := (int32(in1[i]) + p.Input1Offset) * (1 << p.LeftShift)
		v2 := (int32(in2[i]) + p.Input2Offset) * (1 << p.LeftShift)
		s1 := MultiplyByQuantizedMultiplier(v1, p.Input1Multiplier, p.Input1Shift)
		s2 := MultiplyByQuantizedMultiplier(v2, p.Input2Multiplier, p.Input2Shift)
		raw := MultiplyByQuantizedMultiplier(s1+s2, p.OutputMultiplier, p.OutputShift) + p.OutputOffset
		output[i] = int8(clampInt32(raw, p.ActMin, p.ActMax))
	}
}

// AddFloat is reference_ops::Add for float32.
func AddFloat(p *Add, in1, in2, output []float32) {
	for i := range output {
		output[i] = clampFloat(in1[i]+in2[i], p.FloatMin, p.FloatMax)
	}
}

// QuantizeInt8 is reference_ops::AffineQuantize to int8:
// zero_point + round(x / scale) (float32 division, ties away from zero),
// clamped to [-128, 127]. NaN maps to the zero point.
func QuantizeInt8(input []float32, output []int8, scale float32, zeroPoint int32) {
	for i, x := range input {
		q := addSat(roundToInt32(float64(x/scale)), zeroPoint)
		output[i] = int8(clampInt32(q, math.MinInt8, math.MaxInt8))
	}
}

// Requant describes an int8 -> int8 QUANTIZE (a change of scale and zero
// point), as TFLite's quantize.cc: multiplier from double(in)/double(out).
type Requant struct {
	InputZeroPoint, OutputZeroPoint int32
	Multiplier                      int32
	Shift                           int
}

// RequantizeInt8 is reference_ops::Requantize for int8 -> int8.
func RequantizeInt8(p *Requant, input, output []int8) {
	for i, x := range input {
		v := MultiplyByQuantizedMultiplier(int32(x)-p.InputZeroPoint, p.Multiplier, p.Shift) + p.OutputZeroPoint
		output[i] = int8(clampInt32(v, math.MinInt8, math.MaxInt8))
	}
}

// DequantizeInt8 is reference_ops::Dequantize: float(double(scale) * (q - zp)).
func DequantizeInt8(input []int8, output []float32, scale float32, zeroPoint int32) {
	s := float64(scale)
	for i, q := range input {
		output[i] = float32(s * float64(int32(q)-zeroPoint))
	}
}
