package interp

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// maxWindow bounds strides, filter sizes and dilations taken from options, so
// that no geometry arithmetic can overflow whatever a file says.
const maxWindow = 1 << 20

// builder is Prepare for a whole model: graph checks, one kernel per
// operator, then the arena plan.
type builder struct {
	m        *resnet.Model
	opts     Options
	producer []int  // operator writing each tensor, -1 for none
	isInput  []bool // graph input
	consts   [][]byte
	checked  []bool // tensor shape/size already checked
	uses     []int  // operator input slots reading each tensor
	packed   []int  // of those, slots whose kernel never reads it at Invoke (packed or read at prepare)

	useFast  bool     // int8 CONV_2D, FULLY_CONNECTED and ADD on resnet/internal/fast
	isa      fast.ISA // its micro-kernel family
	scratch  int      // the largest scratch a fast kernel needs
	addCache map[ref.Add]*fast.Add
	xnnpack  bool // Options.Arithmetic "xnnpack"
}

func (b *builder) build() (*program, error) {
	m := b.m
	nt := len(m.Tensors)
	b.producer = make([]int, nt)
	for i := range b.producer {
		b.producer[i] = -1
	}
	b.isInput = make([]bool, nt)
	b.consts = make([][]byte, nt)
	b.checked = make([]bool, nt)
	b.uses = make([]int, nt)
	b.packed = make([]int, nt)

	if err := b.checkGraph(); err != nil {
		return nil, err
	}
	prog := &program{
		inputs:    slices.Clone(m.Inputs),
		outputs:   slices.Clone(m.Outputs),
		templates: make([]Tensor, nt),
		offsets:   make([]int64, nt),
	}
	for i := range m.Tensors {
		t := &m.Tensors[i]
		prog.templates[i] = Tensor{Name: t.Name, Type: t.Type, Shape: slices.Clone(t.Shape), Quant: t.Quant, data: b.consts[i]}
		prog.offsets[i] = -1
	}
	for i := range m.Operators {
		c := &opContext{b: b, index: i, op: &m.Operators[i]}
		k, err := c.prepare()
		if err != nil {
			return nil, err
		}
		prog.kernels = append(prog.kernels, k)
		for _, t := range c.op.Inputs {
			if t >= 0 {
				b.uses[t]++
			}
		}
	}
	b.dropPacked(prog)
	if err := b.planMemory(prog); err != nil {
		return nil, err
	}
	prog.scratch, prog.threads = b.scratch, b.opts.Threads
	return prog, nil
}

// dropPacked forgets the data of constant tensors that no kernel reads at
// Invoke: weights and biases the fast convolutions packed into their own
// copy, and the small integer constants (paddings, axes, shapes) read once
// here. So the interpreter does not keep the model's unpacked weights alive,
// nor the whole file buffer they are often views into (one small view into
// it would pin all of it). With Options.KeepAll, a debugging mode, every
// constant keeps its data.
func (b *builder) dropPacked(prog *program) {
	if b.opts.KeepAll {
		return
	}
	for i, n := range b.packed {
		if n > 0 && n == b.uses[i] && !slices.Contains(b.m.Outputs, i) {
			prog.templates[i].data = nil
		}
	}
}

// packedInputs records that the kernel being prepared never reads the given
// constant inputs (-1 for an omitted one) at Invoke: it holds its own copy
// or took what it needs at prepare.
func (c *opContext) packedInputs(tensors ...int) {
	for _, t := range tensors {
		if t >= 0 {
			c.b.packed[t]++
		}
	}
}

// tensorRef names tensor i for error messages.
func (b *builder) tensorRef(i int) string {
	return fmt.Sprintf("tensor %d %q", i, b.m.Tensors[i].Name)
}

