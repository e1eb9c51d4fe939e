package ref

import (
	"fmt"
	"math"
)

// This file is the "xnnpack" arithmetic: the requantization of the XNNPACK
// delegate that real TFLite builds (LiteRT, tfjs-tflite) hand int8 graphs
// to, as opposed to TFLite's reference kernels above. Only the output
// stages differ; the int32 accumulation is the same.
//
// CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED (XNNPACK's qs8/qc8w "fp32"
// requantization, convolution-nhwc.c and fully-connected-nc.c):
//
//	scale[c] = float32(float32(input_scale * filter_scale[c]) / output_scale)
//	y = clamp(float32(acc) * scale[c], act_min - zp, act_max - zp)  (float32)
//	out = round_half_to_even(y) + zp
//
// ADD (XNNPACK's qs8 vadd): each input is scaled by a 21-bit integer
// multiplier, the sum shifted right by one common amount (rounding half
// towards +infinity), then clamped; see NewAddXNNPACK.

// XNNPACKScales is the per-channel float32 requantization scale of a
// convolution or fully-connected layer as XNNPACK computes it: the product
// and the quotient each rounded to float32. One filter scale means
// per-tensor weights.
func XNNPACKScales(inputScale float32, filterScales []float32, outputScale float32, channels int) []float32 {
	s := make([]float32, channels)
	for c := range channels {
		f := filterScales[0]
		if len(filterScales) > 1 {
			f = filterScales[c]
		}
		s[c] = float32(float32(inputScale*f) / outputScale)
	}
	return s
}

// RequantizeFP32 is XNNPACK's fp32 requantization of one accumulator:
// float32 product, clamped to the activation range (in the output domain
// less the zero point), rounded to nearest with ties to even.
func RequantizeFP32(acc int32, scale float32, zeroPoint, lo, hi int32) int8 {
	y := float32(acc) * scale
	y = min(max(y, float32(lo-zeroPoint)), float32(hi-zeroPoint))
	return int8(int32(math.RoundToEven(float64(y))) + zeroPoint)
}

// requantizeConv is requantize with p's arithmetic: p.Scale when set.
func requantizeConv(p *Conv, acc int32, oc int) int8 {
	if p.Scale != nil {
		return RequantizeFP32(acc, p.Scale[oc], p.OutputOffset, p.ActMin, p.ActMax)
	}
	return requantize(acc, p.Multiplier[oc], p.Shift[oc], p.OutputOffset, p.ActMin, p.ActMax)
}

// NewAddXNNPACK prepares an int8 ADD with XNNPACK's qs8 vadd arithmetic
// (xnn_init_qs8_add_minmax_*_params): a_scale = float32(scale1/outScale),
// b likewise; shift = 20 - exponent(max(|a|, |b|)); each multiplier is
// lrintf(scale * 2^shift) (ties to even); the bias folds in the rounding
// term 2^(shift-1) and both zero points. It fails where XNNPACK refuses
// the operator: an input-to-output scale ratio outside [2^-10, 2^8).
func NewAddXNNPACK(scale1 float32, zp1 int32, scale2 float32, zp2 int32, outScale float32, outZP int32, actMin, actMax int32) (Add, error) {
	a1 := scale1 / outScale
	a2 := scale2 / outScale
	for _, s := range []float32{a1, a2} {
		if !(s >= 0x1p-10 && s < 0x1p8) {
			return Add{}, fmt.Errorf("input-to-output scale ratio %g is outside XNNPACK's [2^-10, 2^8)", s)
		}
	}
	big := max(a1, a2)
	exp := int32(math.Float32bits(big)>>23) - 127
	shift := 20 - exp // in [12, 30]
	m1 := int32(math.RoundToEven(float64(a1) * math.Ldexp(1, int(shift))))
	m2 := int32(math.RoundToEven(float64(a2) * math.Ldexp(1, int(shift))))
	return Add{
		XNNPACK: true, ActMin: actMin, ActMax: actMax, OutputOffset: outZP,
		Input1Multiplier: m1, Input2Multiplier: m2, OutputShift: int(shift),
		XNNPACKBias: int32(1)<<(shift-1) - m1*zp1 - m2*zp2,
	}, nil
}

// addXNNPACK is XNNPACK's qs8 vadd on one pair.
func addXNNPACK(p *Add, x, y int8) int8 {
	acc := p.XNNPACKBias + int32(x)*p.Input1Multiplier + int32(y)*p.Input2Multiplier
	v := acc >> p.OutputShift
	v = min(max(v, p.ActMin-p.OutputOffset), p.ActMax-p.OutputOffset)
	return int8(v + p.OutputOffset)
}

// NewMeanXNNPACK prepares an int8 spatial MEAN with XNNPACK's arithmetic
// (qs8 global average pooling / mean): the int32 sum less count * input
// zero point, times the float32 scale input_scale / (output_scale * count),
// then RequantizeFP32. TFLite's reference instead folds 1/count into a Q31
// multiplier by integer division, which is off by one LSB on about a fifth
// of the outputs. Every float32 rounding of the scale we tried (this one,
// (in/out)/count, (in/out)*(1/count)) gave the same bytes as LiteRT.js on
// the cases measured; this is the one XNNPACK's average pooling writes.
func NewMeanXNNPACK(batch, h, w, c int, inScale float32, inZP int32, outScale float32, outZP int32) Mean {
	m := NewMeanInt8(batch, h, w, c, inScale, inZP, outScale, outZP)
	m.Scale = inScale / (outScale * float32(h*w))
	return m
}
