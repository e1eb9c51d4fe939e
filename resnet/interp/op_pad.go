package interp

import (
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// PAD: Prepare and Eval.

func init() {
	register(resnet.OpPad, func(c *opContext) (kernel, error) { return c.preparePad() })
}

func (c *opContext) preparePad() (kernel, error) {
	in, out, err := c.unaryIO(2, 2, resnet.Int8, resnet.Float32)
	if err != nil {
		return nil, err
	}
	padIdx, err := c.input(1, "paddings", false)
	if err != nil {
		return nil, err
	}
	pads, err := c.constInts("paddings", padIdx)
	if err != nil {
		return nil, err
	}
	s := c.tensor(in).Shape
	if len(s) < 1 || len(s) > 4 {
		return nil, c.errorf("input %s has shape %v; PAD supports 1 to 4 dimensions", c.b.tensorRef(in), s)
	}
	if ps := c.tensor(padIdx).Shape; len(ps) != 2 || ps[0] != len(s) || ps[1] != 2 {
		return nil, c.errorf("paddings %s has shape %v; want [%d, 2]", c.b.tensorRef(padIdx), ps, len(s))
	}
	want := make([]int, len(s))
	var before, after [4]int
	off := 4 - len(s)
	for d := range s {
		bf, af := pads[2*d], pads[2*d+1]
		if bf < 0 || af < 0 {
			return nil, c.errorf("paddings %v: dimension %d has padding (%d, %d); want values >= 0", pads, d, bf, af)
		}
		before[off+d], after[off+d] = bf, af
		want[d] = s[d] + bf + af
	}
	if err := c.checkOutputShape(out, want); err != nil {
		return nil, err
	}
	p := ref.Pad{InShape: extend4(s), Before: before, OutShape: extend4(want)}
	k := &padKernel{in: in, out: out, p: p, quantized: c.tensor(in).Type == resnet.Int8}
	if k.quantized {
		if err := c.sameQuant(in, out); err != nil {
			return nil, err
		}
		_, zp, _ := c.activationQuant("output", out)
		k.value = int8(zp) // real 0
	}
	return k, nil
}

// extend4 left-pads a shape of rank <= 4 with 1s.
func extend4(s []int) [4]int {
	var r [4]int
	for k := range r {
		r[k] = 1
	}
	copy(r[4-len(s):], s)
	return r
}

type padKernel struct {
	in, out   int
	quantized bool
	value     int8 // int8 pad value: the output zero point
	p         ref.Pad
}

func (k *padKernel) eval(ts []Tensor, _ *fast.Runner) {
	if k.quantized {
		padTensor(&k.p, ts[k.in].Int8(), ts[k.out].Int8(), k.value)
	} else {
		padTensor(&k.p, ts[k.in].Float32(), ts[k.out].Float32(), 0)
	}
}

// padTensor is ref.PadTensor with whole image rows moved at once when the
// channels are not padded (an image's spatial padding): a memmove per row
// instead of a call per pixel, which on three-channel inputs cost more
// than the copy. Anything else goes to the reference.
func padTensor[T int8 | float32](p *ref.Pad, input, output []T, value T) {
	in, out, bf := p.InShape, p.OutShape, p.Before
	if bf[3] != 0 || in[3] != out[3] {
		ref.PadTensor(p, input, output, value)
		return
	}
	row, inRow := out[2]*out[3], in[2]*in[3]
	left := bf[2] * out[3]
	o := 0
	for d0 := range out[0] {
		for d1 := range out[1] {
			dst := output[o : o+row]
			o += row
			s0, s1 := d0-bf[0], d1-bf[1]
			if s0 < 0 || s0 >= in[0] || s1 < 0 || s1 >= in[1] {
				fill(dst, value)
				continue
			}
			fill(dst[:left], value)
			copy(dst[left:left+inRow], input[(s0*in[1]+s1)*inRow:][:inRow])
			fill(dst[left+inRow:], value)
		}
	}
}

// fill sets every element of b to v, doubling by copy past the first eight.
func fill[T int8 | float32](b []T, v T) {
	n := min(len(b), 8)
	for i := range n {
		b[i] = v
	}
	for ; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}
