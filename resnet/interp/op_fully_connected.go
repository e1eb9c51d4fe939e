package interp

import (
	"slices"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// FULLY_CONNECTED: Prepare and Eval.

func init() {
	register(resnet.OpFullyConnected, func(c *opContext) (kernel, error) { return c.prepareFullyConnected() })
}

func (c *opContext) prepareFullyConnected() (kernel, error) {
	var o resnet.FullyConnectedOptions
	switch opt := c.op.Options.(type) {
	case *resnet.FullyConnectedOptions:
		o = *opt
	case nil: // all-default options
	default:
		return nil, c.errorf("options are %T; want *resnet.FullyConnectedOptions", opt)
	}
	in, out, weights, bias, quantized, err := c.weightedIO("weights")
	if err != nil {
		return nil, err
	}
	wShape, err := c.rank("weights", weights, 2)
	if err != nil {
		return nil, err
	}
	inShape := c.tensor(in).Shape
	p := ref.FullyConnected{OutDepth: wShape[0], InDepth: wShape[1]}
	n := c.tensor(in).NumElements()
	if n%p.InDepth != 0 {
		return nil, c.errorf("input %s has shape %v (%d elements), not a multiple of the weights' input depth %d", c.b.tensorRef(in), inShape, n, p.InDepth)
	}
	p.Batch = n / p.InDepth
	var want []int
	if o.KeepNumDims {
		if len(inShape) == 0 || inShape[len(inShape)-1] != p.InDepth {
			return nil, c.errorf("keep_num_dims needs the input's last dimension (shape %v) to equal the weights' input depth %d", inShape, p.InDepth)
		}
		want = append(slices.Clone(inShape[:len(inShape)-1]), p.OutDepth)
	} else {
		want = []int{p.Batch, p.OutDepth}
	}
	if err := c.checkOutputShape(out, want); err != nil {
		return nil, err
	}
	wData, biasData, err := c.weightedConstants("weights", weights, bias, p.OutDepth)
	if err != nil {
		return nil, err
	}
	if p.ActMin, p.ActMax, p.FloatMin, p.FloatMax, err = c.activation(o.Activation, out, quantized); err != nil {
		return nil, err
	}
	k := &fullyConnectedKernel{in: in, out: out, quantized: quantized}
	io, err := c.affineIO(in, out, bias, biasData, quantized)
	if err != nil {
		return nil, err
	}
	if !quantized {
		k.biasF32 = io.biasF32
		k.weightsF32 = float32View(wData)
		k.p = p
		if c.b.useFast {
			// The same sums as a 1x1 convolution over a 1x1 image per batch row.
			cp := ref.Conv{Batch: p.Batch, InH: 1, InW: 1, InC: p.InDepth, OutH: 1, OutW: 1, OutC: p.OutDepth,
				FilterH: 1, FilterW: 1, StrideH: 1, StrideW: 1, DilationH: 1, DilationW: 1,
				FloatMin: p.FloatMin, FloatMax: p.FloatMax}
			c.packedInputs(weights, bias)
			return c.fastFConv(in, out, &cp, k.weightsF32, k.biasF32)
		}
		return k, nil
	}
	k.biasI32 = io.biasI32
	k.weightsI8 = int8View(wData)
	inScale, inZP, outScale, outZP := io.inScale, io.inZP, io.outScale, io.outZP
	wScales, wZP, err := c.weightScales("weights", weights, 0, p.OutDepth, true)
	if err != nil {
		return nil, err
	}
	p.InputOffset, p.FilterOffset, p.OutputOffset = -inZP, -wZP, outZP
	p.Multiplier, p.Shift = ref.PerChannelMultipliers(inScale, wScales, outScale, len(wScales))
	if err := c.multipliers(p.Multiplier, p.Shift); err != nil {
		return nil, err
	}
	// XNNPACK takes symmetric weights only; TFLite's own kernel (reference
	// arithmetic) runs the others.
	if c.b.xnnpack && p.FilterOffset == 0 {
		p.Scale = ref.XNNPACKScales(inScale, wScales, outScale, len(wScales))
	}
	k.p = p
	if c.b.useFast && p.FilterOffset == 0 {
		// The same sums as a 1x1 convolution over a 1x1 image per batch row.
		cp := ref.Conv{Batch: p.Batch, InH: 1, InW: 1, InC: p.InDepth, OutH: 1, OutW: 1, OutC: p.OutDepth,
			FilterH: 1, FilterW: 1, StrideH: 1, StrideW: 1, DilationH: 1, DilationW: 1,
			InputOffset: p.InputOffset, OutputOffset: p.OutputOffset, ActMin: p.ActMin, ActMax: p.ActMax,
			Multiplier: p.Multiplier, Shift: p.Shift, Scale: p.Scale}
		if len(p.Multiplier) == 1 {
			cp.Multiplier = slices.Repeat(p.Multiplier, p.OutDepth)
			cp.Shift = slices.Repeat(p.Shift, p.OutDepth)
		}
		if len(p.Scale) == 1 {
			cp.Scale = slices.Repeat(p.Scale, p.OutDepth)
		}
		c.packedInputs(weights, bias)
		return c.fastConv(in, out, &cp, k.weightsI8, k.biasI32)
	}
	return k, nil
}

type fullyConnectedKernel struct {
	in, out    int
	quantized  bool
	p          ref.FullyConnected
	weightsI8  []int8
	biasI32    []int32
	weightsF32 []float32
	biasF32    []float32
}

func (k *fullyConnectedKernel) eval(ts []Tensor, _ *fast.Runner) {
	if k.quantized {
		ref.FullyConnectedInt8(&k.p, ts[k.in].Int8(), k.weightsI8, k.biasI32, ts[k.out].Int8())
	} else {
		ref.FullyConnectedFloat(&k.p, ts[k.in].Float32(), k.weightsF32, k.biasF32, ts[k.out].Float32())
	}
}
