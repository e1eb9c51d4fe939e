// Package onnx converts a resnet.Model (a .tflite file loaded by our own
// runtime) into an ONNX model, so that ONNX Runtime can run the very same
// weights: as a second, native witness for our runtime and as the native
// speed peer in `make bench`. Data flows one way: *resnet.Model -> Export ->
// ONNX protobuf bytes (written with protowire, see proto.go) -> a file that
// tools/ort-node runs (internal/ort).
//
// # Layout
//
// TFLite is NHWC, ONNX's Conv and pools are NCHW. The graph input keeps the
// .tflite's NHWC shape (so the same .npy input feeds both runtimes) and one
// Transpose turns it into NCHW; every 4-D activation stays NCHW inside, and
// the weights are converted once at export (convolution OHWI -> OIHW,
// depthwise [1,H,W,C*M] -> [C*M,1,H,W] with group = C). Axes of PAD, MEAN
// and SOFTMAX are mapped to NCHW. Where the element order matters (RESHAPE,
// SQUEEZE, the flattening of FULLY_CONNECTED, a graph output of rank 4) the
// tensor is put back in NHWC order first: a Transpose, or a Reshape when
// H*W or C is 1 (then both orders hold the same bytes). Every output of the
// .tflite, in order and under its tensor name, is an output of the ONNX
// graph, so output 1 (the embedding) is kept.
//
// # int8 models: QDQ
//
// An int8 tensor of the .tflite is an 8-bit tensor in ONNX with its scale
// and zero point. Each arithmetic operator becomes DequantizeLinear on each
// input -> the float operator (and its fused activation: Relu or Clip) ->
// QuantizeLinear with the output's parameters: the "QDQ" form that ONNX
// Runtime fuses into its integer kernels (QLinearConv, QLinearAdd, ...).
// Weights are int8 initializers behind a DequantizeLinear, per channel along
// the output-channel axis (axis 0 after the layout change) when the .tflite
// has per-channel scales; a bias is an int32 initializer behind a
// DequantizeLinear with scale = input scale x weight scale and zero point 0.
// Every consumer gets its own DequantizeLinear, as ONNX Runtime's QDQ
// selectors want (a DequantizeLinear shared by two nodes blocks the fusion).
// Operators that only move values and keep their input's scale and zero
// point (MAX_POOL_2D, PAD, RESHAPE, SQUEEZE) run directly on the 8-bit
// tensor, which is exact and is what ONNX Runtime's optimizer would reduce
// a DQ -> op -> Q group to anyway.
//
// Options.Activations picks the 8-bit type of activations: int8 (the
// .tflite's own values) or uint8, where every activation's zero point is
// shifted by 128 (the same real values). Weights stay int8, per channel.
// uint8 activations with int8 weights is the configuration ONNX Runtime's
// x86 integer kernels are built for; with int8 activations it leaves some
// convolutions in float (NOTES.md, "A native CPU peer").
//
// A model the exporter cannot express (an operator, activation or tensor
// type it does not map) gets an error naming the operator and its index.
package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/shortcut-edge/shortcut/resnet"
)

// Activations is the 8-bit type of an int8 model's activations in ONNX.
type Activations string

const (
	// Int8 keeps the .tflite's int8 activations and zero points.
	Int8 Activations = "int8"
	// UInt8 stores activations as uint8 with every zero point + 128.
	UInt8 Activations = "uint8"
)

// Options control the export.
type Options struct {
	// Activations is the 8-bit activation type of int8 models; empty means
	// Int8. Float models ignore it.
	Activations Activations
	// Producer is written as the model's producer_version (the build's
	// version); empty is fine.
	ProducerVersion string
}

const (
	irVersion = 7  // ONNX IR version of opset 13
	opsetV    = 13 // per-axis QuantizeLinear/DequantizeLinear, Squeeze axes input
)

