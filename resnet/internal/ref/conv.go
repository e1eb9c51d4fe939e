package ref

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
	for b := 0; b < p.Batch; b++ {
		for oy := 0; oy < p.OutH; oy++ {
			inY0 := oy*p.StrideH - p.PadH
			for ox := 0; ox < p.OutW; ox++ {
				inX0 := ox*p.StrideW - p.PadW
				outBase := ((b*p.OutH+oy)*p.OutW + ox) * p.OutC
				for oc := 0; oc < p.OutC; oc++ {
					var acc int32
					for fy := 0; fy < p.FilterH; fy++ {
						iy := inY0 + fy*p.DilationH
						if iy < 0 || iy >= p.InH {
							continue
						}
						for fx := 0; fx < p.FilterW; fx++ {
							ix := inX0 + fx*p.DilationW
							if ix < 0 || ix >= p.InW {
								continue
							}
							in := input[((b*p.InH+iy)*p.InW+ix)*p.InC:][:p.InC]
							f := filter[((oc*p.FilterH+fy)*p.FilterW+fx)*p.InC:][:p.InC]
							for ic, v := range in {
								acc += int32(f[ic]) * (int32(v) + p.InputOffset)
							}
						}
					}
					if bias != nil {
						acc += bias[oc]
					}
					output[outBase+oc] = requantizeConv(p, acc, oc)
				}
			}
		}
	}
}

// ConvFloat is reference_ops::Conv for float32: the sum over taps inside the
// image, plus bias, clamped to the activation range. bias may be nil.
func ConvFloat(p *Conv, input, filter, bias, output []float32) {
	for b := 0; b < p.Batch; b++ {
		for oy := 0; oy < p.OutH; oy++ {
			inY0 := oy*p.StrideH - p.PadH
			for ox := 0; ox < p.OutW; ox++ {
				inX0 := ox*p.StrideW - p.PadW
				outBase := ((b*p.OutH+oy)*p.OutW + ox) * p.OutC
				for oc := 0; oc < p.OutC; oc++ {
					var total float32
					for fy := 0; fy < p.FilterH; fy++ {
						iy := inY0 + fy*p.DilationH
						if iy < 0 || iy >= p.InH {
							continue
						}
						for fx := 0; fx < p.FilterW; fx++ {
							ix := inX0 + fx*p.DilationW
							if ix < 0 || ix >= p.InW {
								continue
							}
							in := input[((b*p.InH+iy)*p.InW+ix)*p.InC:][:p.InC]
							f := filter[((oc*p.FilterH+fy)*p.FilterW+fx)*p.InC:][:p.InC]
							for ic, v := range in {
								total += float32(v * f[ic])
							}
						}
					}
					if bias != nil {
						total += bias[oc]
					}
					output[outBase+oc] = clampFloat(total, p.FloatMin, p.FloatMax)
				}
			}
		}
	}
}

// DepthwiseConvInt8 is reference_integer_ops::DepthwiseConvPerChannel: each
// input channel ic feeds DepthMultiplier output channels ic*mult+m, each with
// its own FilterH x FilterW filter and requantization. bias may be nil.
func DepthwiseConvInt8(p *Conv, input, filter []int8, bias []int32, output []int8) {
	for b := 0; b < p.Batch; b++ {
		for oy := 0; oy < p.OutH; oy++ {
			inY0 := oy*p.StrideH - p.PadH
			for ox := 0; ox < p.OutW; ox++ {
				inX0 := ox*p.StrideW - p.PadW
				outBase := ((b*p.OutH+oy)*p.OutW + ox) * p.OutC
				for ic := 0; ic < p.InC; ic++ {
					for m := 0; m < p.DepthMultiplier; m++ {
						oc := ic*p.DepthMultiplier + m
						var acc int32
						for fy := 0; fy < p.FilterH; fy++ {
							iy := inY0 + fy*p.DilationH
							if iy < 0 || iy >= p.InH {
								continue
							}
							for fx := 0; fx < p.FilterW; fx++ {
								ix := inX0 + fx*p.DilationW
								if ix < 0 || ix >= p.InW {
									continue
								}
								v := int32(input[((b*p.InH+iy)*p.InW+ix)*p.InC+ic])
								f := int32(filter[(fy*p.FilterW+fx)*p.OutC+oc])
								acc += f * (v + p.InputOffset)
							}
						}
						if bias != nil {
							acc += bias[oc]
						}
						output[outBase+oc] = requantizeConv(p, acc, oc)
					}
				}
			}
		}
	}
}

// DepthwiseConvFloat is reference_ops::DepthwiseConv for float32.
func DepthwiseConvFloat(p *Conv, input, filter, bias, output []float32) {
	for b := 0; b < p.Batch; b++ {
		for oy := 0; oy < p.OutH; oy++ {
			inY0 := oy*p.StrideH - p.PadH
			for ox := 0; ox < p.OutW; ox++ {
				inX0 := ox*p.StrideW - p.PadW
				outBase := ((b*p.OutH+oy)*p.OutW + ox) * p.OutC
				for ic := 0; ic < p.InC; ic++ {
					for m := 0; m < p.DepthMultiplier; m++ {
						oc := ic*p.DepthMultiplier + m
						var total float32
						for fy := 0; fy < p.FilterH; fy++ {
							iy := inY0 + fy*p.DilationH
							if iy < 0 || iy >= p.InH {
								continue
							}
							for fx := 0; fx < p.FilterW; fx++ {
								ix := inX0 + fx*p.DilationW
								if ix < 0 || ix >= p.InW {
									continue
								}
								v := input[((b*p.InH+iy)*p.InW+ix)*p.InC+ic]
								total += float32(v * filter[(fy*p.FilterW+fx)*p.OutC+oc])
							}
						}
						if bias != nil {
							total += bias[oc]
						}
						output[outBase+oc] = clampFloat(total, p.FloatMin, p.FloatMax)
					}
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
