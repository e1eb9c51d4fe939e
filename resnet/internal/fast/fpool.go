package fast

import (
	"math"

	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// FMaxPool is a prepared float32 MAX_POOL_2D: ref.MaxPoolFloat's own
// operations on each channel (from -MaxFloat32, Go's max with every tap of
// the window in the reference's order, then the activation clamp), so the
// output bits are the reference's, signed zeros included; a NaN in the
// window gives a NaN (which one, the Go spec leaves open). Windows
// wholly inside the input run 32 channels at a time in AVX2 where the CPU
// has it; the rest in Go.
type FMaxPool struct {
	p    ref.Pool
	offs []int32 // byte offset of every tap of a full window from its tap (0, 0)
}

// NewFMaxPool prepares p.
func NewFMaxPool(p *ref.Pool) *FMaxPool {
	m := &FMaxPool{p: *p}
	for fy := range p.FilterH {
		for fx := range p.FilterW {
			m.offs = append(m.offs, int32((fy*p.InW+fx)*p.C*4))
		}
	}
	return m
}

// FMaxPool runs m: output = ref.MaxPoolFloat(m's parameters, input), its
// output rows shared among the runner's threads.
func (r *Runner) FMaxPool(m *FMaxPool, input, output []float32) {
	r.job = job{kind: jobFMaxPool, fpool: m, fin: input, fout: output, units: m.p.Batch * m.p.OutH}
	r.run()
	r.job = job{}
}

// run computes output rows [r0, r1) of all Batch*OutH.
func (m *FMaxPool) run(input, output []float32, r0, r1 int) {
	p := &m.p
	vec := hasFMA && p.C >= 32 && len(m.offs) > 0
	nv := p.C &^ 31
	lo, hi := p.FloatMin, p.FloatMax
	for row := r0; row < r1; row++ {
		b, oy := row/p.OutH, row%p.OutH
		{
			inY0 := oy*p.StrideH - p.PadH
			fy0, fy1 := max(0, -inY0), min(p.FilterH, p.InH-inY0)
			for ox := range p.OutW {
				inX0 := ox*p.StrideW - p.PadW
				fx0, fx1 := max(0, -inX0), min(p.FilterW, p.InW-inX0)
				dst := output[((b*p.OutH+oy)*p.OutW+ox)*p.C:][:p.C]
				c0 := 0
				if vec && fy0 == 0 && fx0 == 0 && fy1 == p.FilterH && fx1 == p.FilterW {
					src := input[((b*p.InH+inY0)*p.InW+inX0)*p.C:]
					// The window's last tap lies inside input: every read is.
					_ = src[int(m.offs[len(m.offs)-1])/4+p.C-1]
					fmaxPoolAVX2(&dst[0], &src[0], &m.offs[0], len(m.offs), nv, lo, hi)
					c0 = nv
				}
				if c0 == p.C {
					continue
				}
				for c := c0; c < p.C; c++ {
					dst[c] = -math.MaxFloat32
				}
				for fy := fy0; fy < fy1; fy++ {
					for fx := fx0; fx < fx1; fx++ {
						src := input[((b*p.InH+inY0+fy)*p.InW+inX0+fx)*p.C:][:p.C]
						for c := c0; c < p.C; c++ {
							dst[c] = max(dst[c], src[c])
						}
					}
				}
				for c := c0; c < p.C; c++ {
					dst[c] = min(max(dst[c], lo), hi)
				}
			}
		}
	}
}
