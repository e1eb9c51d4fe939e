package resnet

//go:generate sh schema/gen.sh

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/shortcut-edge/shortcut/resnet/internal/tflfb"
)

// LoadFile reads and checks a .tflite file; see Load. The returned model's
// tensor data shares memory with the file contents read.
func LoadFile(path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	m, err := load(data, false)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return m, nil
}

// Load decodes a .tflite file held in data and checks it completely before
// returning: first the FlatBuffers structure (every offset, vector length
// and table size against the size of data, and a bound on how much the file
// may make us allocate), then the model itself with Validate, and last its
// operators against TFLite's own rules and the int8 quantization
// specification (spec.go), which a file must follow even where our kernels
// could do without. Files are untrusted: any malformed input gives an
// error, never a panic. The model does not keep a reference to data.
func Load(data []byte) (*Model, error) {
	return load(data, true)
}

// LoadShared is Load without the copy: the model's tensor data points into
// data, which the caller must then leave unchanged. It saves the size of the
// weights in memory (25 MB for an int8 ResNet-50).
func LoadShared(data []byte) (*Model, error) {
	return load(data, false)
}

func load(data []byte, copyData bool) (m *Model, err error) {
	if err := verifyFile(data); err != nil {
		return nil, err
	}
	// verifyFile has checked every offset the decoder follows, so the
	// generated accessors cannot index out of range. This recover is only a
	// last line of defence against a mismatch between the two.
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("model: internal error decoding a file that passed verification: %v", r)
		}
	}()
	m, err = decode(data, copyData)
	if err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := m.validateSpec(); err != nil {
		return nil, err
	}
	return m, nil
}

// ---------------------------------------------------------------------------
// Structural verification
//
// The generated accessors trust the buffer: a bad offset makes them panic or
// read garbage. verifyFile walks everything the decoder will read, described
// by the tableSpec values below (which mirror schema/tflite.fbs), and checks
// it against len(data) with 64-bit arithmetic.

type fieldKind uint8

const (
	scalarField      fieldKind = iota // inline value of size bytes
	stringField                       // offset to a string
	vectorField                       // offset to a vector of size-byte scalars
	tableField                        // offset to a table of type table
	tableVectorField                  // offset to a vector of offsets to tables
	unionField                        // offset to a table whose type is in field id-1
)

type fieldSpec struct {
	id    int
	name  string
	kind  fieldKind
	size  int                 // scalar size or vector element size
	table *tableSpec          // tableField, tableVectorField
	union map[byte]*tableSpec // unionField: known member tables
}

type tableSpec struct {
	name   string
	fields []fieldSpec
}

func scalar(id int, name string, size int) fieldSpec {
	return fieldSpec{id: id, name: name, kind: scalarField, size: size}
}
func str(id int, name string) fieldSpec {
	return fieldSpec{id: id, name: name, kind: stringField, size: 1}
}
func vec(id int, name string, elem int) fieldSpec {
	return fieldSpec{id: id, name: name, kind: vectorField, size: elem}
}
func tab(id int, name string, t *tableSpec) fieldSpec {
	return fieldSpec{id: id, name: name, kind: tableField, table: t}
}
func tabs(id int, name string, t *tableSpec) fieldSpec {
	return fieldSpec{id: id, name: name, kind: tableVectorField, table: t}
}

// emptyTable matches any table; used for tables whose fields we do not read.
var emptyTable = &tableSpec{name: "table"}

