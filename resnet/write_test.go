package resnet

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/shortcut-edge/shortcut/resnet/internal/tflfb"
)

// Tensor indices of testModel, for tests that modify it.
const (
	tmInput     = 0  // FLOAT32 [1 8 8 3]
	tmQuantized = 1  // INT8 [1 8 8 3]
	tmConvW     = 4  // INT8 [4 3 3 3], per-channel
	tmConvB     = 5  // INT32 [4]
	tmConvOut   = 6  // INT8 [1 8 8 4]
	tmDwOut     = 8  // INT8 [1 8 8 4]
	tmAddOut    = 9  // INT8 [1 8 8 4]
	tmLogits    = 22 // INT8 [1 3]
	tmOutput    = 24 // FLOAT32 [1 3]
)

// testData returns n bytes of a fixed, zero-mean pattern.
func testData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(int8((i*37)%255 - 127))
	}
	return b
}

func int32Data(vs ...int32) []byte {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	return b
}

func perTensor(scale float32, zp int64) *Quant {
	return &Quant{Scale: []float32{scale}, ZeroPoint: []int64{zp}}
}

// testModel builds a small int8 classifier that uses every operator and
// every option the runtime supports. It is valid: Validate accepts it, and
// it follows TFLite's operator rules and int8 specification (spec.go):
// bias scales are input × weight scales, PAD, the pools, SQUEEZE and
// RESHAPE keep their input's quantization, SOFTMAX outputs 1/256 and -128.
func testModel() *Model {
	act := func(name string, shape ...int) Tensor {
		return Tensor{Name: name, Type: Int8, Shape: shape, Quant: perTensor(0.05, -3)}
	}
	tensors := []Tensor{
		{Name: "input", Type: Float32, Shape: []int{1, 8, 8, 3}},
		{Name: "input_int8", Type: Int8, Shape: []int{1, 8, 8, 3},
			Quant: &Quant{Scale: []float32{0.05}, ZeroPoint: []int64{-3}, Min: []float32{-6.25}, Max: []float32{6.5}}},
		{Name: "pad/paddings", Type: Int32, Shape: []int{4, 2}, Data: int32Data(0, 0, 1, 1, 1, 1, 0, 0)},
		act("pad", 1, 10, 10, 3),
		{Name: "conv1/weights", Type: Int8, Shape: []int{4, 3, 3, 3}, Data: testData(4 * 27),
			Quant: &Quant{Scale: []float32{0.01, 0.02, 0.03, 0.04}, ZeroPoint: []int64{0, 0, 0, 0}}},
		{Name: "conv1/bias", Type: Int32, Shape: []int{4}, Data: int32Data(10, -10, 20, -20),
			Quant: &Quant{Scale: []float32{0.0005, 0.001, 0.0015, 0.002}, ZeroPoint: []int64{0, 0, 0, 0}}},
		act("conv1", 1, 8, 8, 4),
		{Name: "dw/weights", Type: Int8, Shape: []int{1, 3, 3, 4}, Data: testData(36),
			Quant: &Quant{Scale: []float32{0.1, 0.2, 0.3, 0.4}, ZeroPoint: []int64{0, 0, 0, 0}, Dim: 3}},
		act("dw", 1, 8, 8, 4),
		act("add", 1, 8, 8, 4),
		act("maxpool", 1, 4, 4, 4),
		{Name: "conv2/weights", Type: Int8, Shape: []int{4, 1, 1, 4}, Data: testData(16), Quant: perTensor(0.02, 0)},
		act("conv2", 1, 4, 4, 4),
		act("avgpool", 1, 2, 2, 4),
		{Name: "mean/axes", Type: Int32, Shape: []int{2}, Data: int32Data(1, 2)},
		act("mean", 1, 1, 1, 4),
		act("squeeze", 1, 4),
		{Name: "reshape/shape", Type: Int32, Shape: []int{2}, Data: int32Data(1, 4)},
		act("reshape", 1, 4),
		{Name: "fc/weights", Type: Int8, Shape: []int{3, 4}, Data: testData(12), Quant: perTensor(0.03, 0)},
		{Name: "fc/bias", Type: Int32, Shape: []int{3}, Data: int32Data(1, 2, 3), Quant: perTensor(0.0015, 0)},
		{Name: "unused_float_const", Type: Float32, Shape: []int{2}, Data: make([]byte, 8)},
		act("logits", 1, 3),
		{Name: "probabilities", Type: Int8, Shape: []int{1, 3}, Quant: perTensor(1.0/256, -128)},
		{Name: "output", Type: Float32, Shape: []int{1, 3}},
	}
	ops := []Operator{
		{Op: OpQuantize, Version: 1, Inputs: []int{0}, Outputs: []int{1}},
		{Op: OpPad, Version: 2, Inputs: []int{1, 2}, Outputs: []int{3}},
		{Op: OpConv2D, Version: 3, Inputs: []int{3, 4, 5}, Outputs: []int{6},
			Options: &Conv2DOptions{Padding: PaddingValid, StrideW: 1, StrideH: 1, Activation: ActRelu, DilationW: 1, DilationH: 1}},
		{Op: OpDepthwiseConv2D, Version: 3, Inputs: []int{6, 7, -1}, Outputs: []int{8},
			Options: &DepthwiseConv2DOptions{Padding: PaddingSame, StrideW: 1, StrideH: 1, DepthMultiplier: 1,
				Activation: ActRelu6, DilationW: 2, DilationH: 2}},
		{Op: OpAdd, Version: 2, Inputs: []int{6, 8}, Outputs: []int{9}, Options: &AddOptions{Activation: ActReluN1To1}},
		{Op: OpMaxPool2D, Version: 2, Inputs: []int{9}, Outputs: []int{10},
			Options: &Pool2DOptions{Padding: PaddingValid, StrideW: 2, StrideH: 2, FilterW: 2, FilterH: 2}},
		{Op: OpConv2D, Version: 3, Inputs: []int{10, 11}, Outputs: []int{12},
			Options: &Conv2DOptions{Padding: PaddingSame, StrideW: 1, StrideH: 1, DilationW: 1, DilationH: 1}},
		{Op: OpAveragePool2D, Version: 2, Inputs: []int{12}, Outputs: []int{13},
			Options: &Pool2DOptions{Padding: PaddingSame, StrideW: 2, StrideH: 3, FilterW: 3, FilterH: 2, Activation: ActRelu}},
		{Op: OpMean, Version: 2, Inputs: []int{13, 14}, Outputs: []int{15}, Options: &ReducerOptions{KeepDims: true}},
		{Op: OpSqueeze, Version: 1, Inputs: []int{15}, Outputs: []int{16}, Options: &SqueezeOptions{SqueezeDims: []int{1, 2}}},
		{Op: OpReshape, Version: 1, Inputs: []int{16, 17}, Outputs: []int{18}, Options: &ReshapeOptions{NewShape: []int{1, -1}}},
		{Op: OpFullyConnected, Version: 4, Inputs: []int{18, 19, 20}, Outputs: []int{22},
			Options: &FullyConnectedOptions{Activation: ActNone, KeepNumDims: true}},
		{Op: OpSoftmax, Version: 2, Inputs: []int{22}, Outputs: []int{23}, Options: &SoftmaxOptions{Beta: 1}},
		{Op: OpDequantize, Version: 2, Inputs: []int{23}, Outputs: []int{24}},
	}
	return &Model{
		Description: "Shortcut test model",
		Tensors:     tensors,
		Operators:   ops,
		Inputs:      []int{tmInput},
		Outputs:     []int{tmOutput},
		Meta: Metadata{
			Name: "test", Version: "0.1",
			Labels: []string{"cat", "dog", "düne \"quoted\""},
			Mean:   []float32{0.485, 0.456, 0.406}, Std: []float32{0.229, 0.224, 0.225},
			OutputNames: []string{"scores"},
		},
	}
}