// Export converts m into an ONNX model (protobuf bytes).
func Export(m *resnet.Model, o Options) ([]byte, error) {
	if o.Activations == "" {
		o.Activations = Int8
	}
	if o.Activations != Int8 && o.Activations != UInt8 {
		return nil, fmt.Errorf("onnx export: activations %q: want %q or %q", o.Activations, Int8, UInt8)
	}
	// Name an operator the exporter cannot express before anything else:
	// that is the error a user can act on (re-export without it).
	for i, op := range m.Operators {
		if _, ok := converters[op.Op]; !ok {
			return nil, fmt.Errorf("onnx export: operator %d (%s): the ONNX exporter has no mapping for this operator; it maps %s",
				i, op.Op, strings.Join(mappedNames(), ", "))
		}
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("onnx export: %w", err)
	}
	e := &exporter{m: m, o: o, vals: map[int]*value{}, used: map[string]bool{}, consts: map[string]string{}}
	if err := e.run(); err != nil {
		return nil, err
	}
	mp := modelProto{irVersion: irVersion, opset: opsetV, producer: "shortcut", producerVersion: o.ProducerVersion,
		doc: m.Description, graph: e.g}
	mp.graph.name = "shortcut"
	if len(m.Meta.Labels) > 0 {
		mp.metadata = append(mp.metadata, [2]string{"labels", strings.Join(m.Meta.Labels, "\n")})
	}
	if len(m.Meta.OutputNames) > 0 {
		mp.metadata = append(mp.metadata, [2]string{"output_names", strings.Join(m.Meta.OutputNames, ",")})
	}
	mp.metadata = append(mp.metadata, [2]string{"input_layout", "NHWC"})
	if e.quantized {
		mp.metadata = append(mp.metadata, [2]string{"activations", string(o.Activations)})
	}
	return mp.marshal(), nil
}

// ExportFile loads a .tflite and writes its ONNX form to out.
func ExportFile(tflite, out string, o Options) error {
	m, err := resnet.LoadFile(tflite)
	if err != nil {
		return err
	}
	b, err := Export(m, o)
	if err != nil {
		return fmt.Errorf("model %q: %w", tflite, err)
	}
	return os.WriteFile(out, b, 0o644)
}

// qparams are the ONNX initializers holding a per-tensor scale and zero
// point, and the 8-bit type they imply.
type qparams struct {
	scale, zp string
	typ       dataType
	zpValue   int64 // the zero point in typ
	src       *resnet.Quant
}

// value is what a .tflite tensor (or an intermediate) is in the ONNX graph.
type value struct {
	name  string
	typ   dataType
	shape []int // the .tflite (NHWC) shape
	nchw  bool  // stored transposed to NCHW (only for rank 4)
	q     *qparams
}

type exporter struct {
	m         *resnet.Model
	o         Options
	g         graphProto
	vals      map[int]*value
	used      map[string]bool
	consts    map[string]string // dedup of small constants by content key
	opIndex   int
	opName    string
	quantized bool
}

func (e *exporter) errf(format string, args ...any) error {
	return fmt.Errorf("onnx export: operator %d (%s): %s", e.opIndex, e.opName, fmt.Sprintf(format, args...))
}

// unique returns a value name not used before, based on base.
func (e *exporter) unique(base string) string {
	if base == "" {
		base = "v"
	}
	name := base
	for n := 1; e.used[name]; n++ {
		name = fmt.Sprintf("%s_%d", base, n)
	}
	e.used[name] = true
	return name
}

func (e *exporter) add(op string, inputs []string, outBase string, attrs ...attribute) string {
	out := e.unique(outBase)
	e.g.nodes = append(e.g.nodes, node{opType: op, name: out, inputs: inputs, outputs: []string{out}, attrs: attrs})
	return out
}

func ints(name string, v ...int) attribute {
	a := attribute{name: name, typ: attrInts}
	for _, x := range v {
		a.ints = append(a.ints, int64(x))
	}
	return a
}

func intAttr(name string, v int64) attribute { return attribute{name: name, typ: attrInt, i: v} }

func (e *exporter) init(base string, typ dataType, dims []int, raw []byte) string {
	name := e.unique(base)
	d := make([]int64, len(dims))
	for i, x := range dims {
		d[i] = int64(x)
	}
	e.g.inits = append(e.g.inits, tensorProto{name: name, typ: typ, dims: d, raw: raw})
	return name
}

// constant returns a shared initializer for small constants (scales, zero
// points, shapes), deduplicated by content.
func (e *exporter) constant(base string, typ dataType, dims []int, raw []byte) string {
	key := fmt.Sprint(typ, dims, raw)
	if n, ok := e.consts[key]; ok {
		return n
	}
	n := e.init(base, typ, dims, raw)
	e.consts[key] = n
	return n
}

func f32raw(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func i64raw(v ...int) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(int64(x)))
	}
	return b
}

func (e *exporter) int64s(base string, v ...int) string {
	return e.constant(base, dtInt64, []int{len(v)}, i64raw(v...))
}

func (e *exporter) scalarF32(base string, v float32) string {
	return e.constant(base, dtFloat, nil, f32raw(v))
}