var (
	quantSpec = &tableSpec{name: "QuantizationParameters", fields: []fieldSpec{
		vec(0, "min", 4), vec(1, "max", 4), vec(2, "scale", 4), vec(3, "zero_point", 8),
		scalar(4, "details_type", 1),
		{id: 5, name: "details", kind: unionField, union: map[byte]*tableSpec{}},
		scalar(6, "quantized_dimension", 4),
	}}
	tensorSpec = &tableSpec{name: "Tensor", fields: []fieldSpec{
		vec(0, "shape", 4), scalar(1, "type", 1), scalar(2, "buffer", 4), str(3, "name"),
		tab(4, "quantization", quantSpec), scalar(5, "is_variable", 1), tab(6, "sparsity", emptyTable),
	}}
	optionSpecs = map[byte]*tableSpec{
		byte(tflfb.BuiltinOptionsConv2DOptions): {name: "Conv2DOptions", fields: []fieldSpec{
			scalar(0, "padding", 1), scalar(1, "stride_w", 4), scalar(2, "stride_h", 4),
			scalar(3, "fused_activation_function", 1), scalar(4, "dilation_w_factor", 4),
			scalar(5, "dilation_h_factor", 4)}},
		byte(tflfb.BuiltinOptionsDepthwiseConv2DOptions): {name: "DepthwiseConv2DOptions", fields: []fieldSpec{
			scalar(0, "padding", 1), scalar(1, "stride_w", 4), scalar(2, "stride_h", 4),
			scalar(3, "depth_multiplier", 4), scalar(4, "fused_activation_function", 1),
			scalar(5, "dilation_w_factor", 4), scalar(6, "dilation_h_factor", 4)}},
		byte(tflfb.BuiltinOptionsPool2DOptions): {name: "Pool2DOptions", fields: []fieldSpec{
			scalar(0, "padding", 1), scalar(1, "stride_w", 4), scalar(2, "stride_h", 4),
			scalar(3, "filter_width", 4), scalar(4, "filter_height", 4),
			scalar(5, "fused_activation_function", 1)}},
		byte(tflfb.BuiltinOptionsFullyConnectedOptions): {name: "FullyConnectedOptions", fields: []fieldSpec{
			scalar(0, "fused_activation_function", 1), scalar(1, "weights_format", 1),
			scalar(2, "keep_num_dims", 1)}},
		byte(tflfb.BuiltinOptionsSoftmaxOptions): {name: "SoftmaxOptions", fields: []fieldSpec{
			scalar(0, "beta", 4)}},
		byte(tflfb.BuiltinOptionsAddOptions): {name: "AddOptions", fields: []fieldSpec{
			scalar(0, "fused_activation_function", 1)}},
		byte(tflfb.BuiltinOptionsReshapeOptions): {name: "ReshapeOptions", fields: []fieldSpec{
			vec(0, "new_shape", 4)}},
		byte(tflfb.BuiltinOptionsReducerOptions): {name: "ReducerOptions", fields: []fieldSpec{
			scalar(0, "keep_dims", 1)}},
		byte(tflfb.BuiltinOptionsSqueezeOptions): {name: "SqueezeOptions", fields: []fieldSpec{
			vec(0, "squeeze_dims", 4)}},
	}
	operatorSpec = &tableSpec{name: "Operator", fields: []fieldSpec{
		scalar(0, "opcode_index", 4), vec(1, "inputs", 4), vec(2, "outputs", 4),
		scalar(3, "builtin_options_type", 1),
		{id: 4, name: "builtin_options", kind: unionField, union: optionSpecs},
	}}
	subgraphSpec = &tableSpec{name: "SubGraph", fields: []fieldSpec{
		tabs(0, "tensors", tensorSpec), vec(1, "inputs", 4), vec(2, "outputs", 4),
		tabs(3, "operators", operatorSpec), str(4, "name"),
	}}
	operatorCodeSpec = &tableSpec{name: "OperatorCode", fields: []fieldSpec{
		scalar(0, "deprecated_builtin_code", 1), str(1, "custom_code"), scalar(2, "version", 4),
		scalar(3, "builtin_code", 4),
	}}
	bufferSpec = &tableSpec{name: "Buffer", fields: []fieldSpec{
		vec(0, "data", 1), scalar(1, "offset", 8), scalar(2, "size", 8),
	}}
	metadataSpec = &tableSpec{name: "Metadata", fields: []fieldSpec{
		str(0, "name"), scalar(1, "buffer", 4),
	}}
	modelSpec = &tableSpec{name: "Model", fields: []fieldSpec{
		scalar(0, "version", 4), tabs(1, "operator_codes", operatorCodeSpec),
		tabs(2, "subgraphs", subgraphSpec), str(3, "description"), tabs(4, "buffers", bufferSpec),
		tabs(6, "metadata", metadataSpec),
	}}
)

