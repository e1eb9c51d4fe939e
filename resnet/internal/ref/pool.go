package ref

import "math"

// Pool describes one MAX_POOL_2D or AVERAGE_POOL_2D over NHWC tensors with
// C channels. int8 pools keep the input's quantization (TFLite requires the
// output's to be the same), so they need no multiplier.
type Pool struct {
	Batch            int
	InH, InW, C      int
	OutH, OutW       int
	FilterH, FilterW int
	StrideH, StrideW int
	PadH, PadW       int

	ActMin, ActMax     int32   // int8 kernels: fused activation, quantized
	FloatMin, FloatMax float32 // float kernels
}

// window returns the filter rows/columns that fall inside the input for the
// output position (oy, ox), as TFLite's filter_{x,y}_{start,end}.
func (p *Pool) window(oy, ox int) (inY0, inX0, fy0, fy1, fx0, fx1 int) {
	inY0 = oy*p.StrideH - p.PadH
	inX0 = ox*p.StrideW - p.PadW
	fy0 = max(0, -inY0)
	fy1 = min(p.FilterH, p.InH-inY0)
	fx0 = max(0, -inX0)
	fx1 = min(p.FilterW, p.InW-inX0)
	return
}

// MaxPoolInt8 is reference_integer_ops::MaxPool: the largest input in the
// window (padding is ignored, not treated as a value), clamped.
func MaxPoolInt8(p *Pool, input, output []int8) {
	for b := 0; b < p.Batch; b++ {
		for oy := 0; oy < p.OutH; oy++ {
			for ox := 0; ox < p.OutW; ox++ {
				inY0, inX0, fy0, fy1, fx0, fx1 := p.window(oy, ox)
				for c := 0; c < p.C; c++ {
					m := int32(math.MinInt8)
					for fy := fy0; fy < fy1; fy++ {
						for fx := fx0; fx < fx1; fx++ {
							v := int32(input[((b*p.InH+inY0+fy)*p.InW+inX0+fx)*p.C+c])
							m = max(m, v)
						}
					}
					output[((b*p.OutH+oy)*p.OutW+ox)*p.C+c] = int8(clampInt32(m, p.ActMin, p.ActMax))
				}
			}
		}
	}
}

// MaxPoolFloat is reference_ops::MaxPool for float32.
func MaxPoolFloat(p *Pool, input, output []float32) {
	for b := 0; b < p.Batch; b++ {
		for oy := 0; oy < p.OutH; oy++ {
			for ox := 0; ox < p.OutW; ox++ {
				inY0, inX0, fy0, fy1, fx0, fx1 := p.window(oy, ox)
				for c := 0; c < p.C; c++ {
					m := float32(-math.MaxFloat32) // std::numeric_limits<float>::lowest()
					for fy := fy0; fy < fy1; fy++ {
						for fx := fx0; fx < fx1; fx++ {
							m = max(m, input[((b*p.InH+inY0+fy)*p.InW+inX0+fx)*p.C+c])
						}
					}
					output[((b*p.OutH+oy)*p.OutW+ox)*p.C+c] = clampFloat(m, p.FloatMin, p.FloatMax)
				}
			}
		}
	}
}

// AveragePoolInt8 is reference_integer_ops::AveragePool: the int32 sum of the
// inputs inside the image divided by how many there are (padding is not
// counted), rounded half away from zero: (sum ± count/2) / count with C++'s
// truncating division.
func AveragePoolInt8(p *Pool, input, output []int8) {
	for b := 0; b < p.Batch; b++ {
		for oy := 0; oy < p.OutH; oy++ {
			for ox := 0; ox < p.OutW; ox++ {
				inY0, inX0, fy0, fy1, fx0, fx1 := p.window(oy, ox)
				count := int32(max(0, fy1-fy0) * max(0, fx1-fx0))
				for c := 0; c < p.C; c++ {
					var acc int32
					for fy := fy0; fy < fy1; fy++ {
						for fx := fx0; fx < fx1; fx++ {
							acc += int32(input[((b*p.InH+inY0+fy)*p.InW+inX0+fx)*p.C+c])
						}
					}
					if count > 0 { // TFLite fails the op here; Prepare makes it impossible.
						if acc > 0 {
							acc = (acc + count/2) / count
						} else {
							acc = (acc - count/2) / count
						}
					}
					output[((b*p.OutH+oy)*p.OutW+ox)*p.C+c] = int8(clampInt32(acc, p.ActMin, p.ActMax))
				}
			}
		}
	}
}

// AveragePoolFloat is reference_ops::AveragePool for float32.
func AveragePoolFloat(p *Pool, input, output []float32) {
	for b := 0; b < p.Batch; b++ {
		for oy := 0; oy < p.OutH; oy++ {
			for ox := 0; ox < p.OutW; ox++ {
				inY0, inX0, fy0, fy1, fx0, fx1 := p.window(oy, ox)
				count := max(0, fy1-fy0) * max(0, fx1-fx0)
				for c := 0; c < p.C; c++ {
					var total float32
					for fy := fy0; fy < fy1; fy++ {
						for fx := fx0; fx < fx1; fx++ {
							total += input[((b*p.InH+inY0+fy)*p.InW+inX0+fx)*p.C+c]
						}
					}
					var avg float32
					if count > 0 {
						avg = total / float32(count)
					}
					output[((b*p.OutH+oy)*p.OutW+ox)*p.C+c] = clampFloat(avg, p.FloatMin, p.FloatMax)
				}
			}
		}
	}
}
