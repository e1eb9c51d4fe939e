package resnet

import (
	"errors"
	"fmt"
	"math"
)

// MaxTensorElements bounds the element count of any one tensor. It keeps
// size arithmetic far from overflow (also where int has 32 bits) and
// rejects absurd shapes in files.
const MaxTensorElements = math.MaxInt32

// Validate checks that m is a well-formed single-subgraph model that this
// runtime can run: known tensor types, sane shapes, constant data of the
// right size, consistent quantization, supported operators with options of
// the right type, tensor indices in range, and operators in an order where
// every input exists before it is read (no cycles, no tensor written twice).
//
// Load calls Validate on every file, and Marshal calls it before writing,
// so models built in Go get the same checks as models read from disk. Both
// then check what a file must also follow, TFLite's operator rules and its
// int8 specification (spec.go); Validate leaves those out, so that models
// built in memory may omit what the kernels do not need (a bias's scale).
// Errors name the tensor or operator by index and name.
func (m *Model) Validate() error {
	if m == nil {
		return fmt.Errorf("model: nil model")
	}
	for i := range m.Tensors {
		if err := m.validateTensor(i); err != nil {
			return err
		}
	}
	for i := range m.Operators {
		if err := m.validateOperator(i); err != nil {
			return err
		}
	}
	if err := m.validateGraph(); err != nil {
		return err
	}
	return m.validateMeta()
}

// validateMeta checks the input normalization and output names.
func (m *Model) validateMeta() error {
	md := &m.Meta
	if len(md.Std) > 0 && len(md.Std) != len(md.Mean) {
		return fmt.Errorf("model: metadata: %d mean values but %d std values", len(md.Mean), len(md.Std))
	}
	for c, v := range md.Mean {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("model: metadata: mean[%d] is %v, want a finite value", c, v)
		}
	}
	for c, v := range md.Std {
		if !(v > 0) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("model: metadata: std[%d] is %v, want a finite value > 0", c, v)
		}
	}
	if len(md.OutputNames) > 0 && len(md.OutputNames) != len(m.Outputs) {
		return fmt.Errorf("model: metadata: %d output names for %d graph outputs", len(md.OutputNames), len(m.Outputs))
	}
	if md.HasImageSize() {
		h, w := md.ImageSize[0], md.ImageSize[1]
		if len(m.Inputs) == 0 {
			return fmt.Errorf("model: metadata: image_size [%d, %d] but the model has no input", h, w)
		}
		in := m.Inputs[0]
		if in < 0 || in >= len(m.Tensors) || len(m.Tensors[in].Shape) != 4 {
			return fmt.Errorf("model: metadata: image_size [%d, %d] but input 0 is not an image [N, H, W, C]", h, w)
		}
		s := m.Tensors[in].Shape
		if h < 1 || w < 1 || h > s[1] || w > s[2] {
			return fmt.Errorf("model: metadata: image_size [%d, %d] does not fit the %dx%d input %s: want 1..%d by 1..%d",
				h, w, s[1], s[2], m.tensorRef(in), s[1], s[2])
		}
	}
	return nil
}

// tensorRef names tensor i for error messages.
func (m *Model) tensorRef(i int) string {
	if i >= 0 && i < len(m.Tensors) {
		return fmt.Sprintf("tensor %d %q", i, m.Tensors[i].Name)
	}
	return fmt.Sprintf("tensor %d", i)
}

// opRef names operator i for error messages.
func (m *Model) opRef(i int) string {
	return fmt.Sprintf("operator %d (%s)", i, m.Operators[i].Op)
}

// knownType reports whether tensors of type t can be stored and read.
func knownType(t DType) bool {
	switch t {
	case Float32, Float16, Int32, UInt8, Int64, Bool, Int16, Int8:
		return true
	}
	return false
}

// elementCount multiplies the dimensions of shape, refusing negative
// dimensions and products above MaxTensorElements without overflowing.
func elementCount(shape []int) (int, error) {
	n := 1
	for k, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("dimension %d is negative (%d)", k, d)
		}
		if d > math.MaxInt32 {
			return 0, fmt.Errorf("dimension %d is %d, above the limit %d", k, d, math.MaxInt32)
		}
	}
	for _, d := range shape {
		if d == 0 {
			return 0, nil
		}
		if n > MaxTensorElements/d {
			return 0, fmt.Errorf("has more than %d elements", MaxTensorElements)
		}
		n *= d
	}
	return n, nil
}

func (m *Model) validateTensor(i int) error {
	t := &m.Tensors[i]
	fail := func(format string, args ...any) error {
		return fmt.Errorf("model: %s: %s", m.tensorRef(i), fmt.Sprintf(format, args...))
	}
	if !knownType(t.Type) {
		return fail("element type %v is not supported", t.Type)
	}
	n, err := elementCount(t.Shape)
	if err != nil {
		return fail("shape %v %v", t.Shape, err)
	}
	if need := int64(n) * int64(t.Type.Size()); len(t.Data) > 0 && int64(len(t.Data)) != need {
		return fail("data has %d bytes, shape %v %v needs %d", len(t.Data), t.Shape, t.Type, need)
	}
	if t.Quant == nil {
		if t.Type == Int8 || t.Type == UInt8 {
			return fail("%v tensor has no quantization parameters", t.Type)
		}
		return nil
	}
	if err := validateQuant(t); err != nil {
		return fail("quantization: %v", err)
	}
	return nil
}