// checkTensor checks the shape and size of a tensor the graph uses: every
// dimension >= 1, byte size within the arena limit for activations, data of
// exactly the right length for constants (which it also aligns).
func (b *builder) checkTensor(i int) error {
	if b.checked[i] {
		return nil
	}
	t := &b.m.Tensors[i]
	size := int64(t.Type.Size())
	if size == 0 {
		return fmt.Errorf("interp: %s has type %v, which this runtime cannot store", b.tensorRef(i), t.Type)
	}
	bytes := size
	for k, d := range t.Shape {
		if d < 1 {
			return fmt.Errorf("interp: %s has shape %v: dimension %d is %d; every dimension must be >= 1", b.tensorRef(i), t.Shape, k, d)
		}
		if int64(d) > (1<<62)/bytes {
			return fmt.Errorf("interp: %s has shape %v: too many elements", b.tensorRef(i), t.Shape)
		}
		bytes *= int64(d)
	}
	if t.Data != nil {
		if int64(len(t.Data)) != bytes {
			return fmt.Errorf("interp: %s: constant data has %d bytes; shape %v of %v needs %d", b.tensorRef(i), len(t.Data), t.Shape, t.Type, bytes)
		}
		b.consts[i] = alignedConst(t.Data)
	} else if bytes > b.opts.MaxArenaBytes {
		return fmt.Errorf("interp: %s has shape %v of %v: %d bytes, above the arena limit of %d bytes (Options.MaxArenaBytes)", b.tensorRef(i), t.Shape, t.Type, bytes, b.opts.MaxArenaBytes)
	}
	b.checked[i] = true
	return nil
}

// checkGraph checks tensor indices and the operator order: every operator
// input is a constant, a graph input or an earlier operator's output, and
// no tensor is written twice.
func (b *builder) checkGraph() error {
	m := b.m
	nt := len(m.Tensors)
	for k, i := range m.Inputs {
		if i < 0 || i >= nt {
			return fmt.Errorf("interp: graph input %d is tensor index %d, out of range [0, %d)", k, i, nt)
		}
		if m.Tensors[i].Data != nil {
			return fmt.Errorf("interp: graph input %d (%s) has constant data", k, b.tensorRef(i))
		}
		b.isInput[i] = true
		if err := b.checkTensor(i); err != nil {
			return err
		}
	}
	for oi := range m.Operators {
		op := &m.Operators[oi]
		where := func() string { return fmt.Sprintf("interp: operator %d (%s)", oi, op.Op) }
		if !op.Op.Supported() {
			return fmt.Errorf("%s: operator is not supported by this runtime (supported: %s)", where(), supportedOps())
		}
		for k, i := range op.Inputs {
			if i == -1 {
				continue // an omitted optional input; prepare checks which may be omitted
			}
			if i < 0 || i >= nt {
				return fmt.Errorf("%s: input %d is tensor index %d, out of range [0, %d)", where(), k, i, nt)
			}
			if m.Tensors[i].Data == nil && !b.isInput[i] && b.producer[i] < 0 {
				return fmt.Errorf("%s: input %d (%s) is read before any operator writes it (operators must be in execution order)", where(), k, b.tensorRef(i))
			}
			if err := b.checkTensor(i); err != nil {
				return err
			}
		}
		if len(op.Outputs) != 1 {
			return fmt.Errorf("%s: has %d outputs; want 1", where(), len(op.Outputs))
		}
		for k, i := range op.Outputs {
			if i < 0 || i >= nt {
				return fmt.Errorf("%s: output %d is tensor index %d, out of range [0, %d)", where(), k, i, nt)
			}
			switch {
			case m.Tensors[i].Data != nil:
				return fmt.Errorf("%s: output %d (%s) is a constant tensor", where(), k, b.tensorRef(i))
			case b.isInput[i]:
				return fmt.Errorf("%s: output %d (%s) is a graph input", where(), k, b.tensorRef(i))
			case b.producer[i] >= 0:
				return fmt.Errorf("%s: output %d (%s) is already written by operator %d", where(), k, b.tensorRef(i), b.producer[i])
			}
			b.producer[i] = oi
			if err := b.checkTensor(i); err != nil {
				return err
			}
		}
	}
	for k, i := range m.Outputs {
		if i < 0 || i >= nt {
			return fmt.Errorf("interp: graph output %d is tensor index %d, out of range [0, %d)", k, i, nt)
		}
		if m.Tensors[i].Data == nil && !b.isInput[i] && b.producer[i] < 0 {
			return fmt.Errorf("interp: graph output %d (%s) is never written by any operator", k, b.tensorRef(i))
		}
		if err := b.checkTensor(i); err != nil {
			return err
		}
	}
	return nil
}

