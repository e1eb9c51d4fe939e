package resnet

import "math"

// PerTensor returns the single scale and zero point of a per-tensor
// quantization; ok is false for nil, empty or per-channel parameters.
func (q *Quant) PerTensor() (scale float32, zeroPoint int64, ok bool) {
	if q == nil || len(q.Scale) != 1 {
		return 0, 0, false
	}
	if len(q.ZeroPoint) > 0 {
		zeroPoint = q.ZeroPoint[0]
	}
	return q.Scale[0], zeroPoint, true
}

// QuantizeInt8 writes round(x/scale) + zeroPoint, clamped to int8, for each x
// of src into dst (len(dst) >= len(src)), with the per-tensor parameters of q:
// how a real value enters an int8 model input (TFLite's QUANTIZE rounds the
// same way, half away from zero). It reports false, writing nothing, when q is
// not per-tensor.
func (q *Quant) QuantizeInt8(dst []int8, src []float32) bool {
	scale, zp, ok := q.PerTensor()
	if !ok {
		return false
	}
	s, z := float64(scale), float64(zp)
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = int8(math.Max(-128, math.Min(127, math.Round(float64(x)/s)+z)))
	}
	return true
}

// DequantizeInt8 writes scale * (v - zeroPoint) for each v of src into dst
// (len(dst) >= len(src)), with the per-tensor parameters of q. It reports
// false, writing nothing, when q is not per-tensor.
func (q *Quant) DequantizeInt8(dst []float32, src []int8) bool {
	scale, zp, ok := q.PerTensor()
	if !ok {
		return false
	}
	dst = dst[:len(src)]
	for i, v := range src {
		// float32(v - zp) is exact and the float32 product is correctly
		// rounded: the same value as computing in float64 and rounding once.
		dst[i] = scale * float32(int64(v)-zp)
	}
	return true
}