func mustMarshal(t testing.TB, m *Model) []byte {
	t.Helper()
	data, err := m.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return data
}

// diffModels describes the first difference between two models, for
// failure messages (reflect.DeepEqual alone says only "differ").
func diffModels(a, b *Model) string {
	if a.Description != b.Description || !reflect.DeepEqual(a.Inputs, b.Inputs) ||
		!reflect.DeepEqual(a.Outputs, b.Outputs) {
		return "description, inputs or outputs differ"
	}
	if !reflect.DeepEqual(a.Meta, b.Meta) {
		return "metadata differs: " + strings.Join([]string{a.Meta.Name, b.Meta.Name}, " vs ")
	}
	if len(a.Tensors) != len(b.Tensors) || len(a.Operators) != len(b.Operators) {
		return "tensor or operator counts differ"
	}
	for i := range a.Tensors {
		if !reflect.DeepEqual(a.Tensors[i], b.Tensors[i]) {
			return "tensor " + a.Tensors[i].Name + " differs"
		}
	}
	for i := range a.Operators {
		if !reflect.DeepEqual(a.Operators[i], b.Operators[i]) {
			return "operator " + a.Operators[i].Op.String() + " differs"
		}
	}
	return ""
}

func TestMarshalThenLoadGivesTheSameModel(t *testing.T) {
	want := testModel()
	data := mustMarshal(t, want)
	got, err := Load(data)
	if err != nil {
		t.Fatalf("Load(Marshal(testModel())): %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip changed the model: %s", diffModels(got, want))
	}
}

