package interp

import (
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// MEAN over the spatial axes: Prepare and Eval.

func init() {
	register(resnet.OpMean, func(c *opContext) (kernel, error) { return c.prepareMean() })
}

func (c *opContext) prepareMean() (kernel, error) {
	var o resnet.ReducerOptions
	switch opt := c.op.Options.(type) {
	case *resnet.ReducerOptions:
		o = *opt
	case nil:
	default:
		return nil, c.errorf("options are %T; want *resnet.ReducerOptions", opt)
	}
	in, out, err := c.unaryIO(2, 2, resnet.Int8, resnet.Float32)
	if err != nil {
		return nil, err
	}
	axesIdx, err := c.input(1, "axes", false)
	if err != nil {
		return nil, err
	}
	axes, err := c.constInts("axes", axesIdx)
	if err != nil {
		return nil, err
	}
	s, err := c.rank("input", in, 4)
	if err != nil {
		return nil, err
	}
	// Only the spatial mean (global average pooling) is supported: axes
	// must name H and W, in any order, possibly negative or repeated.
	var h, w, other bool
	for _, a := range axes {
		switch a {
		case 1, -3:
			h = true
		case 2, -2:
			w = true
		default:
			other = true
		}
	}
	if !h || !w || other {
		return nil, c.errorf("axes %v: only the mean over the spatial axes [1, 2] of an NHWC tensor is supported", axes)
	}
	want := []int{s[0], s[3]}
	if o.KeepDims {
		want = []int{s[0], 1, 1, s[3]}
	}
	if err := c.checkOutputShape(out, want); err != nil {
		return nil, err
	}
	k := &meanKernel{in: in, out: out, quantized: c.tensor(in).Type == resnet.Int8}
	if !k.quantized {
		k.p = ref.Mean{Batch: s[0], H: s[1], W: s[2], C: s[3]}
		return k, nil
	}
	inScale, inZP, err := c.activationQuant("input", in)
	if err != nil {
		return nil, err
	}
	outScale, outZP, err := c.activationQuant("output", out)
	if err != nil {
		return nil, err
	}
	k.p = ref.NewMeanInt8(s[0], s[1], s[2], s[3], inScale, inZP, outScale, outZP)
	if c.b.xnnpack {
		k.p = ref.NewMeanXNNPACK(s[0], s[1], s[2], s[3], inScale, inZP, outScale, outZP)
	}
	if k.p.Shift > 30 {
		return nil, c.errorf("input scale %g / output scale %g is far above 1; the quantization parameters are broken", inScale, outScale)
	}
	return k, nil
}

type meanKernel struct {
	in, out   int
	quantized bool
	p         ref.Mean
}

func (k *meanKernel) eval(ts []Tensor, _ *fast.Runner) {
	if k.quantized {
		ref.MeanInt8(&k.p, ts[k.in].Int8(), ts[k.out].Int8())
	} else {
		ref.MeanFloat(&k.p, ts[k.in].Float32(), ts[k.out].Float32())
	}
}