// Per-reference cost charged against the budget, in bytes: the offset
// itself plus what the decoder allocates per table.
const tableCost = 16

// path is a lazily formatted location in the file, such as
// subgraphs[0].tensors[12].shape, used only when reporting an error.
type path struct {
	parent *path
	name   string
	index  int // -1: not an element of a vector
}

func (p *path) String() string {
	var parts []string
	for q := p; q != nil; q = q.parent {
		s := q.name
		if q.index >= 0 {
			s = fmt.Sprintf("%s[%d]", s, q.index)
		}
		parts = append(parts, s)
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ".")
}

type verifier struct {
	buf []byte
	n   uint64 // len(buf)
	// budget is how many more bytes of tables and vectors the file may
	// make us visit. A valid file visits each byte about once; a hostile
	// one that points many offsets at the same data (to make decoding
	// allocate far more than its size) runs out of budget instead.
	budget int64
}

func (v *verifier) errorf(at *path, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if at == nil {
		return fmt.Errorf("model: malformed file (%d bytes): %s", v.n, msg)
	}
	return fmt.Errorf("model: malformed file (%d bytes): %v: %s", v.n, at, msg)
}

func (v *verifier) charge(at *path, n uint64) error {
	if n > uint64(v.budget) {
		return v.errorf(at, "file refers to more data than it holds (%d bytes); shared or overlapping sections are not accepted", v.n)
	}
	v.budget -= int64(n)
	return nil
}

func (v *verifier) u16(p uint64) uint64 { return uint64(binary.LittleEndian.Uint16(v.buf[p:])) }
func (v *verifier) u32(p uint64) uint64 { return uint64(binary.LittleEndian.Uint32(v.buf[p:])) }

// target follows the unsigned offset stored at p (p+4 <= n is known).
func (v *verifier) target(at *path, p uint64) (uint64, error) {
	t := p + v.u32(p)
	if t >= v.n {
		return 0, v.errorf(at, "offset at byte %d points to byte %d, past the end", p, t)
	}
	return t, nil
}

// vector checks the vector whose offset is stored at p and returns the
// position of its first element and its length.
func (v *verifier) vector(at *path, p uint64, elem int) (start, length uint64, err error) {
	t, err := v.target(at, p)
	if err != nil {
		return 0, 0, err
	}
	if t+4 > v.n {
		return 0, 0, v.errorf(at, "vector length at byte %d runs past the end", t)
	}
	length = v.u32(t)
	if avail := v.n - t - 4; length > avail/uint64(elem) {
		return 0, 0, v.errorf(at, "vector at byte %d claims %d elements of %d bytes, but only %d bytes follow",
			t, length, elem, avail)
	}
	if err := v.charge(at, 4+length*uint64(elem)); err != nil {
		return 0, 0, err
	}
	return t + 4, length, nil
}

