package fast

import (
	"fmt"

	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// Depthwise is a prepared int8 DEPTHWISE_CONV_2D: ref.DepthwiseConvInt8
// computed row by row over blocks of output channels, with the filter
// widened to int32 once at load. Portable Go for every CPU: depthwise
// layers do few multiply-accumulates per byte moved (9 per output for a
// 3x3 filter), so the win is in the loop order (channels innermost,
// contiguous in input, filter and accumulators), not in SIMD dot products.
// It is read-only after NewDepthwise.
type Depthwise struct {
	p    ref.Conv
	w    []int32 // [tap][OutC] filter values
	bias []int32 // per output channel, zeros when the model has none
}

// dwBlock is the number of output channels accumulated at once (a stack
// array, so that the kernel needs no scratch memory).
const dwBlock = 64

// NewDepthwise prepares p (a valid reference description: the
// interpreter's Prepare has checked it) with filter [1, H, W, OutC] int8 and
// bias nil or one int32 per output channel.
func NewDepthwise(p *ref.Conv, filter []int8, bias []int32) (*Depthwise, error) {
	taps := p.FilterH * p.FilterW
	if p.DepthMultiplier < 1 || p.OutC != p.InC*p.DepthMultiplier || len(filter) != taps*p.OutC ||
		(bias != nil && len(bias) != p.OutC) || len(p.Multiplier) != p.OutC || len(p.Shift) != p.OutC ||
		(p.Scale != nil && len(p.Scale) != p.OutC) {
		return nil, fmt.Errorf("fast: depthwise conv %dx%d, %d input channels x multiplier %d -> %d: filter has %d values, bias %d, multipliers %d; sizes disagree",
			p.FilterH, p.FilterW, p.InC, p.DepthMultiplier, p.OutC, len(filter), len(bias), len(p.Multiplier))
	}
	d := &Depthwise{p: *p, w: make([]int32, len(filter)), bias: make([]int32, p.OutC)}
	for i, v := range filter {
		d.w[i] = int32(v)
	}
	copy(d.bias, bias)
	return d, nil
}

// MACs is the number of multiply-accumulates one run performs (padding
// taps included, as ref counts them).
func (d *Depthwise) MACs() int64 {
	p := &d.p
	return int64(p.Batch*p.OutH*p.OutW*p.OutC) * int64(p.FilterH*p.FilterW)
}

func (d *Depthwise) rows() int { return d.p.Batch * d.p.OutH }

// run computes output rows [lo, hi) (batch-major).
func (d *Depthwise) run(input, output []int8, lo, hi int) {
	p := &d.p
	off := p.InputOffset
	mult := p.DepthMultiplier
	for r := lo; r < hi; r++ {
		b, oy := r/p.OutH, r%p.OutH
		iy0 := oy*p.StrideH - p.PadH
		for ox := range p.OutW {
			ix0 := ox*p.StrideW - p.PadW
			dst := output[((b*p.OutH+oy)*p.OutW+ox)*p.OutC:][:p.OutC]
			for c0 := 0; c0 < p.OutC; c0 += dwBlock {
				n := min(dwBlock, p.OutC-c0)
				var acc [dwBlock]int32
				a := acc[:n]
				copy(a, d.bias[c0:c0+n])
				for fy := range p.FilterH {
					iy := iy0 + fy*p.DilationH
					if iy < 0 || iy >= p.InH {
						continue
					}
					row := input[(b*p.InH+iy)*p.InW*p.InC:][:p.InW*p.InC]
					for fx := range p.FilterW {
						ix := ix0 + fx*p.DilationW
						if ix < 0 || ix >= p.InW {
							continue
						}
						w := d.w[(fy*p.FilterW+fx)*p.OutC+c0:][:n]
						if mult == 1 {
							x := row[ix*p.InC+c0:][:n]
							for i, wv := range w {
								a[i] += wv * (int32(x[i]) + off)
							}
						} else {
							px := row[ix*p.InC:][:p.InC]
							for i, wv := range w {
								a[i] += wv * (int32(px[(c0+i)/mult]) + off)
							}
						}
					}
				}
				out := dst[c0:][:n]
				if p.Scale != nil {
					sc := p.Scale[c0:][:n]
					for i, v := range a {
						out[i] = ref.RequantizeFP32(v, sc[i], p.OutputOffset, p.ActMin, p.ActMax)
					}
					continue
				}
				m := p.Multiplier[c0:][:n]
				s := p.Shift[c0:][:n]
				for i, v := range a {
					v = ref.MultiplyByQuantizedMultiplier(v, m[i], s[i]) + p.OutputOffset
					out[i] = int8(min(max(v, p.ActMin), p.ActMax))
				}
			}
		}
	}
}
