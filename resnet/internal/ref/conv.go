package ref

import "iter"

// Conv describes one CONV_2D or DEPTHWISE_CONV_2D. Input is NHWC
// [Batch, InH, InW, InC], output NHWC [Batch, OutH, OutW, OutC].
// CONV_2D filters are OHWI [OutC, FilterH, FilterW, InC]; DEPTHWISE_CONV_2D
// filters are [1, FilterH, FilterW, OutC] with OutC = InC * DepthMultiplier.
type Conv struct {
	Batch                int
	InH, InW, InC        int
	OutH, OutW, OutC     int
	FilterH, FilterW     int
	StrideH, StrideW     int
	DilationH, DilationW int
	PadH, PadW           int // top and left padding (see PaddingBefore)
	DepthMultiplier      int // depthwise only

	// Quantized (int8) kernels only.
	InputOffset  int32   // minus the input zero point
	OutputOffset int32   // the output zero point
	Multiplier   []int32 // per output channel (QuantizeMultiplier of in*filter/out scale)
	Shift        []int   // per output channel
	ActMin       int32   // fused activation clamp, quantized
	ActMax       int32
	// Scale, when not nil, selects the "xnnpack" arithmetic: one float32
	// requantization scale per output channel (XNNPACKScales) replaces
	// Multiplier and Shift (see RequantizeFP32).
	Scale []float32

	// Float kernels only: the fused activation clamp.
	FloatMin, FloatMax float32
}

// PerChannelMultipliers prepares the requantization of a convolution's int32
// accumulators, as TFLite's PopulateConvolutionQuantizationParams:
// double(input scale) * double(filter scale[c]) / double(output scale) for
// each output channel. One filter scale means per-tensor weights.
func PerChannelMultipliers(inputScale float32, filterScales []float32, outputScale float32, channels int) ([]int32, []int) {
	mult := make([]int32, channels)
	shift := make([]int, channels)
	for c := range channels {
		s := filterScales[0]
		if len(filterScales) > 1 {
			s = filterScales[c]
		}
		mult[c], shift[c] = QuantizeMultiplier(float64(inputScale) * float64(s) / float64(outputScale))
	}
	return mult, shift
}

// requantize takes one int32 accumulator to the int8 output domain: scale,
// add the output zero point, clamp to the activation range.
func requantize(acc, multiplier int32, shift int, offset, lo, hi int32) int8 {
	acc = MultiplyByQuantizedMultiplier(acc, multiplier, shift)
	acc += offset
	return int8(clampInt32(acc, lo, hi))
}

// ConvInt8 is reference_integer_ops::ConvPerChannel: int32 accumulation of
// filter * (input + input_offset) over the taps inside the image (padding
// taps contribute nothing, i.e. the input zero point), plus bias, then
// per-channel requantization. bias may be nil.
func ConvInt8(p *Conv, input, filter []int8, bias []int32, output []int8) {
	taps := p.FilterH * p.FilterW
	for out, o := range p.outputs() {
		for oc := range p.OutC {
			var acc int32
			for pix, tap := range p.window(o) {
				in := input[pix*p.InC:][:p.InC]
				f := filter[(oc*taps+tap)*p.InC:][:p.InC]
				for ic, v := range in {
					acc += int32(f[ic]) * (int32(v) + p.InputOffset)
				}
			}
			if bias != nil {
				acc += bias[oc]
			}
			output[out+oc] = requantizeConv(p, acc, oc)
		}
	}
}

// ConvFloat is reference_ops::Conv for float32: the sum over taps inside the
// image, plus bias, clamped to the activation range. bias may be nil.
func ConvFloat(p *Conv, input, filter, bias, output []float32) {
	taps := p.FilterH * p.FilterW
	for out, o := range p.outputs() {
		for oc := range p.OutC {
			var total float32
			for pix, tap := range p.window(o) {
				in := input[pix*p.InC:][:p.InC]
				f := filter[(oc*taps+tap)*p.InC:][:p.InC]
				for ic, v := range in {
					total += float32(v * f[ic])
				}
			}
			if bias != nil {
				total += bias[oc]
			}
			output[out+oc] = clampFloat(total, p.FloatMin, p.FloatMax)
		}
	}
}

// DepthwiseConvInt8 is reference_integer_ops::DepthwiseConvPerChannel: each
// input channel ic feeds DepthMultiplier output channels ic*mult+m, each with
// its own FilterH x FilterW filter and requantization. bias may be nil.
func DepthwiseConvInt8(p *Conv, input, filter []int8, bias []int32, output []int8) {
	for out, o := range p.outputs() {
		for ic := range p.InC {
			for m := range p.DepthMultiplier {
				oc := ic*p.DepthMultiplier + m
				var acc int32
				for pix, tap := range p.window(o) {
					v := int32(input[pix*p.InC+ic])
					f := int32(filter[tap*p.OutC+oc])
					acc += f * (v + p.InputOffset)
				}
				if bias != nil {
					acc += bias[oc]
				}
				output[out+oc] = requantizeConv(p, acc, oc)
			}
		}
	}
}