// table checks the table starting at pos against spec.
func (v *verifier) table(at *path, pos uint64, spec *tableSpec) error {
	if pos+4 > v.n {
		return v.errorf(at, "%s table at byte %d runs past the end", spec.name, pos)
	}
	vt := int64(pos) - int64(int32(v.u32(pos)))
	if vt < 0 || uint64(vt)+4 > v.n {
		return v.errorf(at, "%s table at byte %d has its vtable at %d, outside the file", spec.name, pos, vt)
	}
	vtab := uint64(vt)
	vtSize, tabSize := v.u16(vtab), v.u16(vtab+2)
	if vtSize < 4 || vtSize%2 != 0 || vtab+vtSize > v.n {
		return v.errorf(at, "%s table at byte %d: vtable at %d has bad size %d", spec.name, pos, vtab, vtSize)
	}
	if tabSize < 4 || pos+tabSize > v.n {
		return v.errorf(at, "%s table at byte %d: size %d runs past the end", spec.name, pos, tabSize)
	}
	if err := v.charge(at, tableCost+tabSize); err != nil {
		return err
	}
	// field returns the position of field id, or 0 if absent.
	field := func(f *fieldSpec, size uint64) (uint64, error) {
		slot := 4 + 2*uint64(f.id)
		if slot+2 > vtSize {
			return 0, nil
		}
		off := v.u16(vtab + slot)
		if off == 0 {
			return 0, nil
		}
		if off < 4 || off+size > tabSize {
			return 0, v.errorf(&path{at, f.name, -1}, "field at offset %d (%d bytes) lies outside its %d-byte %s table",
				off, size, tabSize, spec.name)
		}
		return pos + off, nil
	}
	for i := range spec.fields {
		f := &spec.fields[i]
		size := uint64(4)
		if f.kind == scalarField {
			size = uint64(f.size)
		}
		p, err := field(f, size)
		if err != nil {
			return err
		}
		if p == 0 {
			continue // absent
		}
		fat := &path{at, f.name, -1}
		switch f.kind {
		case stringField, vectorField:
			if _, _, err := v.vector(fat, p, f.size); err != nil {
				return err
			}
		case tableField:
			t, err := v.target(fat, p)
			if err != nil {
				return err
			}
			if err := v.table(fat, t, f.table); err != nil {
				return err
			}
		case tableVectorField:
			start, n, err := v.vector(fat, p, 4)
			if err != nil {
				return err
			}
			for k := range n {
				eat := &path{at, f.name, int(k)}
				t, err := v.target(eat, start+4*k)
				if err != nil {
					return err
				}
				if err := v.table(eat, t, f.table); err != nil {
					return err
				}
			}
		case unionField:
			var typ byte
			typeField := fieldSpec{id: f.id - 1, name: f.name + "_type"}
			if tp, err := field(&typeField, 1); err != nil {
				return err
			} else if tp != 0 {
				typ = v.buf[tp]
			}
			t, err := v.target(fat, p)
			if err != nil {
				return err
			}
			member := f.union[typ]
			if member == nil {
				member = emptyTable // decoded only far enough to reject it
			}
			if err := v.table(fat, t, member); err != nil {
				return err
			}
		}
	}
	return nil
}

// verifyFile checks the file header and the whole table structure.
func verifyFile(data []byte) error {
	if len(data) < 8 {
		return fmt.Errorf("model: file is %d bytes, too short to be a TFLite model", len(data))
	}
	if uint64(len(data)) > 1<<31-1 {
		return fmt.Errorf("model: file is %d bytes; FlatBuffers files are limited to 2 GiB", len(data))
	}
	if id := string(data[4:8]); id != fileIdentifier {
		return fmt.Errorf("model: file identifier is %q, want %q: not a TFLite model, or one written without a file identifier",
			id, fileIdentifier)
	}
	v := &verifier{buf: data, n: uint64(len(data)), budget: 8*int64(len(data)) + 1<<16}
	root := uint64(binary.LittleEndian.Uint32(data))
	if root >= v.n {
		return v.errorf(nil, "root offset %d points past the end", root)
	}
	return v.table(&path{nil, "model", -1}, root, modelSpec)
}

// ---------------------------------------------------------------------------
// Decoding (after verifyFile)

// decoder turns a verified flatbuffer into a Model. Structural problems that
// the Model cannot represent (bad buffer or opcode indices, unsupported
// features) are reported here; everything else is left to Validate.
type decoder struct {
	data     []byte // the whole file, for the ZIP archive appended to it
	fm       *tflfb.Model
	copyData bool
	buffers  [][]byte // buffer contents, nil when empty
}