func TestWriteFileThenLoadFileGivesTheSameModel(t *testing.T) {
	want := testModel()
	path := filepath.Join(t.TempDir(), "m.tflite")
	if err := want.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("file round trip changed the model: %s", diffModels(got, want))
	}
}

func TestLoadFileNamesMissingFile(t *testing.T) {
	_, err := LoadFile(filepath.Join(t.TempDir(), "absent.tflite"))
	if err == nil || !strings.Contains(err.Error(), "absent.tflite") {
		t.Fatalf("LoadFile of a missing file: err = %v, want one naming the file", err)
	}
}

func TestMarshalIsDeterministic(t *testing.T) {
	a, b := mustMarshal(t, testModel()), mustMarshal(t, testModel())
	if !bytes.Equal(a, b) {
		t.Fatal("two Marshal calls on equal models gave different bytes")
	}
}

func TestLoadDoesNotAliasItsInput(t *testing.T) {
	data := mustMarshal(t, testModel())
	m, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	before := append([]byte(nil), m.Tensors[tmConvW].Data...)
	for i := range data {
		data[i] = 0
	}
	if !bytes.Equal(m.Tensors[tmConvW].Data, before) {
		t.Fatal("clearing the input of Load changed the model's weights")
	}
}

// TestMarshalWritesTFLiteLayout checks the conventions other TFLite readers
// rely on, by reading the file with the generated accessors.
func TestMarshalWritesTFLiteLayout(t *testing.T) {
	m := testModel()
	data := mustMarshal(t, m)
	if string(data[4:8]) != "TFL3" {
		t.Fatalf("file identifier is %q, want TFL3", data[4:8])
	}
	fm := tflfb.GetRootAsModel(data, 0)
	if fm.Version() != 3 {
		t.Errorf("schema version %d, want 3", fm.Version())
	}
	var buf tflfb.Buffer
	fm.Buffers(&buf, 0)
	if buf.DataLength() != 0 {
		t.Errorf("buffer 0 has %d bytes, want the empty sentinel", buf.DataLength())
	}
	var sg tflfb.SubGraph
	fm.Subgraphs(&sg, 0)
	if string(sg.Name()) != "main" {
		t.Errorf("subgraph name %q, want main", sg.Name())
	}
	seen := map[uint32]int{}
	var ft tflfb.Tensor
	for i := range sg.TensorsLength() {
		sg.Tensors(&ft, i)
		b := ft.Buffer()
		if len(m.Tensors[i].Data) == 0 {
			if b != 0 {
				t.Errorf("activation tensor %d uses buffer %d, want 0", i, b)
			}
			continue
		}
		if b == 0 {
			t.Errorf("constant tensor %d uses buffer 0", i)
			continue
		}
		if j, dup := seen[b]; dup {
			t.Errorf("tensors %d and %d share buffer %d", j, i, b)
		}
		seen[b] = i
		fm.Buffers(&buf, int(b))
		tab := buf.Table()
		start := tab.Vector(flatbuffers.UOffsetT(tab.Offset(4)))
		if start%bufferAlign != 0 {
			t.Errorf("tensor %d: buffer %d data starts at byte %d, not %d-byte aligned", i, b, start, bufferAlign)
		}
		if !bytes.Equal(buf.DataBytes(), m.Tensors[i].Data) {
			t.Errorf("tensor %d: buffer %d holds different bytes", i, b)
		}
	}

	// One operator code per (code, version); both code fields written.
	type key struct {
		op      OpCode
		version int
	}
	want := map[key]bool{}
	for _, op := range m.Operators {
		want[key{op.Op, op.Version}] = true
	}
	if fm.OperatorCodesLength() != len(want) {
		t.Errorf("%d operator codes, want %d (one per code and version)", fm.OperatorCodesLength(), len(want))
	}
	var oc tflfb.OperatorCode
	for i := range fm.OperatorCodesLength() {
		fm.OperatorCodes(&oc, i)
		code := int32(oc.BuiltinCode())
		if dep := int32(oc.DeprecatedBuiltinCode()); dep != min(code, 127) {
			t.Errorf("operator code %d (%d): deprecated_builtin_code %d, want %d", i, code, dep, min(code, 127))
		}
	}

	names := map[string]bool{}
	var md tflfb.Metadata
	for i := range fm.MetadataLength() {
		fm.Metadata(&md, i)
		names[string(md.Name())] = true
		if string(md.Name()) == MetaMinRuntime {
			fm.Buffers(&buf, int(md.Buffer()))
			if v := string(bytes.TrimRight(buf.DataBytes(), "\x00")); v != minRuntimeVersion {
				t.Errorf("min_runtime_version is %q, want %q", v, minRuntimeVersion)
			}
		}
	}
	if !names[MetaShortcut] || !names[MetaMinRuntime] {
		t.Errorf("metadata entries %v, want %s and %s", names, MetaShortcut, MetaMinRuntime)
	}
	if string(fm.Description()) != m.Description {
		t.Errorf("description %q, want %q", fm.Description(), m.Description)
	}
}