// validateQuant checks one tensor's quantization parameters.
func validateQuant(t *Tensor) error {
	q := t.Quant
	if len(q.Min) != len(q.Max) {
		return fmt.Errorf("%d min values but %d max values", len(q.Min), len(q.Max))
	}
	if len(q.Scale) != len(q.ZeroPoint) {
		return fmt.Errorf("%d scales but %d zero points", len(q.Scale), len(q.ZeroPoint))
	}
	if len(q.Scale) == 0 {
		if t.Type == Int8 || t.Type == UInt8 {
			return fmt.Errorf("%v tensor has no scale", t.Type)
		}
		return nil
	}
	if q.Dim < 0 || (q.Dim >= len(t.Shape) && !(q.Dim == 0 && len(t.Shape) == 0)) {
		return fmt.Errorf("quantized dimension %d is out of range for shape %v", q.Dim, t.Shape)
	}
	if n := len(q.Scale); n > 1 && n != t.Shape[q.Dim] {
		msg := fmt.Sprintf("%d scales, but quantized dimension %d of shape %v has %s: per-channel quantization takes one scale per entry of that dimension, per-tensor quantization one scale",
			n, q.Dim, t.Shape, plural(t.Shape[q.Dim], "entry", "entries"))
		for d, size := range t.Shape {
			if size == n {
				msg += fmt.Sprintf(" (dimension %d has %d entries: quantized_dimension %d would fit)", d, n, d)
				break
			}
		}
		return errors.New(msg)
	}
	for c, s := range q.Scale {
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return fmt.Errorf("scale[%d] is %v, want a finite value > 0", c, s)
		}
	}
	lo, hi := int64(math.MinInt32), int64(math.MaxInt32)
	switch t.Type {
	case Int8:
		lo, hi = math.MinInt8, math.MaxInt8
	case UInt8:
		lo, hi = 0, math.MaxUint8
	case Int16:
		lo, hi = math.MinInt16, math.MaxInt16
	}
	for c, z := range q.ZeroPoint {
		if z < lo || z > hi {
			return fmt.Errorf("zero point[%d] is %d, outside the %v range [%d, %d]", c, z, t.Type, lo, hi)
		}
	}
	return nil
}

func (m *Model) validateOperator(i int) error {
	op := &m.Operators[i]
	fail := func(format string, args ...any) error {
		return fmt.Errorf("model: %s: %s", m.opRef(i), fmt.Sprintf(format, args...))
	}
	sig, ok := Op(op.Op)
	if !ok {
		return fail("operator is not supported by this runtime")
	}
	if op.Version < 0 || op.Version > math.MaxInt32 {
		return fail("version %d is out of range", op.Version)
	}
	if len(op.Inputs) < sig.MinInputs || len(op.Inputs) > sig.MaxInputs {
		if sig.MinInputs == sig.MaxInputs {
			return fail("has %d inputs, want %d", len(op.Inputs), sig.MinInputs)
		}
		return fail("has %d inputs, want %d to %d", len(op.Inputs), sig.MinInputs, sig.MaxInputs)
	}
	if len(op.Outputs) != 1 {
		return fail("has %d outputs, want 1", len(op.Outputs))
	}
	for k, ti := range op.Inputs {
		if ti == -1 && k >= sig.MinInputs {
			continue // omitted optional input
		}
		if ti < 0 || ti >= len(m.Tensors) {
			return fail("input %d is tensor index %d, out of range [0, %d)", k, ti, len(m.Tensors))
		}
	}
	for k, ti := range op.Outputs {
		if ti < 0 || ti >= len(m.Tensors) {
			return fail("output %d is tensor index %d, out of range [0, %d)", k, ti, len(m.Tensors))
		}
	}
	if sig.NewOptions == nil {
		if op.Options != nil {
			return fail("has options %T, but %v takes none", op.Options, op.Op)
		}
		return nil
	}
	if !sig.optionsFit(op.Options) {
		return fail("options are %T, want %s", op.Options, sig.optionsTypeName())
	}
	if err := validateOptions(op.Options); err != nil {
		return fail("%v", err)
	}
	return nil
}

