package fast

import "github.com/shortcut-edge/shortcut/resnet/internal/ref"

// MaxPool is a prepared int8 MAX_POOL_2D: ref.MaxPoolInt8, split by output
// rows and vectorized over channels (max is exact, so any order gives the
// reference's bytes).
type MaxPool struct {
	p ref.Pool
}

// NewMaxPool prepares p.
func NewMaxPool(p *ref.Pool) *MaxPool { return &MaxPool{p: *p} }

func (m *MaxPool) rows() int { return m.p.Batch * m.p.OutH }

// run computes output rows [lo, hi) (batch-major).
func (m *MaxPool) run(input, output []int8, lo, hi int) {
	p := &m.p
	clamp := p.ActMin > -128 || p.ActMax < 127
	for r := lo; r < hi; r++ {
		b, oy := r/p.OutH, r%p.OutH
		inY0 := oy*p.StrideH - p.PadH
		fy0, fy1 := max(0, -inY0), min(p.FilterH, p.InH-inY0)
		for ox := range p.OutW {
			inX0 := ox*p.StrideW - p.PadW
			fx0, fx1 := max(0, -inX0), min(p.FilterW, p.InW-inX0)
			dst := output[((b*p.OutH+oy)*p.OutW+ox)*p.C:][:p.C]
			// The whole window in one kernel call where there is one;
			// else the first tap is copied, the others maxed into it (an
			// empty window gives -128, as in ref).
			first, fyEnd := true, fy1
			if fy1 > fy0 && fx1 > fx0 && maxWindow(dst, input[((b*p.InH+inY0+fy0)*p.InW+inX0+fx0)*p.C:], fy1-fy0, fx1-fx0, p.InW*p.C) {
				first, fyEnd = false, fy0
			}
			for fy := fy0; fy < fyEnd; fy++ {
				for fx := fx0; fx < fx1; fx++ {
					src := input[((b*p.InH+inY0+fy)*p.InW+inX0+fx)*p.C:][:p.C]
					if first {
						copy(dst, src)
						first = false
					} else {
						maxInto(dst, src)
					}
				}
			}
			if first {
				for i := range dst {
					dst[i] = -128
				}
			}
			if clamp {
				lo, hi := int8(p.ActMin), int8(p.ActMax)
				for i, v := range dst {
					dst[i] = min(max(v, lo), hi)
				}
			}
		}
	}
}

// maxIntoGo is dst = max(dst, src) element-wise; len(src) >= len(dst).
func maxIntoGo(dst, src []int8) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] = max(dst[i], v)
	}
}
