package resnet

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/shortcut-edge/shortcut/resnet/internal/tflfb"
)

var update = flag.Bool("update", false, "rewrite testdata/broken from the generators in load_test.go")

// repack returns testModel's file after change has edited its object-API
// form (which can express files that Marshal refuses to write).
func repack(t testing.TB, change func(*tflfb.ModelT)) []byte {
	t.Helper()
	mt := tflfb.GetRootAsModel(mustMarshal(t, testModel()), 0).UnPack()
	change(mt)
	return packModel(mt, true)
}

func packModel(mt *tflfb.ModelT, identifier bool) []byte {
	b := flatbuffers.NewBuilder(4096)
	root := mt.Pack(b)
	if identifier {
		b.FinishWithFileIdentifier(root, []byte(fileIdentifier))
	} else {
		b.Finish(root)
	}
	return b.FinishedBytes()
}

// edit returns a copy of testModel's file with change applied to the bytes.
func edit(t testing.TB, change func(data []byte)) []byte {
	t.Helper()
	data := mustMarshal(t, testModel())
	change(data)
	return data
}

// opcodeOf returns the operator code table used by operator op.
func opcodeOf(mt *tflfb.ModelT, op int) *tflfb.OperatorCodeT {
	return mt.OperatorCodes[mt.Subgraphs[0].Operators[op].OpcodeIndex]
}

// fieldPos returns the byte position of field slot (4, 6, 8, ...) of tab.
func fieldPos(tab flatbuffers.Table, slot flatbuffers.VOffsetT) uint32 {
	return uint32(tab.Pos) + uint32(tab.Offset(slot))
}

// vectorLenPos returns where the length of the vector in field slot of tab
// is stored.
func vectorLenPos(data []byte, tab flatbuffers.Table, slot flatbuffers.VOffsetT) uint32 {
	p := fieldPos(tab, slot)
	return p + binary.LittleEndian.Uint32(data[p:])
}

func tensorTable(data []byte, i int) flatbuffers.Table {
	var sg tflfb.SubGraph
	tflfb.GetRootAsModel(data, 0).Subgraphs(&sg, 0)
	var ft tflfb.Tensor
	sg.Tensors(&ft, i)
	return ft.Table()
}

func subgraphTable(data []byte) flatbuffers.Table {
	var sg tflfb.SubGraph
	tflfb.GetRootAsModel(data, 0).Subgraphs(&sg, 0)
	return sg.Table()
}

func put32(data []byte, pos uint32, v uint32) { binary.LittleEndian.PutUint32(data[pos:], v) }

// sharedTablesFile is a small file whose tensors vector points n times at
// the same tensor table with a long shape: decoding it naively would
// allocate n times the shape.
func sharedTablesFile(n int) []byte {
	b := flatbuffers.NewBuilder(1024)
	shape := make([]int32, 1000)
	for i := range shape {
		shape[i] = 1
	}
	tflfb.TensorStartShapeVector(b, len(shape))
	for i := len(shape) - 1; i >= 0; i-- {
		b.PrependInt32(shape[i])
	}
	shapeVec := b.EndVector(len(shape))
	tflfb.TensorStart(b)
	tflfb.TensorAddShape(b, shapeVec)
	tensor := tflfb.TensorEnd(b)
	tflfb.SubGraphStartTensorsVector(b, n)
	for range n {
		b.PrependUOffsetT(tensor)
	}
	tensors := b.EndVector(n)
	tflfb.SubGraphStart(b)
	tflfb.SubGraphAddTensors(b, tensors)
	sg := tflfb.SubGraphEnd(b)
	tflfb.ModelStartSubgraphsVector(b, 1)
	b.PrependUOffsetT(sg)
	sgs := b.EndVector(1)
	tflfb.ModelStart(b)
	tflfb.ModelAddVersion(b, 3)
	tflfb.ModelAddSubgraphs(b, sgs)
	b.FinishWithFileIdentifier(tflfb.ModelEnd(b), []byte(fileIdentifier))
	return b.FinishedBytes()
}