func decode(data []byte, copyData bool) (*Model, error) {
	d := &decoder{data: data, fm: tflfb.GetRootAsModel(data, 0), copyData: copyData}
	fm := d.fm
	if v := fm.Version(); v != schemaVersion {
		return nil, fmt.Errorf("model: schema version %d, want %d", v, schemaVersion)
	}
	if n := fm.SubgraphsLength(); n != 1 {
		return nil, fmt.Errorf("model: file has %d subgraphs; only single-subgraph models are supported", n)
	}
	if err := d.readBuffers(); err != nil {
		return nil, err
	}
	m := &Model{Description: string(fm.Description())}

	var sg tflfb.SubGraph
	fm.Subgraphs(&sg, 0)
	var err error
	if m.Tensors, err = d.tensors(&sg); err != nil {
		return nil, err
	}
	if m.Operators, err = d.operators(&sg); err != nil {
		return nil, err
	}
	m.Inputs = intVector(sg.InputsLength(), sg.Inputs)
	m.Outputs = intVector(sg.OutputsLength(), sg.Outputs)
	if m.Meta, err = d.metadata(len(m.Outputs)); err != nil {
		return nil, err
	}
	return m, nil
}

// intVector converts a flatbuffer [int] vector of length n read with at;
// an absent or empty vector gives nil.
func intVector(n int, at func(int) int32) []int {
	if n == 0 {
		return nil
	}
	out := make([]int, n)
	for i := range out {
		out[i] = int(at(i))
	}
	return out
}

func floatVector(n int, at func(int) float32) []float32 {
	if n == 0 {
		return nil
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = at(i)
	}
	return out
}

func int64Vector(n int, at func(int) int64) []int64 {
	if n == 0 {
		return nil
	}
	out := make([]int64, n)
	for i := range out {
		out[i] = at(i)
	}
	return out
}

func (d *decoder) readBuffers() error {
	n := d.fm.BuffersLength()
	d.buffers = make([][]byte, n)
	var b tflfb.Buffer
	for i := range n {
		d.fm.Buffers(&b, i)
		if b.Offset() > 1 || b.Size() > 0 {
			return fmt.Errorf("model: buffer %d keeps its data outside the flatbuffer (offset %d, size %d); such files (over 2 GB) are not supported",
				i, b.Offset(), b.Size())
		}
		if data := b.DataBytes(); len(data) > 0 {
			d.buffers[i] = data
		}
	}
	return nil
}

func (d *decoder) tensors(sg *tflfb.SubGraph) ([]Tensor, error) {
	n := sg.TensorsLength()
	out := make([]Tensor, n)
	copied := map[uint32][]byte{}
	var ft tflfb.Tensor
	var fq tflfb.QuantizationParameters
	for i := range n {
		sg.Tensors(&ft, i)
		t := &out[i]
		t.Name = string(ft.Name())
		t.Type = DType(ft.Type())
		t.Shape = intVector(ft.ShapeLength(), ft.Shape) // nil for a scalar
		fail := func(format string, args ...any) error {
			return fmt.Errorf("model: tensor %d %q: %s", i, t.Name, fmt.Sprintf(format, args...))
		}
		if ft.IsVariable() {
			return nil, fail("variable tensors are not supported")
		}
		if ft.Sparsity(nil) != nil {
			return nil, fail("sparse tensors are not supported")
		}
		bi := ft.Buffer()
		if int64(bi) >= int64(len(d.buffers)) {
			return nil, fail("buffer index %d is out of range (%d buffers)", bi, len(d.buffers))
		}
		if data := d.buffers[bi]; data != nil {
			if d.copyData {
				c, ok := copied[bi]
				if !ok {
					c = append([]byte(nil), data...)
					copied[bi] = c
				}
				data = c
			}
			t.Data = data
		}
		if q := ft.Quantization(&fq); q != nil {
			if q.DetailsType() != tflfb.QuantizationDetailsNONE {
				return nil, fail("custom (non-affine) quantization is not supported")
			}
			tq := Quant{
				Scale:     floatVector(q.ScaleLength(), q.Scale),
				ZeroPoint: int64Vector(q.ZeroPointLength(), q.ZeroPoint),
				Min:       floatVector(q.MinLength(), q.Min),
				Max:       floatVector(q.MaxLength(), q.Max),
				Dim:       int(q.QuantizedDimension()),
			}
			// Converters write an empty table for float tensors.
			if len(tq.Scale)+len(tq.ZeroPoint)+len(tq.Min)+len(tq.Max) > 0 {
				t.Quant = &tq
			}
		}
	}
	return out, nil
}

