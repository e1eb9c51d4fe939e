package interp

import (
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// MAX_POOL_2D and AVERAGE_POOL_2D: Prepare and Eval.

func init() {
	register(resnet.OpMaxPool2D, func(c *opContext) (kernel, error) { return c.preparePool(false) })
	register(resnet.OpAveragePool2D, func(c *opContext) (kernel, error) { return c.preparePool(true) })
}

func (c *opContext) preparePool(average bool) (kernel, error) {
	o, ok := c.op.Options.(*resnet.Pool2DOptions)
	if !ok {
		return nil, c.errorf("options are %T; want *resnet.Pool2DOptions", c.op.Options)
	}
	if o.Padding != resnet.PaddingSame && o.Padding != resnet.PaddingValid {
		return nil, c.errorf("padding %d is not SAME or VALID", o.Padding)
	}
	if err := c.window("strides (w, h)", o.StrideW, o.StrideH); err != nil {
		return nil, err
	}
	if err := c.window("filter size (w, h)", o.FilterW, o.FilterH); err != nil {
		return nil, err
	}
	in, out, err := c.unaryIO(1, 1, resnet.Int8, resnet.Float32)
	if err != nil {
		return nil, err
	}
	s, err := c.rank("input", in, 4)
	if err != nil {
		return nil, err
	}
	p := ref.Pool{Batch: s[0], InH: s[1], InW: s[2], C: s[3],
		FilterH: o.FilterH, FilterW: o.FilterW, StrideH: o.StrideH, StrideW: o.StrideW}
	p.OutH = ref.OutSize(o.Padding, p.InH, p.FilterH, p.StrideH, 1)
	p.OutW = ref.OutSize(o.Padding, p.InW, p.FilterW, p.StrideW, 1)
	if p.OutH < 1 || p.OutW < 1 {
		return nil, c.errorf("filter %dx%d does not fit input %dx%d with VALID padding", p.FilterH, p.FilterW, p.InH, p.InW)
	}
	p.PadH, _ = ref.PaddingBefore(p.StrideH, 1, p.InH, p.FilterH, p.OutH)
	p.PadW, _ = ref.PaddingBefore(p.StrideW, 1, p.InW, p.FilterW, p.OutW)
	if err := c.checkOutputShape(out, []int{p.Batch, p.OutH, p.OutW, p.C}); err != nil {
		return nil, err
	}
	quantized := c.tensor(in).Type == resnet.Int8
	if quantized {
		if err := c.sameQuant(in, out); err != nil {
			return nil, err
		}
	}
	if p.ActMin, p.ActMax, p.FloatMin, p.FloatMax, err = c.activation(o.Activation, out, quantized); err != nil {
		return nil, err
	}
	if quantized && !average && c.b.useFast {
		return &fastMaxPoolKernel{in: in, out: out, p: p, m: fast.NewMaxPool(&p)}, nil
	}
	if !quantized && !average && c.b.useFast {
		return &fastFMaxPoolKernel{in: in, out: out, m: fast.NewFMaxPool(&p)}, nil
	}
	return &poolKernel{in: in, out: out, average: average, quantized: quantized, p: p}, nil
}

// fastMaxPoolKernel is an int8 MAX_POOL_2D split by output rows.
type fastMaxPoolKernel struct {
	in, out int
	p       ref.Pool // the geometry m was prepared with (fusePadPools rewrites it)
	m       *fast.MaxPool
}

func (k *fastMaxPoolKernel) eval(ts []Tensor, run *fast.Runner) {
	run.MaxPool(k.m, ts[k.in].Int8(), ts[k.out].Int8())
}

// fastFMaxPoolKernel is a float MAX_POOL_2D (fast.FMaxPool: the
// reference's bits).
type fastFMaxPoolKernel struct {
	in, out int
	m       *fast.FMaxPool
}

func (k *fastFMaxPoolKernel) eval(ts []Tensor, run *fast.Runner) {
	run.FMaxPool(k.m, ts[k.in].Float32(), ts[k.out].Float32())
}

type poolKernel struct {
	in, out   int
	average   bool
	quantized bool
	p         ref.Pool
}

func (k *poolKernel) eval(ts []Tensor, _ *fast.Runner) {
	switch {
	case k.quantized && k.average:
		ref.AveragePoolInt8(&k.p, ts[k.in].Int8(), ts[k.out].Int8())
	case k.quantized:
		ref.MaxPoolInt8(&k.p, ts[k.in].Int8(), ts[k.out].Int8())
	case k.average:
		ref.AveragePoolFloat(&k.p, ts[k.in].Float32(), ts[k.out].Float32())
	default:
		ref.MaxPoolFloat(&k.p, ts[k.in].Float32(), ts[k.out].Float32())
	}
}