// brokenCase is one file of testdata/broken: how to make it and what the
// error must say.
type brokenCase struct {
	name string // file name without .tflite
	make func(t testing.TB) []byte
	want string
}

var brokenCases = []brokenCase{
	// Header and structure.
	{"empty", func(t testing.TB) []byte { return nil }, "file is 0 bytes, too short"},
	{"truncated-4", func(t testing.TB) []byte { return mustMarshal(t, testModel())[:4] }, "too short"},
	{"truncated-64", func(t testing.TB) []byte { return mustMarshal(t, testModel())[:64] }, "malformed file (64 bytes)"},
	{"truncated-half", func(t testing.TB) []byte {
		d := mustMarshal(t, testModel())
		return d[:len(d)/2]
	}, "malformed file"},
	{"truncated-last-byte", func(t testing.TB) []byte {
		d := mustMarshal(t, testModel())
		return d[:len(d)-1]
	}, "malformed file"},
	{"wrong-identifier", func(t testing.TB) []byte {
		return edit(t, func(d []byte) { copy(d[4:], "TFL2") })
	}, `file identifier is "TFL2", want "TFL3"`},
	{"no-identifier", func(t testing.TB) []byte {
		return packModel(tflfb.GetRootAsModel(mustMarshal(t, testModel()), 0).UnPack(), false)
	}, `want "TFL3": not a TFLite model, or one written without a file identifier`},
	{"root-offset-past-end", func(t testing.TB) []byte {
		return edit(t, func(d []byte) { put32(d, 0, uint32(len(d))+100) })
	}, "root offset"},
	{"vtable-outside-file", func(t testing.TB) []byte {
		return edit(t, func(d []byte) { put32(d, binary.LittleEndian.Uint32(d), 0x7ffffff0) })
	}, "Model table at byte"},
	{"shape-length-2^31", func(t testing.TB) []byte {
		return edit(t, func(d []byte) { put32(d, vectorLenPos(d, tensorTable(d, 3), 4), 1<<31) })
	}, "model.subgraphs[0].tensors[3].shape: vector at byte"},
	{"tensors-length-huge", func(t testing.TB) []byte {
		return edit(t, func(d []byte) { put32(d, vectorLenPos(d, subgraphTable(d), 4), 0x7fffffff) })
	}, "model.subgraphs[0].tensors: vector at byte"},
	{"name-offset-past-end", func(t testing.TB) []byte {
		return edit(t, func(d []byte) { put32(d, fieldPos(tensorTable(d, 2), 10), 0xfffffff0) })
	}, "model.subgraphs[0].tensors[2].name: offset at byte"},
	{"shared-tables", func(t testing.TB) []byte { return sharedTablesFile(2000) },
		"file refers to more data than it holds"},
	{"schema-version-2", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Version = 2 })
	}, "schema version 2, want 3"},
	{"two-subgraphs", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs = append(m.Subgraphs, m.Subgraphs[0]) })
	}, "file has 2 subgraphs; only single-subgraph models are supported"},
	{"no-subgraphs", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs = nil })
	}, "file has 0 subgraphs"},

	// Tensors and buffers.
	{"negative-dimension", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Tensors[tmConvOut].Shape[1] = -8 })
	}, `tensor 6 "conv1": shape [1 -8 8 4] dimension 1 is negative`},
	{"enormous-dimensions", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) {
			m.Subgraphs[0].Tensors[tmConvOut].Shape = []int32{1 << 30, 1 << 30, 1 << 30, 1 << 30}
		})
	}, `tensor 6 "conv1": shape [1073741824 1073741824 1073741824 1073741824] has more than 2147483647 elements`},
	{"buffer-size-mismatch", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) {
			b := m.Buffers[m.Subgraphs[0].Tensors[tmConvW].Buffer]
			b.Data = b.Data[:100]
		})
	}, `tensor 4 "conv1/weights": data has 100 bytes, shape [4 3 3 3] INT8 needs 108`},
	{"buffer-index-out-of-range", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Tensors[tmConvW].Buffer = 999 })
	}, `tensor 4 "conv1/weights": buffer index 999 is out of range`},
	{"external-buffer", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Buffers[1].Offset, m.Buffers[1].Size = 1<<20, 100 })
	}, "buffer 1 keeps its data outside the flatbuffer"},
	{"unknown-tensor-type", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Tensors[tmConvOut].Type = 77 })
	}, `tensor 6 "conv1": element type TensorType(77) is not supported`},
	{"variable-tensor", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Tensors[tmConvOut].IsVariable = true })
	}, `tensor 6 "conv1": variable tensors are not supported`},
	{"sparse-tensor", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) {
			m.Subgraphs[0].Tensors[tmConvW].Sparsity = &tflfb.SparsityParametersT{}
		})
	}, `tensor 4 "conv1/weights": sparse tensors are not supported`},
	{"int8-without-quantization", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Tensors[tmConvOut].Quantization = nil })
	}, `tensor 6 "conv1": INT8 tensor has no quantization parameters`},
	{"int8-with-empty-quantization", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) {
			m.Subgraphs[0].Tensors[tmConvOut].Quantization = &tflfb.QuantizationParametersT{}
		})
	}, `tensor 6 "conv1": INT8 tensor has no quantization parameters`},
	{"scale-zero-point-count-mismatch", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) {
			m.Subgraphs[0].Tensors[tmConvW].Quantization.ZeroPoint = []int64{0, 0}
		})
	}, `tensor 4 "conv1/weights": quantization: 4 scales but 2 zero points`},
	{"quantized-dimension-out-of-range", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) {
			m.Subgraphs[0].Tensors[tmConvW].Quantization.QuantizedDimension = 9
		})
	}, `tensor 4 "conv1/weights": quantization: quantized dimension 9 is out of range`},
	{"negative-scale", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Tensors[tmConvW].Quantization.Scale[1] = -0.5 })
	}, `tensor 4 "conv1/weights": quantization: scale[1] is -0.5`},
	{"custom-quantization", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) {
			m.Subgraphs[0].Tensors[tmConvW].Quantization.Details = &tflfb.QuantizationDetailsT{
				Type:  tflfb.QuantizationDetailsCustomQuantization,
				Value: &tflfb.CustomQuantizationT{Custom: []byte{1, 2, 3}},
			}
		})
	}, `tensor 4 "conv1/weights": custom (non-affine) quantization is not supported`},

	// Operators.
	{"opcode-index-out-of-range", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Operators[2].OpcodeIndex = 99 })
	}, "operator 2: opcode index 99 is out of range"},
	{"unsupported-op", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) {
			c := opcodeOf(m, 4)
			c.DeprecatedBuiltinCode, c.BuiltinCode = 14, 14
		})
	}, "operator 4: LOGISTIC is not supported by this runtime"},
	{"unsupported-op-above-127", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) {
			c := opcodeOf(m, 4)
			c.DeprecatedBuiltinCode, c.BuiltinCode = 127, 150
		})
	}, "operator 4: BuiltinOperator(150) is not supported by this runtime"},
	{"custom-op", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) {
			c := opcodeOf(m, 4)
			c.DeprecatedBuiltinCode, c.BuiltinCode, c.CustomCode = 32, 32, "MyFancyOp"
		})
	}, `operator 4: custom operator "MyFancyOp" is not supported`},
	{"options-of-wrong-type", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) {
			m.Subgraphs[0].Operators[2].BuiltinOptions = &tflfb.BuiltinOptionsT{
				Type: tflfb.BuiltinOptionsPool2DOptions, Value: &tflfb.Pool2DOptionsT{}}
		})
	}, "operator 2 (CONV_2D): builtin options are Pool2DOptions, want Conv2DOptions"},
	{"conv-without-options", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Operators[2].BuiltinOptions = nil })
	}, "operator 2 (CONV_2D): strides (w, h) [0 0] must be >= 1"},
	{"shuffled-fc-weights", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) {
			m.Subgraphs[0].Operators[11].BuiltinOptions.Value.(*tflfb.FullyConnectedOptionsT).WeightsFormat =
				tflfb.FullyConnectedOptionsWeightsFormatSHUFFLED4x16INT8
		})
	}, "operator 11 (FULLY_CONNECTED): weights format SHUFFLED4x16INT8 is not supported"},
	{"operator-input-out-of-range", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Operators[2].Inputs[1] = 99 })
	}, "operator 2 (CONV_2D): input 1 is tensor index 99, out of range [0, 25)"},
	{"operator-output-negative", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Operators[4].Outputs[0] = -7 })
	}, "operator 4 (ADD): output 0 is tensor index -7, out of range"},
	{"graph-input-out-of-range", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Inputs[0] = 1000 })
	}, "graph input 0 is tensor index 1000, out of range [0, 25)"},
	{"graph-output-out-of-range", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Outputs[0] = 25 })
	}, "graph output 0 is tensor index 25, out of range [0, 25)"},
	{"cycle", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Operators[2].Inputs[0] = tmAddOut })
	}, `operator 2 (CONV_2D): input 0, tensor 9 "add", is written later by operator 4 (ADD)`},
	{"self-loop", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Operators[4].Inputs[0] = tmAddOut })
	}, `operator 4 (ADD): input 0, tensor 9 "add", is its own output (cycle)`},
	{"tensor-written-twice", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Operators[3].Outputs[0] = tmConvOut })
	}, `output tensor 6 "conv1" is already written by operator 2 (CONV_2D)`},

	// TFLite's operator rules and the int8 specification (spec.go): files
	// our kernels could run but a real TFLite refuses or reads otherwise.
	{"conv-dilation-zero", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { convOptions(m, 2).DilationWFactor = 0 })
	}, "operator 2 (CONV_2D): dilation factors (w, h) [0 1]: TFLite's convolutions need factors >= 1"},
	{"depthwise-dilation-zero", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) {
			m.Subgraphs[0].Operators[3].BuiltinOptions.Value.(*tflfb.DepthwiseConv2DOptionsT).DilationHFactor = 0
		})
	}, "operator 3 (DEPTHWISE_CONV_2D): dilation factors (w, h) [2 0]: TFLite's convolutions need factors >= 1"},
	{"depthwise-stride-above-65535", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) {
			m.Subgraphs[0].Operators[3].BuiltinOptions.Value.(*tflfb.DepthwiseConv2DOptionsT).StrideW = 70000
		})
	}, "operator 3 (DEPTHWISE_CONV_2D): strides (w, h) [70000 1]: TFLite's DEPTHWISE_CONV_2D accepts strides up to 65535"},
	{"weights-denormal-scale", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Tensors[tmConvW].Quantization.Scale[1] = 1e-40 })
	}, `operator 2 (CONV_2D): filter tensor 4 "conv1/weights": scale[1] is 1e-40, a denormal float32: ` +
		`the int8 specification needs normal scales`},
	{"activation-denormal-scale", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Tensors[tmConvOut].Quantization.Scale[0] = 1e-39 })
	}, `operator 2 (CONV_2D): output tensor 6 "conv1": scale[0] is 1e-39, a denormal float32`},
	{"activation-per-channel", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) {
			m.Subgraphs[0].Tensors[3].Quantization = &tflfb.QuantizationParametersT{
				Scale: []float32{0.05, 0.05, 0.05}, ZeroPoint: []int64{-3, -3, -3}, QuantizedDimension: 3}
		})
	}, `operator 1 (PAD): output tensor 3 "pad": 3 scales along dimension 3: the int8 specification quantizes activations per tensor`},
	{"conv-weights-zero-point", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Tensors[tmConvW].Quantization.ZeroPoint[2] = 1 })
	}, `operator 2 (CONV_2D): filter tensor 4 "conv1/weights": zero point[2] is 1: ` +
		`the int8 specification makes weights symmetric (zero point 0)`},
	{"fc-weights-zero-point", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Tensors[19].Quantization.ZeroPoint[0] = 3 })
	}, `operator 11 (FULLY_CONNECTED): weights tensor 19 "fc/weights": zero point[0] is 3: ` +
		`the int8 specification makes weights symmetric (zero point 0)`},
	{"weights-per-channel-along-input-channels", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) {
			m.Subgraphs[0].Tensors[11].Quantization = &tflfb.QuantizationParametersT{
				Scale: []float32{0.02, 0.02, 0.03, 0.03}, ZeroPoint: []int64{0, 0, 0, 0}, QuantizedDimension: 3}
		})
	}, `operator 6 (CONV_2D): filter tensor 11 "conv2/weights": per-channel scales along dimension 3: ` +
		`CONV_2D weights are quantized along dimension 0 (their output channels)`},
	{"bias-without-quantization", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Tensors[tmConvB].Quantization = nil })
	}, `operator 2 (CONV_2D): bias tensor 5 "conv1/bias": no quantization parameters, ` +
		`but the int8 specification gives a bias the scale input scale × weight scale and zero point 0`},
	{"bias-of-type-float32", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Tensors[tmConvB].Type = tflfb.TensorTypeFLOAT32 })
	}, `operator 2 (CONV_2D): bias tensor 5 "conv1/bias": type FLOAT32, but an int8 CONV_2D takes an INT32 bias`},
	{"bias-zero-point", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Tensors[tmConvB].Quantization.ZeroPoint[3] = 7 })
	}, `operator 2 (CONV_2D): bias tensor 5 "conv1/bias": zero point[3] is 7: the int8 specification gives a bias zero point 0`},
	{"bias-scale-not-input-times-weight", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Tensors[tmConvB].Quantization.Scale[1] = 0.0021 })
	}, `operator 2 (CONV_2D): bias tensor 5 "conv1/bias": scale[1] is 0.0021, but the int8 specification requires ` +
		`input scale × filter scale[1] = 0.05 × 0.02 = 0.001 (relative tolerance 0.0001; input tensor 3 "pad", filter tensor 4 "conv1/weights")`},
	{"fc-bias-scale-not-input-times-weight", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Tensors[20].Quantization.Scale[0] = 0.0016 })
	}, `operator 11 (FULLY_CONNECTED): bias tensor 20 "fc/bias": scale[0] is 0.0016, but the int8 specification requires ` +
		`input scale × weights scale[0]`},
	{"bias-one-scale-for-per-channel-weights", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) {
			m.Subgraphs[0].Tensors[tmConvB].Quantization = &tflfb.QuantizationParametersT{
				Scale: []float32{0.0005}, ZeroPoint: []int64{0}}
		})
	}, `operator 2 (CONV_2D): bias tensor 5 "conv1/bias": scale[0] is 0.0005, but the int8 specification requires ` +
		`input scale × filter scale[1]`},
	{"bias-per-channel-along-dimension-of-1", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Tensors[tmConvB].Shape = []int32{1, 4} })
	}, `tensor 5 "conv1/bias": quantization: 4 scales, but quantized dimension 0 of shape [1 4] has 1 entry: ` +
		`per-channel quantization takes one scale per entry of that dimension, per-tensor quantization one scale ` +
		`(dimension 1 has 4 entries: quantized_dimension 1 would fit)`},
	{"softmax-output-scale", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Tensors[23].Quantization.Scale[0] = 0.01 })
	}, `operator 12 (SOFTMAX): output tensor 23 "probabilities": scale 0.01 and zero point -128: ` +
		`int8 SOFTMAX outputs have scale 1/256 and zero point -128`},
	{"maxpool-changes-quantization", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Subgraphs[0].Tensors[10].Quantization.Scale[0] = 0.06 })
	}, `operator 5 (MAX_POOL_2D): output tensor 10 "maxpool": scale 0.06 and zero point -3 differ from input tensor 9 "add" ` +
		`(scale 0.05, zero point -3): the int8 specification has MAX_POOL_2D keep its input's quantization`},

	// Metadata.
	{"metadata-bad-json", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) {
			for _, e := range m.Metadata {
				if e.Name == MetaShortcut {
					m.Buffers[e.Buffer].Data = []byte(`{"labels": [1, 2`)
				}
			}
		})
	}, `metadata 0 "shortcut.meta": invalid JSON`},
	{"metadata-image-size-larger-than-input", func(t testing.TB) []byte {
		return withShortcutMeta(t, `{"image_size": [9, 8]}`)
	}, `metadata: image_size [9, 8] does not fit the 8x8 input tensor 0 "input"`},
	{"metadata-image-size-one-value", func(t testing.TB) []byte {
		return withShortcutMeta(t, `{"image_size": [8]}`)
	}, `metadata 0 "shortcut.meta": image_size has 1 values, want [height, width]`},
	{"metadata-image-size-zero", func(t testing.TB) []byte {
		return withShortcutMeta(t, `{"image_size": [0, 4]}`)
	}, `metadata 0 "shortcut.meta": image_size [0 4]: want [height, width] of at least 1 each`},
	{"metadata-image-size-not-integer", func(t testing.TB) []byte {
		return withShortcutMeta(t, `{"image_size": [2.5, 4]}`)
	}, `metadata 0 "shortcut.meta": invalid JSON`},
	{"metadata-buffer-out-of-range", func(t testing.TB) []byte {
		return repack(t, func(m *tflfb.ModelT) { m.Metadata[0].Buffer = 500 })
	}, `metadata 0 "shortcut.meta": buffer index 500 is out of range`},
}

