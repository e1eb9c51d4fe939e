package resnet

import (
	"fmt"
	"os"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/shortcut-edge/shortcut/resnet/internal/tflfb"
)

// schemaVersion is the TFLite schema version we read and write.
const schemaVersion = 3

// fileIdentifier is the FlatBuffers file identifier of .tflite files.
const fileIdentifier = "TFL3"

// bufferAlign is the alignment of buffer data in written files, so a runtime
// may use weights in place (TFLite's schema asks for 16).
const bufferAlign = 16

// Marshal validates m (Validate, then the rules of spec.go that Load
// applies to every file, so that we never write a file we would refuse to
// read) and encodes it as a .tflite file (schema version 3,
// identifier TFL3, one subgraph named "main"). Buffer 0 is the empty
// sentinel, each constant tensor gets its own 16-byte aligned buffer and
// activations point to buffer 0. Operator codes are shared by operators with
// the same code and version. Non-empty Meta is stored as JSON in the
// "shortcut.meta" metadata entry, next to "min_runtime_version"; labels
// and normalization are also written in the standard TFLite form for other
// tools: a "TFLITE_METADATA" entry and, for the labels, a ZIP archive
// appended after the flatbuffer (see tflmetadata.go).
func (m *Model) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := m.validateSpec(); err != nil {
		return nil, err
	}
	size := 1024
	for i := range m.Tensors {
		size += len(m.Tensors[i].Data) + bufferAlign + 128
	}
	w := writer{b: flatbuffers.NewBuilder(size)}
	return w.model(m)
}

// WriteFile marshals m and writes it to path (mode 0644).
func (m *Model) WriteFile(path string) error {
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("model: write %s: %w", path, err)
	}
	return nil
}

type writer struct {
	b *flatbuffers.Builder
}

// bytes writes data as a [ubyte] vector whose contents start on a
// bufferAlign boundary of the finished file.
func (w *writer) bytes(data []byte) flatbuffers.UOffsetT {
	w.b.Prep(bufferAlign, len(data))
	return w.b.CreateByteVector(data)
}

func (w *writer) int32s(vs []int) flatbuffers.UOffsetT {
	w.b.StartVector(4, len(vs), 4)
	for i := len(vs) - 1; i >= 0; i-- {
		w.b.PrependInt32(int32(vs[i]))
	}
	return w.b.EndVector(len(vs))
}

func (w *writer) float32s(vs []float32) flatbuffers.UOffsetT {
	w.b.StartVector(4, len(vs), 4)
	for i := len(vs) - 1; i >= 0; i-- {
		w.b.PrependFloat32(vs[i])
	}
	return w.b.EndVector(len(vs))
}

func (w *writer) int64s(vs []int64) flatbuffers.UOffsetT {
	w.b.StartVector(8, len(vs), 8)
	for i := len(vs) - 1; i >= 0; i-- {
		w.b.PrependInt64(vs[i])
	}
	return w.b.EndVector(len(vs))
}

func (w *writer) offsets(vs []flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	w.b.StartVector(4, len(vs), 4)
	for i := len(vs) - 1; i >= 0; i-- {
		w.b.PrependUOffsetT(vs[i])
	}
	return w.b.EndVector(len(vs))
}

