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

	writtenFrom map[int]int // tensor -> an earlier step that writes it (a fused ADD's output)
	aliasOf     map[int]int // tensor -> the tensor whose bytes it takes over (a fused ADD's output -> its residual)
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

	if err := b.indexGraph(); err != nil {
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
	b.fusePadPools(prog)
	b.fuseAdds(prog)
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

// indexGraph records which tensors are graph inputs and which operator
// writes each tensor, and checks every tensor the graph uses (checkTensor).
// The graph's structure (indices in range, operators in execution order, no
// tensor written twice, supported operators) is resnet.Model.Validate's,
// which New runs first: it is checked once, there.
func (b *builder) indexGraph() error {
	m := b.m
	for _, i := range m.Inputs {
		b.isInput[i] = true
		if err := b.checkTensor(i); err != nil {
			return err
		}
	}
	for oi := range m.Operators {
		op := &m.Operators[oi]
		for _, i := range op.Inputs {
			if i == -1 {
				continue // an omitted optional input; prepare checks which may be omitted
			}
			if err := b.checkTensor(i); err != nil {
				return err
			}
		}
		for _, i := range op.Outputs {
			b.producer[i] = oi
			if err := b.checkTensor(i); err != nil {
				return err
			}
		}
	}
	for _, i := range m.Outputs {
		if err := b.checkTensor(i); err != nil {
			return err
		}
	}
	return nil
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
	for i, step := range b.writtenFrom {
		first[i] = min(first[i], step)
	}
	// A tensor written in place of another one (aliasOf, possibly through
	// a chain) is not placed itself: the one it replaces lives on.
	root := func(i int) int {
		for {
			r, ok := b.aliasOf[i]
			if !ok {
				return i
			}
			i = r
		}
	}
	for i := range b.aliasOf {
		r := root(i)
		end[r] = max(end[r], end[i])
	}
	lives := make([]lifetime, 0, len(order))
	for _, i := range order {
		if _, ok := b.aliasOf[i]; ok {
			continue
		}
		t := &m.Tensors[i]
		n := int64(t.NumElements() * t.Type.Size())
		lives = append(lives, lifetime{tensor: i, size: roundUp(n), first: first[i], last: end[i]})
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
	for i := range b.aliasOf {
		prog.offsets[i] = prog.offsets[root(i)]
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