// convOptions returns the CONV_2D options of operator op.
func convOptions(m *tflfb.ModelT, op int) *tflfb.Conv2DOptionsT {
	return m.Subgraphs[0].Operators[op].BuiltinOptions.Value.(*tflfb.Conv2DOptionsT)
}

// withShortcutMeta is testModel's file with js as its shortcut.meta.
func withShortcutMeta(t testing.TB, js string) []byte {
	return repack(t, func(m *tflfb.ModelT) {
		for _, e := range m.Metadata {
			if e.Name == MetaShortcut {
				m.Buffers[e.Buffer].Data = []byte(js)
			}
		}
	})
}

func brokenPath(name string) string { return filepath.Join("testdata", "broken", name+".tflite") }

// TestBrokenCorpus loads every file in testdata/broken: each must give an
// error (not a panic), and files made by brokenCases must give the error
// listed there. Run with -update to regenerate the files.
func TestBrokenCorpus(t *testing.T) {
	if *update {
		if err := os.MkdirAll(filepath.Join("testdata", "broken"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, bc := range brokenCases {
			if err := os.WriteFile(brokenPath(bc.name), bc.make(t), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := map[string]string{}
	for _, bc := range brokenCases {
		want[bc.name] = bc.want
		if _, err := os.Stat(brokenPath(bc.name)); err != nil {
			t.Errorf("corpus file for case %q is missing (run go test ./resnet -run TestBrokenCorpus -update): %v",
				bc.name, err)
		}
	}
	files, err := filepath.Glob(filepath.Join("testdata", "broken", "*.tflite"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files in testdata/broken (err %v)", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".tflite")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Load(data)
			if err == nil {
				t.Fatalf("Load accepted a broken file (%d tensors)", len(m.Tensors))
			}
			if strings.Contains(err.Error(), "internal error") {
				t.Fatalf("error came from the panic guard, not from an explicit check: %v", err)
			}
			if w, ok := want[name]; ok && !strings.Contains(err.Error(), w) {
				t.Fatalf("error:\n  %v\nwant it to contain:\n  %s", err, w)
			}
		})
	}
}

// TestBrokenCasesStillMatchGenerators guards against a corpus file that no
// longer shows the fault its name says (for example after a writer change
// moved the bytes a case edits): the freshly generated file must fail the
// same way.
func TestBrokenCasesStillMatchGenerators(t *testing.T) {
	for _, bc := range brokenCases {
		t.Run(bc.name, func(t *testing.T) {
			_, err := Load(bc.make(t))
			if err == nil || !strings.Contains(err.Error(), bc.want) {
				t.Fatalf("error:\n  %v\nwant it to contain:\n  %s", err, bc.want)
			}
		})
	}
}

func TestLoadReadsBothOperatorCodeFields(t *testing.T) {
	tests := []struct {
		name                string
		deprecated, builtin int32
	}{
		{"old file with only the byte field", int32(OpConv2D), 0},
		{"new file with both fields", int32(OpConv2D), int32(OpConv2D)},
		{"file with only the 32-bit field", 0, int32(OpConv2D)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := repack(t, func(m *tflfb.ModelT) {
				c := opcodeOf(m, 2)
				c.DeprecatedBuiltinCode, c.BuiltinCode = int8(tc.deprecated), tflfb.BuiltinOperator(tc.builtin)
			})
			m, err := Load(data)
			if err != nil {
				t.Fatal(err)
			}
			if op := m.Operators[2].Op; op != OpConv2D {
				t.Fatalf("operator 2 read as %v, want CONV_2D", op)
			}
		})
	}
}

func TestLoadGivesDefaultOptionsWhenAbsent(t *testing.T) {
	data := repack(t, func(m *tflfb.ModelT) {
		for _, op := range []int{0, 1, 4, 8, 9, 10, 11, 12, 13} {
			m.Subgraphs[0].Operators[op].BuiltinOptions = nil
		}
	})
	m, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]Options{
		0: nil, 1: nil, 4: &AddOptions{}, 8: &ReducerOptions{}, 9: &SqueezeOptions{},
		10: &ReshapeOptions{}, 11: &FullyConnectedOptions{}, 12: &SoftmaxOptions{}, 13: nil,
	}
	for i, w := range want {
		if got := m.Operators[i].Options; !reflect.DeepEqual(got, w) {
			t.Errorf("operator %d (%v) options = %#v, want %#v", i, m.Operators[i].Op, got, w)
		}
	}
}

func TestLoadTreatsEmptyQuantizationOfFloatTensorsAsNone(t *testing.T) {
	data := repack(t, func(m *tflfb.ModelT) {
		m.Subgraphs[0].Tensors[tmInput].Quantization = &tflfb.QuantizationParametersT{}
	})
	m, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	if q := m.Tensors[tmInput].Quant; q != nil {
		t.Fatalf("float input has Quant %+v, want nil", q)
	}
}

// TestImageSizeRoundTrips checks that Metadata.ImageSize is written as
// "image_size" [height, width] in shortcut.meta and read back, that a
// content area as large as the input is accepted, and that a model without
// it writes no such key (old files stay byte-identical).
func TestImageSizeRoundTrips(t *testing.T) {
	for _, size := range [][2]int{{6, 7}, {8, 8}, {1, 1}} {
		m := testModel()
		m.Meta.ImageSize = size
		data := mustMarshal(t, m)
		got, err := Load(data)
		if err != nil {
			t.Fatalf("image_size %v: %v", size, err)
		}
		if got.Meta.ImageSize != size || !got.Meta.HasImageSize() {
			t.Errorf("image_size %v read back as %v", size, got.Meta.ImageSize)
		}
		js := shortcutMetaJSON(t, data)
		if want := fmt.Sprintf(`"image_size":[%d,%d]`, size[0], size[1]); !strings.Contains(js, want) {
			t.Errorf("shortcut.meta %s lacks %s", js, want)
		}
	}
	js := shortcutMetaJSON(t, mustMarshal(t, testModel()))
	if strings.Contains(js, "image_size") {
		t.Errorf("a model without ImageSize wrote %s", js)
	}
	// ImageSize alone is metadata worth writing.
	m := testModel()
	m.Meta = Metadata{ImageSize: [2]int{4, 4}}
	got, err := Load(mustMarshal(t, m))
	if err != nil || got.Meta.ImageSize != [2]int{4, 4} {
		t.Fatalf("ImageSize-only metadata: %+v, %v", got, err)
	}
	// An explicit null is the same as absent.
	got, err = Load(withShortcutMeta(t, `{"name": "x", "image_size": null}`))
	if err != nil || got.Meta.HasImageSize() {
		t.Fatalf("image_size null: %+v, %v", got, err)
	}
}

func shortcutMetaJSON(t *testing.T, data []byte) string {
	t.Helper()
	mt := tflfb.GetRootAsModel(data, 0).UnPack()
	for _, e := range mt.Metadata {
		if e.Name == MetaShortcut {
			return string(mt.Buffers[e.Buffer].Data)
		}
	}
	return ""
}

func TestLoadIgnoresUnknownMetadata(t *testing.T) {
	data := repack(t, func(m *tflfb.ModelT) {
		m.Buffers = append(m.Buffers, &tflfb.BufferT{Data: []byte("anything")})
		m.Metadata = append(m.Metadata, &tflfb.MetadataT{Name: "TFLITE_METADATA", Buffer: uint32(len(m.Buffers) - 1)})
	})
	m, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Meta, testModel().Meta) {
		t.Fatalf("metadata = %+v, want the shortcut.meta contents", m.Meta)
	}
}

// TestLoadAllocationIsBoundedByFileSize checks that no input, valid or
// hostile, makes Load allocate more than a fixed multiple of its size.
func TestLoadAllocationIsBoundedByFileSize(t *testing.T) {
	inputs := map[string][]byte{
		"valid":         mustMarshal(t, testModel()),
		"shared tables": sharedTablesFile(20000),
	}
	for _, bc := range brokenCases {
		inputs[bc.name] = bc.make(t)
	}
	names := make([]string, 0, len(inputs))
	for n := range inputs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		data := inputs[name]
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		Load(data)
		runtime.ReadMemStats(&after)
		allocated := after.TotalAlloc - before.TotalAlloc
		if limit := 64*uint64(len(data)) + 1<<20; allocated > limit {
			t.Errorf("%s: Load of %d bytes allocated %d bytes, above the limit %d", name, len(data), allocated, limit)
		}
	}
}

