package interp

import (
	"slices"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// QUANTIZE and DEQUANTIZE: Prepare and Eval.

func init() {
	register(resnet.OpQuantize, func(c *opContext) (kernel, error) { return c.prepareQuantize() })
	register(resnet.OpDequantize, func(c *opContext) (kernel, error) { return c.prepareDequantize() })
}

func (c *opContext) prepareQuantize() (kernel, error) {
	if err := c.ioCount(1, 1); err != nil {
		return nil, err
	}
	in, err := c.input(0, "input", false)
	if err != nil {
		return nil, err
	}
	out := c.op.Outputs[0]
	if err := c.checkType("input", in, resnet.Float32, resnet.Int8); err != nil {
		return nil, err
	}
	if err := c.checkType("output", out, resnet.Int8); err != nil {
		return nil, err
	}
	if err := c.checkOutputShape(out, slices.Clone(c.tensor(in).Shape)); err != nil {
		return nil, err
	}
	outScale, outZP, err := c.activationQuant("output", out)
	if err != nil {
		return nil, err
	}
	if c.tensor(in).Type == resnet.Float32 {
		return &quantizeKernel{in: in, out: out, scale: outScale, zp: outZP}, nil
	}
	inScale, inZP, err := c.activationQuant("input", in)
	if err != nil {
		return nil, err
	}
	m, s := ref.QuantizeMultiplier(float64(inScale) / float64(outScale))
	if err := c.multipliers([]int32{m}, []int{s}); err != nil {
		return nil, err
	}
	return &requantizeKernel{in: in, out: out, p: ref.Requant{InputZeroPoint: inZP, OutputZeroPoint: outZP, Multiplier: m, Shift: s}}, nil
}

func (c *opContext) prepareDequantize() (kernel, error) {
	if err := c.ioCount(1, 1); err != nil {
		return nil, err
	}
	in, err := c.input(0, "input", false)
	if err != nil {
		return nil, err
	}
	out := c.op.Outputs[0]
	if err := c.checkType("input", in, resnet.Int8); err != nil {
		return nil, err
	}
	if err := c.checkType("output", out, resnet.Float32); err != nil {
		return nil, err
	}
	if err := c.checkOutputShape(out, slices.Clone(c.tensor(in).Shape)); err != nil {
		return nil, err
	}
	scale, zp, err := c.activationQuant("input", in)
	if err != nil {
		return nil, err
	}
	return &dequantizeKernel{in: in, out: out, scale: scale, zp: zp}, nil
}

type quantizeKernel struct {
	in, out int
	scale   float32
	zp      int32
}

func (k *quantizeKernel) eval(ts []Tensor, _ *fast.Runner) {
	quantizeInt8(ts[k.in].Float32(), ts[k.out].Int8(), k.scale, k.zp)
}

type requantizeKernel struct {
	in, out int
	p       ref.Requant
}

func (k *requantizeKernel) eval(ts []Tensor, _ *fast.Runner) {
	ref.RequantizeInt8(&k.p, ts[k.in].Int8(), ts[k.out].Int8())
}

type dequantizeKernel struct {
	in, out int
	scale   float32
	zp      int32
}

func (k *dequantizeKernel) eval(ts []Tensor, _ *fast.Runner) {
	ref.DequantizeInt8(ts[k.in].Int8(), ts[k.out].Float32(), k.scale, k.zp)
}

// quantizeInt8 is ref.QuantizeInt8 as fast computes it (NEON on arm64).
func quantizeInt8(input []float32, output []int8, scale float32, zeroPoint int32) {
	fast.QuantizeInt8(input, output, scale, zeroPoint)
}
