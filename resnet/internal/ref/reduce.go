package ref

import (
	"math"
)

// Mean describes a MEAN over the two spatial axes of an NHWC tensor
// [Batch, H, W, C] into [Batch, C] (with or without the kept unit axes: the
// memory layout is the same).
type Mean struct {
	Batch, H, W, C int

	// Quantized (int8) kernel only.
	InputZeroPoint  int32
	OutputZeroPoint int32
	Multiplier      int32 // already includes the 1/(H*W) factor
	Shift           int
	// Scale, when not 0, selects the "xnnpack" arithmetic (see
	// NewMeanXNNPACK) and replaces Multiplier and Shift.
	Scale float32
}

// NewMeanInt8 prepares an int8 MEAN as TFLite's reference path does
// (reduce.cc PrepareMeanOrSum + reference_ops::QuantizedMeanOrSum): the
// multiplier of input/output scale is computed first, then 1/count is folded
// into it by shifting the multiplier left by floor(log2(count)) (at most 32,
// and at most 31+shift) and dividing by count with integer truncation.
func NewMeanInt8(batch, h, w, c int, inScale float32, inZP int32, outScale float32, outZP int32) Mean {
	m := Mean{Batch: batch, H: h, W: w, C: c, InputZeroPoint: inZP, OutputZeroPoint: outZP}
	mult, shift := QuantizeMultiplier(float64(inScale) / float64(outScale))
	n := int64(h) * int64(w)
	s := 63 - countLeadingZeros64(uint64(n))
	s = min(s, 32)
	s = min(s, 31+shift)
	m.Multiplier = int32((int64(mult) << s) / n)
	m.Shift = shift - s
	return m
}

// MeanInt8 is reference_ops::QuantizedMeanOrSum (compute_sum=false) for a
// spatial mean: int32 sum of the raw inputs, minus zero_point*count, then one
// requantization (which also divides by count), plus the output zero point.
func MeanInt8(p *Mean, input, output []int8) {
	n := int64(p.H) * int64(p.W)
	for b := 0; b < p.Batch; b++ {
		for c := 0; c < p.C; c++ {
			var sum int32
			for i := 0; i < p.H*p.W; i++ {
				sum += int32(input[(b*p.H*p.W+i)*p.C+c])
			}
			shifted := int32(int64(sum) - int64(p.InputZeroPoint)*n)
			if p.Scale != 0 {
				output[b*p.C+c] = RequantizeFP32(shifted, p.Scale, p.OutputZeroPoint, math.MinInt8, math.MaxInt8)
				continue
			}
			v := MultiplyByQuantizedMultiplier(shifted, p.Multiplier, p.Shift) + p.OutputZeroPoint
			output[b*p.C+c] = int8(clampInt32(v, math.MinInt8, math.MaxInt8))
		}
	}
}

// MeanFloat is reference_ops::Mean for float32: float32 sum in h, w order,
// divided by H*W.
func MeanFloat(p *Mean, input, output []float32) {
	n := float32(p.H * p.W)
	for b := 0; b < p.Batch; b++ {
		for c := 0; c < p.C; c++ {
			var sum float32
			for i := 0; i < p.H*p.W; i++ {
				sum += input[(b*p.H*p.W+i)*p.C+c]
			}
			output[b*p.C+c] = sum / n
		}
	}
}

// Pad describes a PAD of a tensor of rank <= 4, extended to 4 dimensions
// with leading 1s.
type Pad struct {
	InShape  [4]int
	Before   [4]int
	OutShape [4]int // InShape + Before + After
}

// PadTensor is reference_ops::Pad with a constant pad value (for int8 TFLite
// uses the output zero point, i.e. real 0).
func PadTensor[T int8 | float32](p *Pad, input, output []T, value T) {
	in, out, bf := p.InShape, p.OutShape, p.Before
	i := 0 // output index, walked in order
	for d0 := 0; d0 < out[0]; d0++ {
		for d1 := 0; d1 < out[1]; d1++ {
			for d2 := 0; d2 < out[2]; d2++ {
				row := output[i : i+out[3]]
				i += out[3]
				s0, s1, s2 := d0-bf[0], d1-bf[1], d2-bf[2]
				if s0 < 0 || s0 >= in[0] || s1 < 0 || s1 >= in[1] || s2 < 0 || s2 >= in[2] {
					for k := range row {
						row[k] = value
					}
					continue
				}
				src := input[((s0*in[1]+s1)*in[2]+s2)*in[3]:][:in[3]]
				for k := 0; k < bf[3]; k++ {
					row[k] = value
				}
				copy(row[bf[3]:], src)
				for k := bf[3] + in[3]; k < out[3]; k++ {
					row[k] = value
				}
			}
		}
	}
}