// activationType is the ONNX type of a quantized activation.
func (e *exporter) activationType() dataType {
	if e.o.Activations == UInt8 {
		return dtUint8
	}
	return dtInt8
}

// qparamsOf makes (once per distinct pair) the scale and zero-point
// initializers of a per-tensor int8 quantization, in type typ (int8 keeps the
// zero point, uint8 shifts it by 128).
func (e *exporter) qparamsOf(what string, q *resnet.Quant, typ dataType) (*qparams, error) {
	scale, zp, ok := q.PerTensor()
	if !ok {
		return nil, e.errf("%s has %d scales; activations must be quantized per tensor", what, len(q.Scale))
	}
	if typ == dtUint8 {
		zp += 128
	}
	lo, hi := int64(-128), int64(127)
	if typ == dtUint8 {
		lo, hi = 0, 255
	}
	if zp < lo || zp > hi {
		return nil, e.errf("%s has zero point %d, outside %s", what, zp, typ)
	}
	p := &qparams{typ: typ, zpValue: zp, src: q}
	p.scale = e.scalarF32("scale", scale)
	p.zp = e.constant("zero_point", typ, nil, []byte{byte(int8(zp))})
	if typ == dtUint8 {
		p.zp = e.constant("zero_point", typ, nil, []byte{byte(zp)})
	}
	return p, nil
}

// run converts the whole graph.
func (e *exporter) run() error {
	m := e.m
	for _, t := range m.Tensors {
		if t.Type == resnet.Int8 && t.Data == nil {
			e.quantized = true
		}
	}
	for n, ti := range m.Inputs {
		t := &m.Tensors[ti]
		e.opIndex, e.opName = -1, "graph input"
		typ, err := e.ioType(t)
		if err != nil {
			return fmt.Errorf("onnx export: input %d %q: %w", n, t.Name, err)
		}
		name := e.unique(t.Name)
		e.g.inputs = append(e.g.inputs, valueInfo{name: name, typ: typ, dims: dims64(t.Shape)})
		v := &value{name: name, typ: typ, shape: t.Shape}
		if t.Type == resnet.Int8 {
			if v.q, err = e.qparamsOf(fmt.Sprintf("input %q", t.Name), t.Quant, dtInt8); err != nil {
				return err
			}
			v = e.retype(v, e.activationType())
		}
		if len(t.Shape) == 4 {
			v = e.toNCHW(v)
		}
		e.vals[ti] = v
	}
	for i, op := range m.Operators {
		e.opIndex, e.opName = i, op.Op.String()
		if err := converters[op.Op](e, &op); err != nil {
			return err
		}
	}
	for n, ti := range m.Outputs {
		t := &m.Tensors[ti]
		e.opIndex, e.opName = -1, "graph output"
		v, err := e.get(ti)
		if err != nil {
			return fmt.Errorf("onnx export: output %d %q: %w", n, t.Name, err)
		}
		typ, err := e.ioType(t)
		if err != nil {
			return fmt.Errorf("onnx export: output %d %q: %w", n, t.Name, err)
		}
		v = e.toPlain(v)
		if v.q != nil && v.typ != typ {
			v = e.retype(v, typ)
		}
		want := t.Name
		if want == "" || e.used[want] && v.name != want {
			want = e.unique(fmt.Sprintf("output_%d", n))
		} else if v.name != want {
			e.used[want] = true
		}
		if v.name != want {
			e.g.nodes = append(e.g.nodes, node{opType: "Identity", name: want, inputs: []string{v.name}, outputs: []string{want}})
		}
		e.g.outputs = append(e.g.outputs, valueInfo{name: want, typ: typ, dims: dims64(t.Shape)})
	}
	return nil
}

func dims64(s []int) []int64 {
	d := make([]int64, len(s))
	for i, x := range s {
		d[i] = int64(x)
	}
	return d
}

// ioType is the ONNX type of a graph input or output: the .tflite's own.
func (e *exporter) ioType(t *resnet.Tensor) (dataType, error) {
	switch t.Type {
	case resnet.Float32:
		return dtFloat, nil
	case resnet.Int8:
		return dtInt8, nil
	}
	return 0, fmt.Errorf("type %v is not exported; inputs and outputs must be FLOAT32 or INT8", t.Type)
}