// opName names any TFLite builtin operator, including those we do not run.
func opName(code OpCode) string {
	if code.Supported() || code < 0 || int(code) >= len(tfliteOpNames) {
		return code.String()
	}
	return tfliteOpNames[code]
}

// tfliteOpNames are TFLite's BuiltinOperator names 0..119 (schema as of
// TensorFlow 1.15), for error messages about unsupported operators.
var tfliteOpNames = [...]string{
	"ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE",
	"DEQUANTIZE", "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED", "HASHTABLE_LOOKUP",
	"L2_NORMALIZATION", "L2_POOL_2D", "LOCAL_RESPONSE_NORMALIZATION", "LOGISTIC", "LSH_PROJECTION",
	"LSTM", "MAX_POOL_2D", "MUL", "RELU", "RELU_N1_TO_1", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RNN",
	"SOFTMAX", "SPACE_TO_DEPTH", "SVDF", "TANH", "CONCAT_EMBEDDINGS", "SKIP_GRAM", "CALL", "CUSTOM",
	"EMBEDDING_LOOKUP_SPARSE", "PAD", "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER", "BATCH_TO_SPACE_ND",
	"SPACE_TO_BATCH_ND", "TRANSPOSE", "MEAN", "SUB", "DIV", "SQUEEZE", "UNIDIRECTIONAL_SEQUENCE_LSTM",
	"STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN", "EXP", "TOPK_V2", "SPLIT", "LOG_SOFTMAX",
	"DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU", "MAXIMUM", "ARG_MAX", "MINIMUM",
	"LESS", "NEG", "PADV2", "GREATER", "GREATER_EQUAL", "LESS_EQUAL", "SELECT", "SLICE", "SIN",
	"TRANSPOSE_CONV", "SPARSE_TO_DENSE", "TILE", "EXPAND_DIMS", "EQUAL", "NOT_EQUAL", "LOG", "SUM",
	"SQRT", "RSQRT", "SHAPE", "POW", "ARG_MIN", "FAKE_QUANT", "REDUCE_PROD", "REDUCE_MAX", "PACK",
	"LOGICAL_OR", "ONE_HOT", "LOGICAL_AND", "LOGICAL_NOT", "UNPACK", "REDUCE_MIN", "FLOOR_DIV",
	"REDUCE_ANY", "SQUARE", "ZEROS_LIKE", "FILL", "FLOOR_MOD", "RANGE", "RESIZE_NEAREST_NEIGHBOR",
	"LEAKY_RELU", "SQUARED_DIFFERENCE", "MIRROR_PAD", "ABS", "SPLIT_V", "UNIQUE", "CEIL", "REVERSE_V2",
	"ADD_N", "GATHER_ND", "COS", "WHERE", "RANK", "ELU", "REVERSE_SEQUENCE", "MATRIX_DIAG", "QUANTIZE",
	"MATRIX_SET_DIAG", "ROUND", "HARD_SWISH", "IF", "WHILE",
}

type opCode struct {
	op      OpCode
	version int
	custom  string
}

func (d *decoder) opCodes() []opCode {
	n := d.fm.OperatorCodesLength()
	codes := make([]opCode, n)
	var fc tflfb.OperatorCode
	for i := range n {
		d.fm.OperatorCodes(&fc, i)
		// Files from before TFLite 2.4 have only the byte field; newer
		// ones put 127 there for codes above 126.
		code := max(int32(fc.BuiltinCode()), int32(fc.DeprecatedBuiltinCode()))
		codes[i] = opCode{op: OpCode(code), version: int(fc.Version()), custom: string(fc.CustomCode())}
	}
	return codes
}