func supportedOps() string {
	var names []string
	for _, op := range []resnet.OpCode{resnet.OpAdd, resnet.OpAveragePool2D, resnet.OpConv2D,
		resnet.OpDepthwiseConv2D, resnet.OpDequantize, resnet.OpFullyConnected, resnet.OpMaxPool2D,
		resnet.OpMean, resnet.OpPad, resnet.OpQuantize, resnet.OpReshape, resnet.OpSoftmax, resnet.OpSqueeze} {
		names = append(names, op.String())
	}
	return strings.Join(names, ", ")
}

// planMemory computes every activation tensor's lifetime and places it in
// the arena.
func (b *builder) planMemory(prog *program) error {
	m := b.m
	last := len(m.Operators) // the step after the last operator: "until the end"
	first := make(map[int]int)
	end := make(map[int]int)
	var order []int // activation tensors in first-seen order, for determinism
	touch := func(i, step int, writes bool) {
		if m.Tensors[i].Data != nil {
			return
		}
		if _, ok := first[i]; !ok {
			order = append(order, i)
			first[i] = step
			end[i] = step
		}
		if writes {
			first[i] = min(first[i], step)
		}
		end[i] = max(end[i], step)
	}
	for _, i := range m.Inputs {
		touch(i, 0, true)
		touch(i, last, false) // graph inputs stay readable for the whole run
	}
	for oi := range m.Operators {
		op := &m.Operators[oi]
		for _, i := range op.Inputs {
			if i >= 0 {
				touch(i, oi, false)
			}
		}
		for _, i := range op.Outputs {
			touch(i, oi, true)
		}
	}
	for _, i := range m.Outputs {
		touch(i, last, false)
	}
	lives := make([]lifetime, len(order))
	for k, i := range order {
		t := &m.Tensors[i]
		n := int64(t.NumElements() * t.Type.Size())
		lives[k] = lifetime{tensor: i, size: roundUp(n), first: first[i], last: end[i]}
	}
	offsets, total := planArena(lives, b.opts.KeepAll)
	if total > b.opts.MaxArenaBytes {
		return fmt.Errorf("interp: the model needs an arena of %d bytes, above the limit of %d bytes (Options.MaxArenaBytes)", total, b.opts.MaxArenaBytes)
	}
	if total+int64(b.scratch) > b.opts.MaxArenaBytes {
		return fmt.Errorf("interp: the model needs an arena of %d bytes plus %d bytes of convolution scratch, above the limit of %d bytes (Options.MaxArenaBytes); Options.Kernels \"ref\" needs no scratch", total, b.scratch, b.opts.MaxArenaBytes)
	}
	for k, l := range lives {
		prog.offsets[l.tensor] = offsets[k]
	}
	prog.arenaSize = total
	return nil
}

// opContext prepares one operator and formats its errors.
type opContext struct {
	b     *builder
	index int
	op    *resnet.Operator
}

func (c *opContext) errorf(format string, args ...any) error {
	return fmt.Errorf("interp: operator %d (%s): %s", c.index, c.op.Op, fmt.Sprintf(format, args...))
}

func (c *opContext) tensor(i int) *resnet.Tensor { return &c.b.m.Tensors[i] }

// ioCount checks the number of inputs (minIn..maxIn) and outputs (one).
func (c *opContext) ioCount(minIn, maxIn int) error {
	if n := len(c.op.Inputs); n < minIn || n > maxIn {
		if minIn == maxIn {
			return c.errorf("has %d inputs; want %d", n, minIn)
		}
		return c.errorf("has %d inputs; want %d to %d", n, minIn, maxIn)
	}
	return nil
}

// input returns the tensor index of input k; -1 only when optional.
func (c *opContext) input(k int, role string, optional bool) (int, error) {
	if k >= len(c.op.Inputs) {
		if optional {
			return -1, nil
		}
		return 0, c.errorf("%s (input %d) is missing", role, k)
	}
	i := c.op.Inputs[k]
	if i == -1 && !optional {
		return 0, c.errorf("%s (input %d) is omitted but required", role, k)
	}
	return i, nil
}

