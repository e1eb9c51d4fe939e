package interp

import (
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// CONV_2D and DEPTHWISE_CONV_2D: Prepare (shapes, per-channel multipliers, the fast micro-kernel when the ISA has one) and the kernels' Eval.

func init() {
	register(resnet.OpConv2D, func(c *opContext) (kernel, error) { return c.prepareConv(false) })
	register(resnet.OpDepthwiseConv2D, func(c *opContext) (kernel, error) { return c.prepareConv(true) })
}

func (c *opContext) prepareConv(depthwise bool) (kernel, error) {
	var (
		padding              resnet.Padding
		strideW, strideH     int
		dilationW, dilationH int
		act                  resnet.Activation
		optMultiplier        int
	)
	switch o := c.op.Options.(type) {
	case *resnet.Conv2DOptions:
		if depthwise {
			return nil, c.errorf("options are %T; want *resnet.DepthwiseConv2DOptions", o)
		}
		padding, strideW, strideH, act = o.Padding, o.StrideW, o.StrideH, o.Activation
		dilationW, dilationH = dilationOrOne(o.DilationW), dilationOrOne(o.DilationH)
	case *resnet.DepthwiseConv2DOptions:
		if !depthwise {
			return nil, c.errorf("options are %T; want *resnet.Conv2DOptions", o)
		}
		padding, strideW, strideH, act = o.Padding, o.StrideW, o.StrideH, o.Activation
		dilationW, dilationH = dilationOrOne(o.DilationW), dilationOrOne(o.DilationH)
		optMultiplier = o.DepthMultiplier
	default:
		return nil, c.errorf("options are %T; want convolution options", c.op.Options)
	}
	if padding != resnet.PaddingSame && padding != resnet.PaddingValid {
		return nil, c.errorf("padding %d is not SAME or VALID", padding)
	}
	if err := c.window("strides (w, h)", strideW, strideH); err != nil {
		return nil, err
	}
	if err := c.window("dilations (w, h)", dilationW, dilationH); err != nil {
		return nil, err
	}
	in, out, filter, bias, quantized, err := c.weightedIO("filter")
	if err != nil {
		return nil, err
	}
	inShape, err := c.rank("input", in, 4)
	if err != nil {
		return nil, err
	}
	fShape, err := c.rank("filter", filter, 4)
	if err != nil {
		return nil, err
	}
	p := ref.Conv{
		Batch: inShape[0], InH: inShape[1], InW: inShape[2], InC: inShape[3],
		FilterH: fShape[1], FilterW: fShape[2],
		StrideH: strideH, StrideW: strideW, DilationH: dilationH, DilationW: dilationW,
	}
	if depthwise {
		// Filter [1, H, W, InC*multiplier].
		p.OutC = fShape[3]
		if fShape[0] != 1 || p.OutC%p.InC != 0 {
			return nil, c.errorf("filter %s has shape %v; want [1, H, W, %d*multiplier] for input channels %d", c.b.tensorRef(filter), fShape, p.InC, p.InC)
		}
		p.DepthMultiplier = p.OutC / p.InC
		if optMultiplier != 0 && optMultiplier != p.DepthMultiplier {
			return nil, c.errorf("depth multiplier option %d disagrees with filter %v and %d input channels (multiplier %d)", optMultiplier, fShape, p.InC, p.DepthMultiplier)
		}
	} else {
		// Filter OHWI [OutC, H, W, InC].
		p.OutC = fShape[0]
		if fShape[3] != p.InC {
			return nil, c.errorf("filter %s has shape %v: %d input channels, but the input has %d (grouped convolution is not supported)", c.b.tensorRef(filter), fShape, fShape[3], p.InC)
		}
	}
	p.OutH = ref.OutSize(padding, p.InH, p.FilterH, strideH, dilationH)
	p.OutW = ref.OutSize(padding, p.InW, p.FilterW, strideW, dilationW)
	if p.OutH < 1 || p.OutW < 1 {
		return nil, c.errorf("filter %dx%d (dilation %dx%d) does not fit input %dx%d with VALID padding", p.FilterH, p.FilterW, dilationH, dilationW, p.InH, p.InW)
	}
	p.PadH, _ = ref.PaddingBefore(strideH, dilationH, p.InH, p.FilterH, p.OutH)
	p.PadW, _ = ref.PaddingBefore(strideW, dilationW, p.InW, p.FilterW, p.OutW)
	if err := c.checkOutputShape(out, []int{p.Batch, p.OutH, p.OutW, p.OutC}); err != nil {
		return nil, err
	}
	k := &convKernel{in: in, out: out, depthwise: depthwise, quantized: quantized}
	filterData, biasData, err := c.weightedConstants("filter", filter, bias, p.OutC)
	if err != nil {
		return nil, err
	}
	if p.ActMin, p.ActMax, p.FloatMin, p.FloatMax, err = c.activation(act, out, quantized); err != nil {
		return nil, err
	}
	io, err := c.affineIO(in, out, bias, biasData, quantized)
	if err != nil {
		return nil, err
	}
	if !quantized {
		k.biasF32 = io.biasF32
		k.filterF32 = float32View(filterData)
		k.p = p
		if c.b.useFast && !depthwise {
			c.packedInputs(filter, bias)
			return c.fastFConv(in, out, &p, k.filterF32, k.biasF32)
		}
		return k, nil
	}
	k.biasI32 = io.biasI32
	k.filterI8 = int8View(filterData)
	inScale, inZP, outScale, outZP := io.inScale, io.inZP, io.outScale, io.outZP
	dim := 0
	if depthwise {
		dim = 3
	}
	wScales, _, err := c.weightScales("filter", filter, dim, p.OutC, false)
	if err != nil {
		return nil, err
	}
	p.InputOffset, p.OutputOffset = -inZP, outZP
	p.Multiplier, p.Shift = ref.PerChannelMultipliers(inScale, wScales, outScale, p.OutC)
	if err := c.multipliers(p.Multiplier, p.Shift); err != nil {
		return nil, err
	}
	if c.b.xnnpack {
		p.Scale = ref.XNNPACKScales(inScale, wScales, outScale, p.OutC)
	}
	k.p = p
	if c.b.useFast {
		if depthwise {
			d, err := fast.NewDepthwise(&p, k.filterI8, k.biasI32)
			if err != nil {
				return nil, c.errorf("%v", err)
			}
			c.packedInputs(filter, bias)
			return &fastDepthwiseKernel{in: in, out: out, d: d}, nil
		}
		c.packedInputs(filter, bias)
		return c.fastConv(in, out, &p, k.filterI8, k.biasI32)
	}
	return k, nil
}

// fastConv packs an int8 convolution for the fast micro-kernels.
func (c *opContext) fastConv(in, out int, p *ref.Conv, filter []int8, bias []int32) (kernel, error) {
	fc, err := fast.NewConv(p, filter, bias, c.b.isa)
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	c.b.scratch = max(c.b.scratch, fc.ScratchBytes())
	return &fastConvKernel{in: in, out: out, c: fc}, nil
}

// fastFConv packs a float32 convolution for the float micro-kernels that
// go with the interpreter's int8 family.
func (c *opContext) fastFConv(in, out int, p *ref.Conv, filter, bias []float32) (kernel, error) {
	fc, err := fast.NewFConv(p, filter, bias, c.b.isa.Float())
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	c.b.scratch = max(c.b.scratch, fc.ScratchBytes())
	return &fastFConvKernel{in: in, out: out, c: fc}, nil
}

// fastFConvKernel is a float32 CONV_2D, or a float32 FULLY_CONNECTED seen as
// a 1x1 convolution, on the float micro-kernels.
type fastFConvKernel struct {
	in, out int
	c       *fast.FConv
}

func (k *fastFConvKernel) eval(ts []Tensor, run *fast.Runner) {
	run.FConv(k.c, ts[k.in].Float32(), ts[k.out].Float32())
}

func dilationOrOne(d int) int {
	if d == 0 {
		return 1
	}
	return d
}

// fastConvKernel is an int8 CONV_2D, or an int8 FULLY_CONNECTED with
// symmetric weights seen as a 1x1 convolution, on the fast micro-kernels.
type fastConvKernel struct {
	in, out int
	c       *fast.Conv
}

func (k *fastConvKernel) eval(ts []Tensor, run *fast.Runner) {
	run.Conv(k.c, ts[k.in].Int8(), ts[k.out].Int8())
}

// fastDepthwiseKernel is an int8 DEPTHWISE_CONV_2D split by output rows.
type fastDepthwiseKernel struct {
	in, out int
	d       *fast.Depthwise
}

func (k *fastDepthwiseKernel) eval(ts []Tensor, run *fast.Runner) {
	run.Depthwise(k.d, ts[k.in].Int8(), ts[k.out].Int8())
}

type convKernel struct {
	in, out   int
	depthwise bool
	quantized bool
	p         ref.Conv
	filterI8  []int8
	biasI32   []int32
	filterF32 []float32
	biasF32   []float32
}

func (k *convKernel) eval(ts []Tensor, _ *fast.Runner) {
	switch {
	case k.quantized && k.depthwise:
		ref.DepthwiseConvInt8(&k.p, ts[k.in].Int8(), k.filterI8, k.biasI32, ts[k.out].Int8())
	case k.quantized:
		ref.ConvInt8(&k.p, ts[k.in].Int8(), k.filterI8, k.biasI32, ts[k.out].Int8())
	case k.depthwise:
		ref.DepthwiseConvFloat(&k.p, ts[k.in].Float32(), k.filterF32, k.biasF32, ts[k.out].Float32())
	default:
		ref.ConvFloat(&k.p, ts[k.in].Float32(), k.filterF32, k.biasF32, ts[k.out].Float32())
	}
}

// affineIO is what CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED share at
// Prepare: the bias as a view of its type (FLOAT32 for a float operator,
// INT32 for an int8 one; nil without a bias) and, for int8, the input's and
// output's quantization.
type affineIO struct {
	biasF32           []float32
	biasI32           []int32
	inScale, outScale float32
	inZP, outZP       int32
}

func (c *opContext) affineIO(in, out, bias int, biasData []byte, quantized bool) (affineIO, error) {
	var io affineIO
	if !quantized {
		if bias >= 0 {
			if err := c.sameType("bias", bias, resnet.Float32); err != nil {
				return io, err
			}
			io.biasF32 = float32View(biasData)
		}
		return io, nil
	}
	if bias >= 0 {
		if err := c.checkType("bias", bias, resnet.Int32); err != nil {
			return io, err
		}
		io.biasI32 = int32View(biasData)
	}
	var err error
	if io.inScale, io.inZP, err = c.activationQuant("input", in); err != nil {
		return io, err
	}
	if io.outScale, io.outZP, err = c.activationQuant("output", out); err != nil {
		return io, err
	}
	return io, nil
}

// weightedIO is how CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED start:
// an INT8 or FLOAT32 input and output, weights (named role in errors) of the
// input's type, and an optional bias (-1 when omitted).
func (c *opContext) weightedIO(role string) (in, out, weights, bias int, quantized bool, err error) {
	if in, out, err = c.unaryIO(2, 3, resnet.Int8, resnet.Float32); err != nil {
		return
	}
	typ := c.tensor(in).Type
	quantized = typ == resnet.Int8
	if weights, err = c.input(1, role, false); err != nil {
		return
	}
	if bias, err = c.input(2, "bias", true); err != nil {
		return
	}
	err = c.sameType(role, weights, typ)
	return
}

// weightedConstants reads the weights (named role in errors) and the
// optional bias (-1: none) of a weighted operator, whose bias must hold one
// value per output channel.
func (c *opContext) weightedConstants(role string, weights, bias, outC int) (w, b []byte, err error) {
	if w, err = c.constant(role, weights); err != nil {
		return nil, nil, err
	}
	if bias < 0 {
		return w, nil, nil
	}
	if b, err = c.constant("bias", bias); err != nil {
		return nil, nil, err
	}
	if n := c.tensor(bias).NumElements(); n != outC {
		return nil, nil, c.errorf("bias %s has %d elements; want %d (one per output channel)", c.b.tensorRef(bias), n, outC)
	}
	return w, b, nil
}