// retype converts a quantized value to another 8-bit type with the same real
// values: DequantizeLinear then QuantizeLinear with the zero point shifted by
// 128, exact because the real value lies on the grid of both.
func (e *exporter) retype(v *value, typ dataType) *value {
	q, _ := e.qparamsOf("", v.q.src, typ)
	f := e.add("DequantizeLinear", []string{v.name, v.q.scale, v.q.zp}, v.name+"/dq")
	out := e.add("QuantizeLinear", []string{f, q.scale, q.zp}, v.name+"/"+typ.String())
	return &value{name: out, typ: typ, shape: v.shape, nchw: v.nchw, q: q}
}

// get returns the value of a non-constant tensor that an earlier operator
// (or the graph input) produced.
func (e *exporter) get(ti int) (*value, error) {
	if v, ok := e.vals[ti]; ok {
		return v, nil
	}
	t := &e.m.Tensors[ti]
	if t.Data != nil {
		return e.constValue(ti)
	}
	return nil, e.errf("tensor %d %q is used before any operator produces it", ti, t.Name)
}

// constValue turns a constant tensor used as an ordinary operand (not a
// weight) into an initializer in the layout its consumers expect (rank 4 is
// stored NCHW like every 4-D activation).
func (e *exporter) constValue(ti int) (*value, error) {
	t := &e.m.Tensors[ti]
	switch t.Type {
	case resnet.Float32:
		raw, shape := t.Data, t.Shape
		nchw := len(shape) == 4
		if nchw {
			raw, shape = permute(raw, 4, shape, []int{0, 3, 1, 2})
		}
		v := &value{name: e.init(t.Name, dtFloat, shape, raw), typ: dtFloat, shape: t.Shape, nchw: nchw}
		e.vals[ti] = v
		return v, nil
	case resnet.Int8:
		q, err := e.qparamsOf(fmt.Sprintf("constant %q", t.Name), t.Quant, e.activationType())
		if err != nil {
			return nil, err
		}
		raw, shape := t.Data, t.Shape
		nchw := len(shape) == 4
		if nchw {
			raw, shape = permute(raw, 1, shape, []int{0, 3, 1, 2})
		}
		if q.typ == dtUint8 {
			raw = slices.Clone(raw)
			for i := range raw {
				raw[i] ^= 0x80 // int8 + 128 as uint8
			}
		}
		v := &value{name: e.init(t.Name, q.typ, shape, raw), typ: q.typ, shape: t.Shape, nchw: nchw, q: q}
		e.vals[ti] = v
		return v, nil
	}
	return nil, e.errf("constant %q has type %v; only FLOAT32 and INT8 constant operands are exported", t.Name, t.Type)
}

// permute reorders a dense tensor of elemSize-byte elements: out dimension i
// is in dimension perm[i].
func permute(raw []byte, elemSize int, shape, perm []int) ([]byte, []int) {
	outShape := make([]int, len(perm))
	for i, p := range perm {
		outShape[i] = shape[p]
	}
	inStride := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		inStride[i] = s
		s *= shape[i]
	}
	out := make([]byte, len(raw))
	idx := make([]int, len(perm))
	for o := 0; o < s; o++ {
		src := 0
		for i, p := range perm {
			src += idx[i] * inStride[p]
		}
		copy(out[o*elemSize:(o+1)*elemSize], raw[src*elemSize:(src+1)*elemSize])
		for i := len(idx) - 1; i >= 0; i-- {
			idx[i]++
			if idx[i] < outShape[i] {
				break
			}
			idx[i] = 0
		}
	}
	return out, outShape
}

// sameOrder reports whether NCHW and NHWC hold a 4-D tensor's elements in the
// same order (H*W or C is 1), so a Reshape can stand for a Transpose.
func sameOrder(shape []int) bool {
	return shape[1]*shape[2] == 1 || shape[3] == 1
}

// toNCHW stores a 4-D NHWC value as NCHW.
func (e *exporter) toNCHW(v *value) *value {
	if v.nchw || len(v.shape) != 4 {
		return v
	}
	s := v.shape
	var out string
	if sameOrder(s) {
		out = e.add("Reshape", []string{v.name, e.int64s("shape", s[0], s[3], s[1], s[2])}, v.name+"/nchw")
	} else {
		out = e.add("Transpose", []string{v.name}, v.name+"/nchw", ints("perm", 0, 3, 1, 2))
	}
	return &value{name: out, typ: v.typ, shape: s, nchw: true, q: v.q}
}