func TestMarshalOmitsEmptyMetadata(t *testing.T) {
	m := testModel()
	m.Meta = Metadata{}
	got, err := Load(mustMarshal(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Meta, Metadata{}) {
		t.Fatalf("metadata after round trip = %+v, want empty", got.Meta)
	}
	fm := tflfb.GetRootAsModel(mustMarshal(t, m), 0)
	if fm.MetadataLength() != 1 {
		t.Fatalf("%d metadata entries, want only %s", fm.MetadataLength(), MetaMinRuntime)
	}
}

func TestMarshalRefusesInvalidModel(t *testing.T) {
	m := testModel()
	m.Tensors[tmConvW].Data = m.Tensors[tmConvW].Data[:100]
	_, err := m.Marshal()
	if err == nil || !strings.Contains(err.Error(), `tensor 4 "conv1/weights": data has 100 bytes, shape [4 3 3 3] INT8 needs 108`) {
		t.Fatalf("Marshal of a model with short weights: err = %v", err)
	}
}

func TestMarshalWritesDefaultsForZeroVersionAndDilation(t *testing.T) {
	m := testModel()
	m.Operators[2].Version = 0
	o := m.Operators[2].Options.(*Conv2DOptions)
	o.DilationW, o.DilationH = 0, 0
	got, err := Load(mustMarshal(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if v := got.Operators[2].Version; v != 1 {
		t.Errorf("version 0 read back as %d, want 1", v)
	}
	if g := got.Operators[2].Options.(*Conv2DOptions); g.DilationW != 1 || g.DilationH != 1 {
		t.Errorf("dilation 0 read back as %d,%d, want 1,1", g.DilationW, g.DilationH)
	}
}

// TestMarshalKeepsSpecialFloatBitsOfScales writes the smallest scale a file
// may carry (the smallest normal float32; denormal ones break the int8
// specification) and reads back the same bits.
func TestMarshalKeepsSpecialFloatBitsOfScales(t *testing.T) {
	m := testModel()
	m.Tensors[tmConvOut].Quant.Scale[0] = 0x1p-126
	got, err := Load(mustMarshal(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if s := got.Tensors[tmConvOut].Quant.Scale[0]; s != 0x1p-126 {
		t.Fatalf("scale read back as %g", s)
	}
}