func (w *writer) model(m *Model) ([]byte, error) {
	b := w.b

	// Buffers: the sentinel, one per constant tensor, then metadata.
	// Their data is created first so it lands at the end of the file.
	bufData := [][]byte{nil}
	tensorBuffer := make([]uint32, len(m.Tensors))
	for i := range m.Tensors {
		if len(m.Tensors[i].Data) > 0 {
			tensorBuffer[i] = uint32(len(bufData))
			bufData = append(bufData, m.Tensors[i].Data)
		}
	}
	type metaEntry struct {
		name   string
		buffer uint32
	}
	var metas []metaEntry
	if !m.Meta.isZero() {
		js, err := encodeMetadata(&m.Meta)
		if err != nil {
			return nil, fmt.Errorf("model: encode metadata: %w", err)
		}
		metas = append(metas, metaEntry{MetaShortcut, uint32(len(bufData))})
		bufData = append(bufData, js)
	}
	tflMeta, tflFiles := tfliteMetadata(m)
	if tflMeta != nil {
		metas = append(metas, metaEntry{MetaTFLite, uint32(len(bufData))})
		bufData = append(bufData, tflMeta)
	}
	metas = append(metas, metaEntry{MetaMinRuntime, uint32(len(bufData))})
	bufData = append(bufData, minRuntimeBuffer())

	dataVecs := make([]flatbuffers.UOffsetT, len(bufData))
	for i := len(bufData) - 1; i >= 1; i-- {
		dataVecs[i] = w.bytes(bufData[i])
	}
	buffers := make([]flatbuffers.UOffsetT, len(bufData))
	for i := range bufData {
		tflfb.BufferStart(b)
		if i > 0 {
			tflfb.BufferAddData(b, dataVecs[i])
		}
		buffers[i] = tflfb.BufferEnd(b)
	}
	buffersVec := w.offsets(buffers)

	tensors := make([]flatbuffers.UOffsetT, len(m.Tensors))
	for i := range m.Tensors {
		tensors[i] = w.tensor(&m.Tensors[i], tensorBuffer[i])
	}
	tensorsVec := w.offsets(tensors)

	// Operator codes, shared by (code, version).
	type codeKey struct {
		op      OpCode
		version int
	}
	codeIndex := map[codeKey]uint32{}
	var codes []codeKey
	ops := make([]flatbuffers.UOffsetT, len(m.Operators))
	for i := range m.Operators {
		op := &m.Operators[i]
		key := codeKey{op.Op, max(op.Version, 1)}
		idx, ok := codeIndex[key]
		if !ok {
			idx = uint32(len(codes))
			codeIndex[key] = idx
			codes = append(codes, key)
		}
		ops[i] = w.operator(op, idx)
	}
	opsVec := w.offsets(ops)
	codeOffs := make([]flatbuffers.UOffsetT, len(codes))
	for i, c := range codes {
		tflfb.OperatorCodeStart(b)
		tflfb.OperatorCodeAddDeprecatedBuiltinCode(b, int8(min(c.op, OpCode(tflfb.BuiltinOperatorPLACEHOLDER_FOR_GREATER_OP_CODES))))
		tflfb.OperatorCodeAddVersion(b, int32(c.version))
		tflfb.OperatorCodeAddBuiltinCode(b, tflfb.BuiltinOperator(c.op))
		codeOffs[i] = tflfb.OperatorCodeEnd(b)
	}
	codesVec := w.offsets(codeOffs)

	inputs := w.int32s(m.Inputs)
	outputs := w.int32s(m.Outputs)
	name := b.CreateString("main")
	tflfb.SubGraphStart(b)
	tflfb.SubGraphAddTensors(b, tensorsVec)
	tflfb.SubGraphAddInputs(b, inputs)
	tflfb.SubGraphAddOutputs(b, outputs)
	tflfb.SubGraphAddOperators(b, opsVec)
	tflfb.SubGraphAddName(b, name)
	subgraph := tflfb.SubGraphEnd(b)
	subgraphs := w.offsets([]flatbuffers.UOffsetT{subgraph})

	metaOffs := make([]flatbuffers.UOffsetT, len(metas))
	for i, e := range metas {
		n := b.CreateString(e.name)
		tflfb.MetadataStart(b)
		tflfb.MetadataAddName(b, n)
		tflfb.MetadataAddBuffer(b, e.buffer)
		metaOffs[i] = tflfb.MetadataEnd(b)
	}
	metaVec := w.offsets(metaOffs)

	var desc flatbuffers.UOffsetT
	if m.Description != "" {
		desc = b.CreateString(m.Description)
	}
	tflfb.ModelStart(b)
	tflfb.ModelAddVersion(b, schemaVersion)
	tflfb.ModelAddOperatorCodes(b, codesVec)
	tflfb.ModelAddSubgraphs(b, subgraphs)
	if desc != 0 {
		tflfb.ModelAddDescription(b, desc)
	}
	tflfb.ModelAddBuffers(b, buffersVec)
	tflfb.ModelAddMetadata(b, metaVec)
	root := tflfb.ModelEnd(b)
	b.FinishWithFileIdentifier(root, []byte(fileIdentifier))
	if len(tflFiles) > 0 {
		out, err := appendAssociatedFiles(b.FinishedBytes(), tflFiles)
		if err != nil {
			return nil, fmt.Errorf("model: append associated files: %w", err)
		}
		return out, nil
	}
	return b.FinishedBytes(), nil
}