func (d *decoder) operators(sg *tflfb.SubGraph) ([]Operator, error) {
	codes := d.opCodes()
	n := sg.OperatorsLength()
	out := make([]Operator, n)
	var fo tflfb.Operator
	for i := range n {
		sg.Operators(&fo, i)
		ci := fo.OpcodeIndex()
		if int64(ci) >= int64(len(codes)) {
			return nil, fmt.Errorf("model: operator %d: opcode index %d is out of range (%d operator codes)", i, ci, len(codes))
		}
		c := codes[ci]
		if c.op == OpCode(tflfb.BuiltinOperatorCUSTOM) {
			return nil, fmt.Errorf("model: operator %d: custom operator %q is not supported", i, c.custom)
		}
		if !c.op.Supported() {
			return nil, fmt.Errorf("model: operator %d: %s is not supported by this runtime", i, opName(c.op))
		}
		op := &out[i]
		op.Op, op.Version = c.op, c.version
		if op.Version == 0 {
			op.Version = 1 // as Marshal writes it
		}
		op.Inputs = intVector(fo.InputsLength(), fo.Inputs)
		op.Outputs = intVector(fo.OutputsLength(), fo.Outputs)
		var err error
		if op.Options, err = d.options(&fo, c.op); err != nil {
			return nil, fmt.Errorf("model: operator %d (%s): %v", i, c.op, err)
		}
	}
	return out, nil
}

// options decodes the builtin options of an operator with code op. Absent
// options give the schema defaults.
func (d *decoder) options(fo *tflfb.Operator, op OpCode) (Options, error) {
	info, _ := Op(op) // the caller checked op is supported
	want := info.FileOptions
	typ := fo.BuiltinOptionsType()
	var tab flatbuffers.Table
	present := typ != tflfb.BuiltinOptionsNONE && fo.BuiltinOptions(&tab)
	if present && typ != want {
		return nil, fmt.Errorf("builtin options are %v, want %v", typ, want)
	}
	if !present {
		// The schema's defaults: strides and filter sizes are 0, so
		// Validate rejects convolutions and pools without options.
		if info.NewOptions == nil {
			return nil, nil
		}
		return info.NewOptions(), nil
	}
	switch want {
	case tflfb.BuiltinOptionsConv2DOptions:
		var o tflfb.Conv2DOptions
		o.Init(tab.Bytes, tab.Pos)
		if err := fileDilation(o.DilationWFactor(), o.DilationHFactor()); err != nil {
			return nil, err
		}
		return &Conv2DOptions{
			Padding: Padding(o.Padding()), StrideW: int(o.StrideW()), StrideH: int(o.StrideH()),
			Activation: Activation(o.FusedActivationFunction()),
			DilationW:  int(o.DilationWFactor()), DilationH: int(o.DilationHFactor()),
		}, nil
	case tflfb.BuiltinOptionsDepthwiseConv2DOptions:
		var o tflfb.DepthwiseConv2DOptions
		o.Init(tab.Bytes, tab.Pos)
		if err := fileDilation(o.DilationWFactor(), o.DilationHFactor()); err != nil {
			return nil, err
		}
		return &DepthwiseConv2DOptions{
			Padding: Padding(o.Padding()), StrideW: int(o.StrideW()), StrideH: int(o.StrideH()),
			DepthMultiplier: int(o.DepthMultiplier()), Activation: Activation(o.FusedActivationFunction()),
			DilationW: int(o.DilationWFactor()), DilationH: int(o.DilationHFactor()),
		}, nil
	case tflfb.BuiltinOptionsPool2DOptions:
		var o tflfb.Pool2DOptions
		o.Init(tab.Bytes, tab.Pos)
		return &Pool2DOptions{
			Padding: Padding(o.Padding()), StrideW: int(o.StrideW()), StrideH: int(o.StrideH()),
			FilterW: int(o.FilterWidth()), FilterH: int(o.FilterHeight()),
			Activation: Activation(o.FusedActivationFunction()),
		}, nil
	case tflfb.BuiltinOptionsFullyConnectedOptions:
		var o tflfb.FullyConnectedOptions
		o.Init(tab.Bytes, tab.Pos)
		if f := o.WeightsFormat(); f != tflfb.FullyConnectedOptionsWeightsFormatDEFAULT {
			return nil, fmt.Errorf("weights format %v is not supported", f)
		}
		return &FullyConnectedOptions{
			Activation: Activation(o.FusedActivationFunction()), KeepNumDims: o.KeepNumDims(),
		}, nil
	case tflfb.BuiltinOptionsSoftmaxOptions:
		var o tflfb.SoftmaxOptions
		o.Init(tab.Bytes, tab.Pos)
		return &SoftmaxOptions{Beta: o.Beta()}, nil
	case tflfb.BuiltinOptionsAddOptions:
		var o tflfb.AddOptions
		o.Init(tab.Bytes, tab.Pos)
		return &AddOptions{Activation: Activation(o.FusedActivationFunction())}, nil
	case tflfb.BuiltinOptionsReshapeOptions:
		var o tflfb.ReshapeOptions
		o.Init(tab.Bytes, tab.Pos)
		return &ReshapeOptions{NewShape: intVector(o.NewShapeLength(), o.NewShape)}, nil
	case tflfb.BuiltinOptionsSqueezeOptions:
		var o tflfb.SqueezeOptions
		o.Init(tab.Bytes, tab.Pos)
		return &SqueezeOptions{SqueezeDims: intVector(o.SqueezeDimsLength(), o.SqueezeDims)}, nil
	case tflfb.BuiltinOptionsReducerOptions:
		var o tflfb.ReducerOptions
		o.Init(tab.Bytes, tab.Pos)
		return &ReducerOptions{KeepDims: o.KeepDims()}, nil
	}
	return nil, nil // PAD, QUANTIZE, DEQUANTIZE: empty tables
}