// checkType checks that tensor i has one of the allowed types.
func (c *opContext) checkType(role string, i int, allowed ...resnet.DType) error {
	t := c.tensor(i).Type
	if slices.Contains(allowed, t) {
		return nil
	}
	names := make([]string, len(allowed))
	for k, a := range allowed {
		names[k] = a.String()
	}
	return c.errorf("%s %s has type %v; supported: %s", role, c.b.tensorRef(i), t, strings.Join(names, ", "))
}

// sameType checks that tensor i has exactly type want (set by the input).
func (c *opContext) sameType(role string, i int, want resnet.DType) error {
	if t := c.tensor(i).Type; t != want {
		return c.errorf("%s %s has type %v; this operator needs %v here (matching its input)", role, c.b.tensorRef(i), t, want)
	}
	return nil
}

// constant returns tensor i's aligned data, or an error when it is not a
// constant.
func (c *opContext) constant(role string, i int) ([]byte, error) {
	if c.tensor(i).Data == nil {
		return nil, c.errorf("%s %s must be a constant tensor (with data in the model)", role, c.b.tensorRef(i))
	}
	return c.b.consts[i], nil
}

// rank checks the number of dimensions.
func (c *opContext) rank(role string, i int, want int) ([]int, error) {
	s := c.tensor(i).Shape
	if len(s) != want {
		return nil, c.errorf("%s %s has shape %v; want %d dimensions", role, c.b.tensorRef(i), s, want)
	}
	return s, nil
}

// checkOutputShape compares the computed output shape with the model's.
func (c *opContext) checkOutputShape(i int, want []int) error {
	if got := c.tensor(i).Shape; !slices.Equal(got, want) {
		return c.errorf("output %s is declared with shape %v, but the operator computes %v from its inputs", c.b.tensorRef(i), got, want)
	}
	return nil
}

// activationQuant returns the per-tensor scale and zero point of an int8
// activation tensor.
func (c *opContext) activationQuant(role string, i int) (float32, int32, error) {
	q := c.tensor(i).Quant
	if q == nil || len(q.Scale) != 1 || len(q.ZeroPoint) > 1 {
		n := 0
		if q != nil {
			n = len(q.Scale)
		}
		return 0, 0, c.errorf("%s %s needs per-tensor quantization (one scale and zero point); it has %d scales", role, c.b.tensorRef(i), n)
	}
	s := q.Scale[0]
	if !(s > 0) || math.IsInf(float64(s), 0) {
		return 0, 0, c.errorf("%s %s has scale %v; want a finite value > 0", role, c.b.tensorRef(i), s)
	}
	var zp int64
	if len(q.ZeroPoint) == 1 {
		zp = q.ZeroPoint[0]
	}
	if zp < math.MinInt8 || zp > math.MaxInt8 {
		return 0, 0, c.errorf("%s %s has zero point %d, outside int8", role, c.b.tensorRef(i), zp)
	}
	return s, int32(zp), nil
}

// weightScales returns the scales of symmetric int8 weights: one, or one per
// channel along dimension dim (which must have `channels` entries).
func (c *opContext) weightScales(role string, i, dim, channels int, allowZeroPoint bool) ([]float32, int32, error) {
	q := c.tensor(i).Quant
	ref := c.b.tensorRef(i)
	if q == nil || len(q.Scale) == 0 {
		return nil, 0, c.errorf("%s %s has no quantization scale", role, ref)
	}
	if len(q.Scale) != 1 && len(q.Scale) != channels {
		return nil, 0, c.errorf("%s %s has %d scales; want 1 or %d (one per output channel)", role, ref, len(q.Scale), channels)
	}
	if len(q.Scale) > 1 && q.Dim != dim {
		return nil, 0, c.errorf("%s %s is quantized along dimension %d; want %d", role, ref, q.Dim, dim)
	}
	for k, s := range q.Scale {
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return nil, 0, c.errorf("%s %s has scale[%d] = %v; want a finite value > 0", role, ref, k, s)
		}
	}
	var zp int64
	for k, z := range q.ZeroPoint {
		if z != 0 && !(allowZeroPoint && len(q.Scale) == 1) {
			return nil, 0, c.errorf("%s %s has zero point[%d] = %d; int8 weights must be symmetric (zero point 0)", role, ref, k, z)
		}
		zp = z
	}
	if zp < math.MinInt8 || zp > math.MaxInt8 {
		return nil, 0, c.errorf("%s %s has zero point %d, outside int8", role, ref, zp)
	}
	return q.Scale, int32(zp), nil
}