func (w *writer) tensor(t *Tensor, buffer uint32) flatbuffers.UOffsetT {
	b := w.b
	shape := w.int32s(t.Shape)
	name := b.CreateString(t.Name)
	var quant flatbuffers.UOffsetT
	if q := t.Quant; q != nil {
		var minV, maxV, scale, zp flatbuffers.UOffsetT
		if len(q.Min) > 0 {
			minV = w.float32s(q.Min)
			maxV = w.float32s(q.Max)
		}
		if len(q.Scale) > 0 {
			scale = w.float32s(q.Scale)
			zp = w.int64s(q.ZeroPoint)
		}
		tflfb.QuantizationParametersStart(b)
		if minV != 0 {
			tflfb.QuantizationParametersAddMin(b, minV)
			tflfb.QuantizationParametersAddMax(b, maxV)
		}
		if scale != 0 {
			tflfb.QuantizationParametersAddScale(b, scale)
			tflfb.QuantizationParametersAddZeroPoint(b, zp)
		}
		tflfb.QuantizationParametersAddQuantizedDimension(b, int32(q.Dim))
		quant = tflfb.QuantizationParametersEnd(b)
	}
	tflfb.TensorStart(b)
	tflfb.TensorAddShape(b, shape)
	tflfb.TensorAddType(b, tflfb.TensorType(t.Type))
	tflfb.TensorAddBuffer(b, buffer)
	tflfb.TensorAddName(b, name)
	if quant != 0 {
		tflfb.TensorAddQuantization(b, quant)
	}
	return tflfb.TensorEnd(b)
}

func (w *writer) operator(op *Operator, opcode uint32) flatbuffers.UOffsetT {
	b := w.b
	inputs := w.int32s(op.Inputs)
	outputs := w.int32s(op.Outputs)
	optType, opts := w.options(op)
	tflfb.OperatorStart(b)
	tflfb.OperatorAddOpcodeIndex(b, opcode)
	tflfb.OperatorAddInputs(b, inputs)
	tflfb.OperatorAddOutputs(b, outputs)
	if optType != tflfb.BuiltinOptionsNONE {
		tflfb.OperatorAddBuiltinOptionsType(b, optType)
		tflfb.OperatorAddBuiltinOptions(b, opts)
	}
	return tflfb.OperatorEnd(b)
}

// dilationFactor maps our "0 means 1" dilation to the file's value.
func dilationFactor(d int) int32 { return int32(max(d, 1)) }