// DepthwiseConvFloat is reference_ops::DepthwiseConv for float32.
func DepthwiseConvFloat(p *Conv, input, filter, bias, output []float32) {
	for out, o := range p.outputs() {
		for ic := range p.InC {
			for m := range p.DepthMultiplier {
				oc := ic*p.DepthMultiplier + m
				var total float32
				for pix, tap := range p.window(o) {
					total += float32(input[pix*p.InC+ic] * filter[tap*p.OutC+oc])
				}
				if bias != nil {
					total += bias[oc]
				}
				output[out+oc] = clampFloat(total, p.FloatMin, p.FloatMax)
			}
		}
	}
}

// pixel is an output pixel: batch, row, column.
type pixel struct{ b, y, x int }

// outputs yields every output pixel in NHWC order with the index of its
// first channel in the output.
func (p *Conv) outputs() iter.Seq2[int, pixel] {
	return func(yield func(int, pixel) bool) {
		out := 0
		for b := range p.Batch {
			for y := range p.OutH {
				for x := range p.OutW {
					if !yield(out, pixel{b, y, x}) {
						return
					}
					out += p.OutC
				}
			}
		}
	}
}

// window yields the filter taps of output pixel o that fall
// inside the input image, in filter order: the input pixel's index
// ((b*InH+iy)*InW+ix) and the tap's (fy*FilterW+fx). Taps in the padding
// are skipped: they would multiply the input zero point, adding nothing.
func (p *Conv) window(o pixel) iter.Seq2[int, int] {
	return func(yield func(pix, tap int) bool) {
		y0, x0 := o.y*p.StrideH-p.PadH, o.x*p.StrideW-p.PadW
		for fy := range p.FilterH {
			iy := y0 + fy*p.DilationH
			if iy < 0 || iy >= p.InH {
				continue
			}
			for fx := range p.FilterW {
				ix := x0 + fx*p.DilationW
				if ix < 0 || ix >= p.InW {
					continue
				}
				if !yield((o.b*p.InH+iy)*p.InW+ix, fy*p.FilterW+fx) {
					return
				}
			}
		}
	}
}

// FullyConnected describes one FULLY_CONNECTED: input viewed as
// [Batch, InDepth], weights [OutDepth, InDepth], output [Batch, OutDepth].
type FullyConnected struct {
	Batch, InDepth, OutDepth int

	// Quantized (int8) kernel only.
	InputOffset  int32   // minus the input zero point
	FilterOffset int32   // minus the weights zero point (0 for symmetric weights)
	OutputOffset int32   // the output zero point
	Multiplier   []int32 // one (per-tensor weights) or OutDepth (per-channel)
	Shift        []int
	ActMin       int32
	ActMax       int32
	// Scale, when not nil, selects the "xnnpack" arithmetic: float32
	// requantization scales, one or OutDepth (see RequantizeFP32).
	Scale []float32

	// Float kernel only.
	FloatMin, FloatMax float32
}

// FullyConnectedInt8 is reference_integer_ops::FullyConnected (per-tensor) and
// FullyConnectedPerChannel: sum of (w + filter_offset) * (x + input_offset),
// plus bias, requantized. bias may be nil.
func FullyConnectedInt8(p *FullyConnected, input, weights []int8, bias []int32, output []int8) {
	for b := 0; b < p.Batch; b++ {
		in := input[b*p.InDepth:][:p.InDepth]
		for o := 0; o < p.OutDepth; o++ {
			w := weights[o*p.InDepth:][:p.InDepth]
			var acc int32
			for d, v := range in {
				acc += (int32(w[d]) + p.FilterOffset) * (int32(v) + p.InputOffset)
			}
			if bias != nil {
				acc += bias[o]
			}
			c := 0
			if len(p.Multiplier) > 1 {
				c = o
			}
			if p.Scale != nil {
				c = 0
				if len(p.Scale) > 1 {
					c = o
				}
				output[b*p.OutDepth+o] = RequantizeFP32(acc, p.Scale[c], p.OutputOffset, p.ActMin, p.ActMax)
				continue
			}
			output[b*p.OutDepth+o] = requantize(acc, p.Multiplier[c], p.Shift[c], p.OutputOffset, p.ActMin, p.ActMax)
		}
	}
}

// FullyConnectedFloat is reference_ops::FullyConnected for float32.
func FullyConnectedFloat(p *FullyConnected, input, weights, bias, output []float32) {
	for b := 0; b < p.Batch; b++ {
		in := input[b*p.InDepth:][:p.InDepth]
		for o := 0; o < p.OutDepth; o++ {
			w := weights[o*p.InDepth:][:p.InDepth]
			var total float32
			for d, v := range in {
				total += float32(v * w[d])
			}
			if bias != nil {
				total += bias[o]
			}
			output[b*p.OutDepth+o] = clampFloat(total, p.FloatMin, p.FloatMax)
		}
	}
}