// fileDilation checks the dilation factors a file gives a convolution.
// TFLite's Prepare refuses factors below 1, and so does Load, although a
// Model in memory may say 0 for 1 (an absent field is 1 in the schema, and
// Marshal writes 1 for 0).
func fileDilation(w, h int32) error {
	if w < 1 || h < 1 {
		return fmt.Errorf("dilation factors (w, h) [%d %d]: TFLite's convolutions need factors >= 1", w, h)
	}
	return nil
}

// metadata reads Meta from shortcut.meta, or when that is absent from the
// first TFLITE_METADATA entry (see tflmetadata.go), where a broken entry or
// labels ZIP is an error. Next to shortcut.meta, TFLITE_METADATA entries
// are only cross-checked (readTFLiteMetadata says how far).
func (d *decoder) metadata(outputs int) (Metadata, error) {
	var md Metadata
	var tfl []int // indices of the TFLITE_METADATA entries
	haveShortcut := false
	var fe tflfb.Metadata
	for i := range d.fm.MetadataLength() {
		d.fm.Metadata(&fe, i)
		name := string(fe.Name())
		if name != MetaShortcut && name != MetaTFLite {
			continue // min_runtime_version and others are informational
		}
		bi := fe.Buffer()
		if int64(bi) >= int64(len(d.buffers)) {
			return md, fmt.Errorf("model: metadata %d %q: buffer index %d is out of range (%d buffers)",
				i, name, bi, len(d.buffers))
		}
		if name == MetaTFLite {
			tfl = append(tfl, i)
			continue
		}
		haveShortcut = true
		var err error
		if md, err = decodeMetadata(d.buffers[bi]); err != nil {
			return md, fmt.Errorf("model: metadata %d %q: %v", i, name, err)
		}
	}
	for k, i := range tfl {
		d.fm.Metadata(&fe, i)
		t, err := readTFLiteMetadata(d.buffers[fe.Buffer()], d.data, outputs, k == 0, !haveShortcut)
		if err != nil {
			return md, fmt.Errorf("model: metadata %d %q: %v", i, MetaTFLite, err)
		}
		if k == 0 && !haveShortcut {
			md = t
		}
	}
	return md, nil
}