// options writes op's builtin options table. Operators without options in
// our model (PAD, QUANTIZE, DEQUANTIZE) get their empty table, as TFLite's
// converter writes them.
func (w *writer) options(op *Operator) (tflfb.BuiltinOptions, flatbuffers.UOffsetT) {
	b := w.b
	switch o := op.Options.(type) {
	case *Conv2DOptions:
		tflfb.Conv2DOptionsStart(b)
		tflfb.Conv2DOptionsAddPadding(b, tflfb.Padding(o.Padding))
		tflfb.Conv2DOptionsAddStrideW(b, int32(o.StrideW))
		tflfb.Conv2DOptionsAddStrideH(b, int32(o.StrideH))
		tflfb.Conv2DOptionsAddFusedActivationFunction(b, tflfb.ActivationFunctionType(o.Activation))
		tflfb.Conv2DOptionsAddDilationWFactor(b, dilationFactor(o.DilationW))
		tflfb.Conv2DOptionsAddDilationHFactor(b, dilationFactor(o.DilationH))
		return tflfb.BuiltinOptionsConv2DOptions, tflfb.Conv2DOptionsEnd(b)
	case *DepthwiseConv2DOptions:
		tflfb.DepthwiseConv2DOptionsStart(b)
		tflfb.DepthwiseConv2DOptionsAddPadding(b, tflfb.Padding(o.Padding))
		tflfb.DepthwiseConv2DOptionsAddStrideW(b, int32(o.StrideW))
		tflfb.DepthwiseConv2DOptionsAddStrideH(b, int32(o.StrideH))
		tflfb.DepthwiseConv2DOptionsAddDepthMultiplier(b, int32(o.DepthMultiplier))
		tflfb.DepthwiseConv2DOptionsAddFusedActivationFunction(b, tflfb.ActivationFunctionType(o.Activation))
		tflfb.DepthwiseConv2DOptionsAddDilationWFactor(b, dilationFactor(o.DilationW))
		tflfb.DepthwiseConv2DOptionsAddDilationHFactor(b, dilationFactor(o.DilationH))
		return tflfb.BuiltinOptionsDepthwiseConv2DOptions, tflfb.DepthwiseConv2DOptionsEnd(b)
	case *Pool2DOptions:
		tflfb.Pool2DOptionsStart(b)
		tflfb.Pool2DOptionsAddPadding(b, tflfb.Padding(o.Padding))
		tflfb.Pool2DOptionsAddStrideW(b, int32(o.StrideW))
		tflfb.Pool2DOptionsAddStrideH(b, int32(o.StrideH))
		tflfb.Pool2DOptionsAddFilterWidth(b, int32(o.FilterW))
		tflfb.Pool2DOptionsAddFilterHeight(b, int32(o.FilterH))
		tflfb.Pool2DOptionsAddFusedActivationFunction(b, tflfb.ActivationFunctionType(o.Activation))
		return tflfb.BuiltinOptionsPool2DOptions, tflfb.Pool2DOptionsEnd(b)
	case *FullyConnectedOptions:
		tflfb.FullyConnectedOptionsStart(b)
		tflfb.FullyConnectedOptionsAddFusedActivationFunction(b, tflfb.ActivationFunctionType(o.Activation))
		tflfb.FullyConnectedOptionsAddKeepNumDims(b, o.KeepNumDims)
		return tflfb.BuiltinOptionsFullyConnectedOptions, tflfb.FullyConnectedOptionsEnd(b)
	case *AddOptions:
		tflfb.AddOptionsStart(b)
		tflfb.AddOptionsAddFusedActivationFunction(b, tflfb.ActivationFunctionType(o.Activation))
		return tflfb.BuiltinOptionsAddOptions, tflfb.AddOptionsEnd(b)
	case *SoftmaxOptions:
		tflfb.SoftmaxOptionsStart(b)
		tflfb.SoftmaxOptionsAddBeta(b, o.Beta)
		return tflfb.BuiltinOptionsSoftmaxOptions, tflfb.SoftmaxOptionsEnd(b)
	case *ReshapeOptions:
		var shape flatbuffers.UOffsetT
		if len(o.NewShape) > 0 {
			shape = w.int32s(o.NewShape)
		}
		tflfb.ReshapeOptionsStart(b)
		if shape != 0 {
			tflfb.ReshapeOptionsAddNewShape(b, shape)
		}
		return tflfb.BuiltinOptionsReshapeOptions, tflfb.ReshapeOptionsEnd(b)
	case *SqueezeOptions:
		var dims flatbuffers.UOffsetT
		if len(o.SqueezeDims) > 0 {
			dims = w.int32s(o.SqueezeDims)
		}
		tflfb.SqueezeOptionsStart(b)
		if dims != 0 {
			tflfb.SqueezeOptionsAddSqueezeDims(b, dims)
		}
		return tflfb.BuiltinOptionsSqueezeOptions, tflfb.SqueezeOptionsEnd(b)
	case *ReducerOptions:
		tflfb.ReducerOptionsStart(b)
		tflfb.ReducerOptionsAddKeepDims(b, o.KeepDims)
		return tflfb.BuiltinOptionsReducerOptions, tflfb.ReducerOptionsEnd(b)
	}
	switch op.Op {
	case OpPad:
		tflfb.PadOptionsStart(b)
		return tflfb.BuiltinOptionsPadOptions, tflfb.PadOptionsEnd(b)
	case OpQuantize:
		tflfb.QuantizeOptionsStart(b)
		return tflfb.BuiltinOptionsQuantizeOptions, tflfb.QuantizeOptionsEnd(b)
	case OpDequantize:
		tflfb.DequantizeOptionsStart(b)
		return tflfb.BuiltinOptionsDequantizeOptions, tflfb.DequantizeOptionsEnd(b)
	}
	return tflfb.BuiltinOptionsNONE, 0
}