// multipliers turns real multipliers into fixed point and rejects ones the
// kernels cannot apply (a left shift above 30 would overflow).
func (c *opContext) multipliers(mult []int32, shift []int) error {
	for k, s := range shift {
		if s > 30 {
			return c.errorf("channel %d: the effective scale (input*weight/output) is %g, far above 1; the quantization parameters are broken", k, float64(mult[k])*math.Pow(2, float64(s-31)))
		}
	}
	return nil
}

// activation checks a fused activation and returns its quantized and float
// clamps (the quantized one only for int8 outputs).
func (c *opContext) activation(act resnet.Activation, out int, quantized bool) (lo, hi int32, flo, fhi float32, err error) {
	if !ref.ActivationSupported(act) {
		return 0, 0, 0, 0, c.errorf("fused activation %d is not supported (want NONE, RELU, RELU_N1_TO_1 or RELU6)", act)
	}
	flo, fhi = ref.ActivationRangeFloat(act)
	if quantized {
		s, zp, err := c.activationQuant("output", out)
		if err != nil {
			return 0, 0, 0, 0, err
		}
		lo, hi = ref.ActivationRangeInt8(act, s, zp)
		if lo > hi {
			return 0, 0, 0, 0, c.errorf("fused activation %d is empty in the output's quantized range", act)
		}
	}
	return lo, hi, flo, fhi, nil
}

// window checks strides, filter sizes and dilations from options.
func (c *opContext) window(what string, vals ...int) error {
	for _, v := range vals {
		if v < 1 || v > maxWindow {
			return c.errorf("%s %v must be between 1 and %d", what, vals, maxWindow)
		}
	}
	return nil
}

func dilationOrOne(d int) int {
	if d == 0 {
		return 1
	}
	return d
}

// prepare dispatches on the operator code.
func (c *opContext) prepare() (kernel, error) {
	switch c.op.Op {
	case resnet.OpConv2D:
		return c.prepareConv(false)
	case resnet.OpDepthwiseConv2D:
		return c.prepareConv(true)
	case resnet.OpFullyConnected:
		return c.prepareFullyConnected()
	case resnet.OpAdd:
		return c.prepareAdd()
	case resnet.OpMaxPool2D:
		return c.preparePool(false)
	case resnet.OpAveragePool2D:
		return c.preparePool(true)
	case resnet.OpMean:
		return c.prepareMean()
	case resnet.OpPad:
		return c.preparePad()
	case resnet.OpReshape:
		return c.prepareReshape()
	case resnet.OpSqueeze:
		return c.prepareSqueeze()
	case resnet.OpSoftmax:
		return c.prepareSoftmax()
	case resnet.OpQuantize:
		return c.prepareQuantize()
	case resnet.OpDequantize:
		return c.prepareDequantize()
	}
	return nil, c.errorf("operator is not supported by this runtime (supported: %s)", supportedOps())
}