// validateOptions checks option values that the file format can carry
// but no operator can use.
func validateOptions(o Options) error {
	checkPadding := func(p Padding) error {
		if p != PaddingSame && p != PaddingValid {
			return fmt.Errorf("padding %d is not SAME (0) or VALID (1)", p)
		}
		return nil
	}
	checkAct := func(a Activation) error {
		if a < ActNone || a > ActRelu6 {
			return fmt.Errorf("fused activation %d is not supported (want NONE, RELU, RELU_N1_TO_1 or RELU6)", a)
		}
		return nil
	}
	positive := func(what string, vs ...int) error {
		for _, v := range vs {
			if v < 1 || v > math.MaxInt32 {
				return fmt.Errorf("%s %v must be >= 1", what, vs)
			}
		}
		return nil
	}
	dilation := func(vs ...int) error {
		for _, v := range vs {
			if v < 0 || v > math.MaxInt32 {
				return fmt.Errorf("dilation %v must be >= 1 (or 0 for 1)", vs)
			}
		}
		return nil
	}
	fitsInt32 := func(what string, vs []int) error {
		for _, v := range vs {
			if v < math.MinInt32 || v > math.MaxInt32 {
				return fmt.Errorf("%s %v has a value outside int32", what, vs)
			}
		}
		return nil
	}
	first := func(errs ...error) error {
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	}
	switch o := o.(type) {
	case *Conv2DOptions:
		return first(checkPadding(o.Padding), checkAct(o.Activation),
			positive("strides (w, h)", o.StrideW, o.StrideH), dilation(o.DilationW, o.DilationH))
	case *DepthwiseConv2DOptions:
		return first(checkPadding(o.Padding), checkAct(o.Activation),
			positive("strides (w, h)", o.StrideW, o.StrideH), positive("depth multiplier", o.DepthMultiplier),
			dilation(o.DilationW, o.DilationH))
	case *Pool2DOptions:
		return first(checkPadding(o.Padding), checkAct(o.Activation),
			positive("strides (w, h)", o.StrideW, o.StrideH), positive("filter size (w, h)", o.FilterW, o.FilterH))
	case *FullyConnectedOptions:
		return checkAct(o.Activation)
	case *AddOptions:
		return checkAct(o.Activation)
	case *SoftmaxOptions:
		if math.IsNaN(float64(o.Beta)) || math.IsInf(float64(o.Beta), 0) {
			return fmt.Errorf("softmax beta %v is not finite", o.Beta)
		}
	case *ReshapeOptions:
		for _, d := range o.NewShape {
			if d < -1 || d > math.MaxInt32 {
				return fmt.Errorf("new shape %v: dimensions must be >= 0, or -1 for one inferred dimension", o.NewShape)
			}
		}
	case *SqueezeOptions:
		return fitsInt32("squeeze dims", o.SqueezeDims)
	}
	return nil
}

// validateGraph checks the graph inputs and outputs and the operator order:
// every operator input must be a constant, a graph input or the output of
// an earlier operator, and no tensor may be written twice.
func (m *Model) validateGraph() error {
	nt := len(m.Tensors)
	if len(m.Inputs) == 0 {
		return fmt.Errorf("model: graph has no inputs")
	}
	if len(m.Outputs) == 0 {
		return fmt.Errorf("model: graph has no outputs")
	}
	// producer[t] is the index of the operator writing tensor t, or -1.
	producer := make([]int, nt)
	for t := range producer {
		producer[t] = -1
	}
	isInput := make([]bool, nt)
	for k, t := range m.Inputs {
		if t < 0 || t >= nt {
			return fmt.Errorf("model: graph input %d is tensor index %d, out of range [0, %d)", k, t, nt)
		}
		if isInput[t] {
			return fmt.Errorf("model: graph input %d: %s is listed twice", k, m.tensorRef(t))
		}
		if len(m.Tensors[t].Data) > 0 {
			return fmt.Errorf("model: graph input %d: %s is a constant", k, m.tensorRef(t))
		}
		isInput[t] = true
	}
	for i, op := range m.Operators {
		for _, t := range op.Outputs {
			switch {
			case producer[t] >= 0:
				return fmt.Errorf("model: %s: output %s is already written by %s",
					m.opRef(i), m.tensorRef(t), m.opRef(producer[t]))
			case isInput[t]:
				return fmt.Errorf("model: %s: output %s is a graph input", m.opRef(i), m.tensorRef(t))
			case len(m.Tensors[t].Data) > 0:
				return fmt.Errorf("model: %s: output %s is a constant", m.opRef(i), m.tensorRef(t))
			}
			producer[t] = i
		}
	}
	for i, op := range m.Operators {
		for k, t := range op.Inputs {
			if t < 0 || isInput[t] || len(m.Tensors[t].Data) > 0 {
				continue
			}
			switch p := producer[t]; {
			case p < 0:
				return fmt.Errorf("model: %s: input %d, %s, is neither a constant, a graph input nor written by any operator",
					m.opRef(i), k, m.tensorRef(t))
			case p == i:
				return fmt.Errorf("model: %s: input %d, %s, is its own output (cycle)", m.opRef(i), k, m.tensorRef(t))
			case p > i:
				return fmt.Errorf("model: %s: input %d, %s, is written later by %s (cycle, or operators out of order)",
					m.opRef(i), k, m.tensorRef(t), m.opRef(p))
			}
		}
	}
	for k, t := range m.Outputs {
		if t < 0 || t >= nt {
			return fmt.Errorf("model: graph output %d is tensor index %d, out of range [0, %d)", k, t, nt)
		}
		if producer[t] < 0 && !isInput[t] && len(m.Tensors[t].Data) == 0 {
			return fmt.Errorf("model: graph output %d: %s is not written by any operator", k, m.tensorRef(t))
		}
	}
	return nil
}

// plural writes n with the singular or plural noun ("1 entry", "3 entries").
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