func TestLoadRejectsHugeVectorWithoutAllocating(t *testing.T) {
	data := mustMarshal(t, testModel())
	put32(data, vectorLenPos(data, tensorTable(data, 0), 4), 1<<31)
	allocs := testing.AllocsPerRun(5, func() {
		if _, err := Load(data); err == nil {
			t.Fatal("Load accepted a shape vector of 2^31 elements")
		}
	})
	// A handful of allocations for the error message, none per element.
	if allocs > 100 {
		t.Fatalf("Load made %.0f allocations rejecting the file", allocs)
	}
}

// round6 rounds every quantization float of m to 6 decimal places, the
// precision of flatc's JSON output.
func round6(m *Model) {
	r := func(vs []float32) {
		for i, v := range vs {
			f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(v), 'f', 6, 32), 32)
			vs[i] = float32(f)
		}
	}
	for i := range m.Tensors {
		if q := m.Tensors[i].Quant; q != nil {
			r(q.Scale)
			r(q.Min)
			r(q.Max)
		}
	}
}

// TestLoadReadsFileWrittenByAnotherWriter loads testdata/tf115_flatc.tflite:
// the testModel file converted to JSON and back by flatc 2.0.8 with
// TensorFlow 1.15's own schema.fbs (flatc --json --raw-binary schema.fbs --
// m.tflite; flatc -b schema.fbs m.json). flatc lays out tables, vtables and
// vectors differently from our writer, and it knows only the byte opcode
// field, so this checks our schema against TensorFlow's.
func TestLoadReadsFileWrittenByAnotherWriter(t *testing.T) {
	got, err := LoadFile(filepath.Join("testdata", "tf115_flatc.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	want := testModel()
	round6(got)
	round6(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("model differs from testModel: %s", diffModels(got, want))
	}
}