// toPlain puts a value back in the .tflite's element order (NHWC).
func (e *exporter) toPlain(v *value) *value {
	if !v.nchw {
		return v
	}
	s := v.shape
	var out string
	if sameOrder(s) {
		out = e.add("Reshape", []string{v.name, e.int64s("shape", s...)}, v.name+"/nhwc")
	} else {
		out = e.add("Transpose", []string{v.name}, v.name+"/nhwc", ints("perm", 0, 2, 3, 1))
	}
	return &value{name: out, typ: v.typ, shape: s, q: v.q}
}

// float returns a float view of a value: itself, or a fresh
// DequantizeLinear (one per consumer, as ONNX Runtime's QDQ fusion needs).
func (e *exporter) float(v *value) string {
	if v.q == nil {
		return v.name
	}
	return e.add("DequantizeLinear", []string{v.name, v.q.scale, v.q.zp}, v.name+"/dq")
}

// output records the float result of an operator as tensor ti: as is for a
// float tensor, through QuantizeLinear for an int8 one.
func (e *exporter) output(ti int, floatName string, nchw bool) error {
	t := &e.m.Tensors[ti]
	v := &value{shape: t.Shape, nchw: nchw && len(t.Shape) == 4}
	switch t.Type {
	case resnet.Float32:
		v.name, v.typ = e.rename(floatName, t.Name), dtFloat
	case resnet.Int8:
		q, err := e.qparamsOf(fmt.Sprintf("output %q", t.Name), t.Quant, e.activationType())
		if err != nil {
			return err
		}
		v.q, v.typ = q, q.typ
		v.name = e.add("QuantizeLinear", []string{floatName, q.scale, q.zp}, t.Name)
	default:
		return e.errf("output %q has type %v; only FLOAT32 and INT8 are exported", t.Name, t.Type)
	}
	e.vals[ti] = v
	return nil
}

// rename gives the last node's output the tensor's name when that node made
// it, so the ONNX graph reads like the .tflite.
func (e *exporter) rename(name, want string) string {
	if want == "" || e.used[want] {
		return name
	}
	last := &e.g.nodes[len(e.g.nodes)-1]
	if len(last.outputs) != 1 || last.outputs[0] != name {
		return name
	}
	e.used[want] = true
	last.outputs[0], last.name = want, want
	return want
}

// keep records an 8-bit operator result computed directly on the 8-bit
// input (MAX_POOL_2D, PAD, RESHAPE, SQUEEZE): valid when the output keeps the
// input's scale and zero point.
func (e *exporter) keep(ti int, in *value, name string, nchw bool) {
	t := &e.m.Tensors[ti]
	e.vals[ti] = &value{name: e.rename(name, t.Name), typ: in.typ, shape: t.Shape, nchw: nchw && len(t.Shape) == 4, q: in.q}
}

// sameQuant reports whether tensor ti is quantized exactly as value in.
func sameQuant(t *resnet.Tensor, in *value) bool {
	if in.q == nil || t.Type != resnet.Int8 {
		return false
	}
	s1, z1, ok1 := t.Quant.PerTensor()
	s2, z2, ok2 := in.q.src.PerTensor()
	return ok1 && ok2 && s1 == s2 && z1 == z2
}

// activation appends a fused activation to a float result.
func (e *exporter) activation(x string, act resnet.Activation) (string, error) {
	switch act {
	case resnet.ActNone:
		return x, nil
	case resnet.ActRelu:
		return e.add("Relu", []string{x}, x+"/relu"), nil
	case resnet.ActRelu6:
		return e.add("Clip", []string{x, e.scalarF32("zero", 0), e.scalarF32("six", 6)}, x+"/relu6"), nil
	case resnet.ActReluN1To1:
		return e.add("Clip", []string{x, e.scalarF32("minus_one", -1), e.scalarF32("one", 1)}, x+"/relu_n1_to_1"), nil
	}
	return "", e.errf("fused activation %d is not mapped (NONE, RELU, RELU6 and RELU_N1_TO_1 are)", act)
}

// samePads is TFLite's SAME padding of one spatial dimension: the total
// split with the extra cell at the end.
func samePads(in, k, stride, dilation int) (before, after int) {
	out := (in + stride - 1) / stride
	total := max((out-1)*stride+(k-1)*dilation+1-in, 0)
	return total / 2, total - total/2
}

// spatialPads gives ONNX pads [top, left, bottom, right].
func spatialPads(p resnet.Padding, inH, inW, kH, kW, sH, sW, dH, dW int) []int {
	if p != resnet.PaddingSame {
		return []int{0, 0, 0, 0}
	}
	t, b := samePads(inH, kH, sH, dH)
	l, r := samePads(inW, kW, sW, dW)
	return []int{t, l, b, r}
}
