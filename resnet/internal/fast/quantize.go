package fast

import "math"

// QuantizeInt8 is ref.QuantizeInt8 (float32 -> int8 QUANTIZE), with the
// bulk in NEON on arm64.
func QuantizeInt8(input []float32, output []int8, scale float32, zeroPoint int32) {
	output = output[:len(input)]
	n := quantizeBulk(input, output, scale, zeroPoint)
	quantizeGo(input[n:], output[n:], scale, zeroPoint)
}

// quantizeGo is ref.QuantizeInt8 with the clamps folded: ref rounds
// x/scale (float32 division, ties away from zero), clamps to int32 (NaN to
// 0), adds the zero point saturating and clamps to int8; clamping the
// rounded value to [-128-zp, 127-zp] first gives the same bytes, since the
// int32 bounds lie far outside and every step is monotone.
func quantizeGo(input []float32, output []int8, scale float32, zeroPoint int32) {
	output = output[:len(input)]
	lo, hi := float64(-128-zeroPoint), float64(127-zeroPoint)
	for i, x := range input {
		r := math.Round(float64(x / scale))
		if r != r {
			r = 0
		}
		output[i] = int8(int32(min(max(r, lo), hi)) + zeroPoint)
	}
}
