package interp

import (
	"math"
	"slices"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// SOFTMAX: Prepare and Eval.

func init() {
	register(resnet.OpSoftmax, func(c *opContext) (kernel, error) { return c.prepareSoftmax() })
}

func (c *opContext) prepareSoftmax() (kernel, error) {
	beta := float32(1)
	switch opt := c.op.Options.(type) {
	case *resnet.SoftmaxOptions:
		beta = opt.Beta
	default:
		return nil, c.errorf("options are %T; want *resnet.SoftmaxOptions", opt)
	}
	if !(beta > 0) || math.IsInf(float64(beta), 0) {
		return nil, c.errorf("beta %v must be finite and > 0", beta)
	}
	in, out, err := c.unaryIO(1, 1, resnet.Int8, resnet.Float32)
	if err != nil {
		return nil, err
	}
	s := c.tensor(in).Shape
	if len(s) < 1 {
		return nil, c.errorf("input %s is a scalar; softmax needs at least one dimension", c.b.tensorRef(in))
	}
	if err := c.checkOutputShape(out, slices.Clone(s)); err != nil {
		return nil, err
	}
	depth := s[len(s)-1]
	outer := c.tensor(in).NumElements() / depth
	k := &softmaxKernel{in: in, out: out, quantized: c.tensor(in).Type == resnet.Int8}
	if !k.quantized {
		k.p = ref.Softmax{Outer: outer, Depth: depth, Beta: beta}
		return k, nil
	}
	inScale, _, err := c.activationQuant("input", in)
	if err != nil {
		return nil, err
	}
	outScale, outZP, err := c.activationQuant("output", out)
	if err != nil {
		return nil, err
	}
	// TFLite requires this output quantization for int8 softmax.
	if math.Abs(float64(outScale)-1.0/256) > 0.001/256 || outZP != -128 {
		return nil, c.errorf("output %s has scale %g and zero point %d; int8 softmax needs scale 1/256 and zero point -128", c.b.tensorRef(out), outScale, outZP)
	}
	if k.p, err = ref.NewSoftmaxInt8(outer, depth, beta, inScale); err != nil {
		return nil, c.errorf("%v", err)
	}
	if c.b.useFast {
		k.lut = fast.NewSoftmax(&k.p) // the reference's exps, tabulated
	}
	return k, nil
}

type softmaxKernel struct {
	in, out   int
	quantized bool
	p         ref.Softmax
	lut       *fast.Softmax // int8 on the fast kernels: ref.SoftmaxInt8's bytes from an exp table
}

func (k *softmaxKernel) eval(ts []Tensor, _ *fast.Runner) {
	switch {
	case k.lut != nil:
		k.lut.Run(ts[k.in].Int8(), ts[k.out].Int8())
	case k.quantized:
		ref.SoftmaxInt8(&k.p, ts[k.in].Int8(), ts[k.out].Int8())
	default:
		ref.SoftmaxFloat(&k.p, ts[k.in].Float32(), ts[k.out].Float32())
	}
}