// unaryIO is the common start of one-input operators: the input and output
// indices and a type check of the input.
func (c *opContext) unaryIO(minIn, maxIn int, allowed ...resnet.DType) (in, out int, err error) {
	if err = c.ioCount(minIn, maxIn); err != nil {
		return
	}
	if in, err = c.input(0, "input", false); err != nil {
		return
	}
	out = c.op.Outputs[0]
	if err = c.checkType("input", in, allowed...); err != nil {
		return
	}
	err = c.sameType("output", out, c.tensor(in).Type)
	return
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
	in, out, err := c.unaryIO(2, 3, resnet.Int8, resnet.Float32)
	if err != nil {
		return nil, err
	}
	typ := c.tensor(in).Type
	quantized := typ == resnet.Int8
	filter, err := c.input(1, "filter", false)
	if err != nil {
		return nil, err
	}
	bias, err := c.input(2, "bias", true)
	if err != nil {
		return nil, err
	}
	if err := c.sameType("filter", filter, typ); err != nil {
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
	filterData, err := c.constant("filter", filter)
	if err != nil {
		return nil, err
	}
	var biasData []byte
	if bias >= 0 {
		if biasData, err = c.constant("bias", bias); err != nil {
			return nil, err
		}
		if n := c.tensor(bias).NumElements(); n != p.OutC {
			return nil, c.errorf("bias %s has %d elements; want %d (one per output channel)", c.b.tensorRef(bias), n, p.OutC)
		}
	}
	if p.ActMin, p.ActMax, p.FloatMin, p.FloatMax, err = c.activation(act, out, quantized); err != nil {
		return nil, err
	}
	if !quantized {
		if bias >= 0 {
			if err := c.sameType("bias", bias, resnet.Float32); err != nil {
				return nil, err
			}
			k.biasF32 = float32View(biasData)
		}
		k.filterF32 = float32View(filterData)
		k.p = p
		return k, nil
	}
	if bias >= 0 {
		if err := c.checkType("bias", bias, resnet.Int32); err != nil {
			return nil, err
		}
		k.biasI32 = int32View(biasData)
	}
	k.filterI8 = int8View(filterData)
	inScale, inZP, err := c.activationQuant("input", in)
	if err != nil {
		return nil, err
	}
	outScale, outZP, err := c.activationQuant("output", out)
	if err != nil {
		return nil, err
	}
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

func (c *opContext) prepareFullyConnected() (kernel, error) {
	var o resnet.FullyConnectedOptions
	switch opt := c.op.Options.(type) {
	case *resnet.FullyConnectedOptions:
		o = *opt
	case nil: // all-default options
	default:
		return nil, c.errorf("options are %T; want *resnet.FullyConnectedOptions", opt)
	}
	in, out, err := c.unaryIO(2, 3, resnet.Int8, resnet.Float32)
	if err != nil {
		return nil, err
	}
	typ := c.tensor(in).Type
	quantized := typ == resnet.Int8
	weights, err := c.input(1, "weights", false)
	if err != nil {
		return nil, err
	}
	bias, err := c.input(2, "bias", true)
	if err != nil {
		return nil, err
	}
	if err := c.sameType("weights", weights, typ); err != nil {
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
	wData, err := c.constant("weights", weights)
	if err != nil {
		return nil, err
	}
	var biasData []byte
	if bias >= 0 {
		if biasData, err = c.constant("bias", bias); err != nil {
			return nil, err
		}
		if bn := c.tensor(bias).NumElements(); bn != p.OutDepth {
			return nil, c.errorf("bias %s has %d elements; want %d", c.b.tensorRef(bias), bn, p.OutDepth)
		}
	}
	if p.ActMin, p.ActMax, p.FloatMin, p.FloatMax, err = c.activation(o.Activation, out, quantized); err != nil {
		return nil, err
	}
	k := &fullyConnectedKernel{in: in, out: out, quantized: quantized}
	if !quantized {
		if bias >= 0 {
			if err := c.sameType("bias", bias, resnet.Float32); err != nil {
				return nil, err
			}
			k.biasF32 = float32View(biasData)
		}
		k.weightsF32 = float32View(wData)
		k.p = p
		return k, nil
	}
	if bias >= 0 {
		if err := c.checkType("bias", bias, resnet.Int32); err != nil {
			return nil, err
		}
		k.biasI32 = int32View(biasData)
	}
	k.weightsI8 = int8View(wData)
	inScale, inZP, err := c.activationQuant("input", in)
	if err != nil {
		return nil, err
	}
	outScale, outZP, err := c.activationQuant("output", out)
	if err != nil {
		return nil, err
	}
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

func (c *opContext) prepareAdd() (kernel, error) {
	var o resnet.AddOptions
	switch opt := c.op.Options.(type) {
	case *resnet.AddOptions:
		o = *opt
	case nil:
	default:
		return nil, c.errorf("options are %T; want *resnet.AddOptions", opt)
	}
	in1, out, err := c.unaryIO(2, 2, resnet.Int8, resnet.Float32)
	if err != nil {
		return nil, err
	}
	in2, err := c.input(1, "input 2", false)
	if err != nil {
		return nil, err
	}
	typ := c.tensor(in1).Type
	if err := c.sameType("input 2", in2, typ); err != nil {
		return nil, err
	}
	s1, s2 := c.tensor(in1).Shape, c.tensor(in2).Shape
	if !slices.Equal(s1, s2) {
		return nil, c.errorf("inputs %s %v and %s %v differ in shape; broadcasting is not supported", c.b.tensorRef(in1), s1, c.b.tensorRef(in2), s2)
	}
	if err := c.checkOutputShape(out, slices.Clone(s1)); err != nil {
		return nil, err
	}
	quantized := typ == resnet.Int8
	k := &addKernel{in1: in1, in2: in2, out: out, quantized: quantized}
	lo, hi, flo, fhi, err := c.activation(o.Activation, out, quantized)
	if err != nil {
		return nil, err
	}
	if !quantized {
		k.p = ref.Add{FloatMin: flo, FloatMax: fhi}
		return k, nil
	}
	sc1, z1, err := c.activationQuant("input 1", in1)
	if err != nil {
		return nil, err
	}
	sc2, z2, err := c.activationQuant("input 2", in2)
	if err != nil {
		return nil, err
	}
	so, zo, err := c.activationQuant("output", out)
	if err != nil {
		return nil, err
	}
	if k.p, err = ref.NewAddInt8(sc1, z1, sc2, z2, so, zo, lo, hi); err != nil {
		return nil, c.errorf("scales %g + %g -> %g: %v", sc1, sc2, so, err)
	}
	if c.b.xnnpack {
		// Where XNNPACK refuses the scales, TFLite's own kernel runs it.
		if x, err := ref.NewAddXNNPACK(sc1, z1, sc2, z2, so, zo, lo, hi); err == nil {
			k.p = x
		}
	}
	if c.b.useFast {
		if c.b.addCache == nil {
			c.b.addCache = make(map[ref.Add]*fast.Add)
		}
		return &fastAddKernel{in1: in1, in2: in2, out: out, a: fast.NewAdd(&k.p, c.b.addCache)}, nil
	}
	return k, nil
}

// sameQuant checks that an int8 output keeps the input's quantization, as
// TFLite's pooling, pad and copy kernels assume.
func (c *opContext) sameQuant(in, out int) error {
	si, zi, err := c.activationQuant("input", in)
	if err != nil {
		return err
	}
	so, zo, err := c.activationQuant("output", out)
	if err != nil {
		return err
	}
	// TFLite's pooling Prepare allows scales within 1e-6 of each other.
	if math.Abs(float64(si)-float64(so)) > 1e-6 || zi != zo {
		return c.errorf("input %s (scale %g, zero point %d) and output %s (scale %g, zero point %d) must have the same quantization", c.b.tensorRef(in), si, zi, c.b.tensorRef(out), so, zo)
	}
	return nil
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
		return &fastMaxPoolKernel{in: in, out: out, m: fast.NewMaxPool(&p)}, nil
	}
	return &poolKernel{in: in, out: out, average: average, quantized: quantized, p: p}, nil
}

// constInts reads a constant INT32 (or INT64) tensor as ints.
func (c *opContext) constInts(role string, i int) ([]int, error) {
	if err := c.checkType(role, i, resnet.Int32, resnet.Int64); err != nil {
		return nil, err
	}
	data, err := c.constant(role, i)
	if err != nil {
		return nil, err
	}
	c.packedInputs(i)
	var vals []int
	if c.tensor(i).Type == resnet.Int32 {
		for k := 0; k+4 <= len(data); k += 4 {
			vals = append(vals, int(int32(binary.LittleEndian.Uint32(data[k:]))))
		}
	} else {
		for k := 0; k+8 <= len(data); k += 8 {
			v := int64(binary.LittleEndian.Uint64(data[k:]))
			if v < math.MinInt32 || v > math.MaxInt32 {
				return nil, c.errorf("%s %s holds %d, outside int32", role, c.b.tensorRef(i), v)
			}
			vals = append(vals, int(v))
		}
	}
	return vals, nil
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

// extend4 left-pads a shape of rank <= 4 with 1s.
func extend4(s []int) [4]int {
	var r [4]int
	for k := range r {
		r[k] = 1
	}
	copy(r[4-len(s):], s)
	return r
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

// prepareCopy finishes RESHAPE and SQUEEZE: same type and element count,
// bytes copied as they are.
func (c *opContext) prepareCopy(in, out int, want []int) (kernel, error) {
	if err := c.checkOutputShape(out, want); err != nil {
		return nil, err
	}
	if c.tensor(in).Type == resnet.Int8 {
		if err := c.sameQuant(in, out); err != nil {
			return nil, err
		}
	}
	return &copyKernel{in: in, out: out}, nil
}

func (c *opContext) prepareReshape() (kernel, error) {
	in, out, err := c.unaryIO(1, 2, resnet.Int8, resnet.Float32)
	if err != nil {
		return nil, err
	}
	// The new shape comes from a constant second input when there is one,
	// else from the options; with neither, the declared output shape stands
	// as long as the element count matches.
	var spec []int
	shapeIdx, err := c.input(1, "shape", true)
	if err != nil {
		return nil, err
	}
	switch {
	case shapeIdx >= 0:
		if spec, err = c.constInts("shape", shapeIdx); err != nil {
			return nil, err
		}
	default:
		if o, ok := c.op.Options.(*resnet.ReshapeOptions); ok && o != nil {
			spec = o.NewShape
		} else if c.op.Options != nil {
			return nil, c.errorf("options are %T; want *resnet.ReshapeOptions", c.op.Options)
		}
	}
	n := c.tensor(in).NumElements()
	want := slices.Clone(c.tensor(out).Shape)
	if spec != nil {
		want, err = resolveShape(spec, n)
		if err != nil {
			return nil, c.errorf("new shape %v for input %s with %d elements: %v", spec, c.b.tensorRef(in), n, err)
		}
	}
	if m := c.tensor(out).NumElements(); m != n {
		return nil, c.errorf("output %s has %d elements but input %s has %d", c.b.tensorRef(out), m, c.b.tensorRef(in), n)
	}
	return c.prepareCopy(in, out, want)
}

// resolveShape fills in at most one -1 dimension so that the shape has n
// elements.
func resolveShape(spec []int, n int) ([]int, error) {
	out := slices.Clone(spec)
	unknown := -1
	known := 1
	for k, d := range spec {
		switch {
		case d == -1 && unknown >= 0:
			return nil, fmt.Errorf("more than one -1")
		case d == -1:
			unknown = k
		case d < 1:
			return nil, fmt.Errorf("dimension %d is %d", k, d)
		default:
			if known > n/d+1 {
				return nil, fmt.Errorf("more elements than the input")
			}
			known *= d
		}
	}
	if unknown >= 0 {
		if known == 0 || n%known != 0 {
			return nil, fmt.Errorf("%d elements do not divide into %d", n, known)
		}
		out[unknown] = n / known
	} else if known != n {
		return nil, fmt.Errorf("it has %d elements, not %d", known, n)
	}
	return out, nil
}

func (c *opContext) prepareSqueeze() (kernel, error) {
	var o resnet.SqueezeOptions
	switch opt := c.op.Options.(type) {
	case *resnet.SqueezeOptions:
		o = *opt
	case nil:
	default:
		return nil, c.errorf("options are %T; want *resnet.SqueezeOptions", opt)
	}
	in, out, err := c.unaryIO(1, 1, resnet.Int8, resnet.Float32)
	if err != nil {
		return nil, err
	}
	s := c.tensor(in).Shape
	drop := make([]bool, len(s))
	if len(o.SqueezeDims) == 0 {
		for k, d := range s {
			drop[k] = d == 1
		}
	}
	for _, d := range o.SqueezeDims {
		k := d
		if k < 0 {
			k += len(s)
		}
		if k < 0 || k >= len(s) || s[k] != 1 {
			return nil, c.errorf("squeeze dims %v: dimension %d of input shape %v is not 1", o.SqueezeDims, d, s)
		}
		drop[k] = true
	}
	want := []int{}
	for k, d := range s {
		if !drop[k] {
			want = append(want, d)
		}
	}
	return c.prepareCopy(in, out, want)
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
	return k, nil
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
