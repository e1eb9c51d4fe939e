// Package resnet is Shortcut's own TensorFlow Lite runtime: it reads, checks,
// writes and runs the int8 (and float32) image classifiers that the agent
// uses. Files come from outside (a user's disk, a training desktop), so
// Load checks every offset, index, shape and quantization parameter before
// anything is used; the Interpreter then prepares each operator once and runs
// it without allocating.
//
// Data flows: .tflite bytes -> Load -> *Model -> NewInterpreter (Prepare) ->
// Invoke (Eval) -> output tensors. Writers (quant/, tests) build a *Model and
// call Marshal.
package resnet

import "fmt"

// DType is a tensor element type. Values are TFLite's TensorType numbers.
type DType int8

const (
	Float32 DType = 0
	Float16 DType = 1
	Int32   DType = 2
	UInt8   DType = 3
	Int64   DType = 4
	String  DType = 5
	Bool    DType = 6
	Int16   DType = 7
	Int8    DType = 9
)

// Size is the number of bytes of one element, or 0 for types we do not store.
func (t DType) Size() int {
	switch t {
	case Float32, Int32:
		return 4
	case Int64:
		return 8
	case Int16, Float16:
		return 2
	case UInt8, Int8, Bool:
		return 1
	}
	return 0
}

func (t DType) String() string {
	switch t {
	case Float32:
		return "FLOAT32"
	case Float16:
		return "FLOAT16"
	case Int32:
		return "INT32"
	case UInt8:
		return "UINT8"
	case Int64:
		return "INT64"
	case String:
		return "STRING"
	case Bool:
		return "BOOL"
	case Int16:
		return "INT16"
	case Int8:
		return "INT8"
	}
	return fmt.Sprintf("TensorType(%d)", int8(t))
}

// OpCode is a TFLite BuiltinOperator number.
type OpCode int32

const (
	OpAdd             OpCode = 0
	OpAveragePool2D   OpCode = 1
	OpConv2D          OpCode = 3
	OpDepthwiseConv2D OpCode = 4
	OpDequantize      OpCode = 6
	OpFullyConnected  OpCode = 9
	OpMaxPool2D       OpCode = 17
	OpReshape         OpCode = 22
	OpSoftmax         OpCode = 25
	OpPad             OpCode = 34
	OpMean            OpCode = 40
	OpSqueeze         OpCode = 43
	OpQuantize        OpCode = 114
)

func (o OpCode) String() string {
	if info, ok := Op(o); ok {
		return info.Name
	}
	return fmt.Sprintf("BuiltinOperator(%d)", int32(o))
}

// Supported reports whether this runtime implements the operator (it has an
// entry in the operator registry, ops.go).
func (o OpCode) Supported() bool { _, ok := Op(o); return ok }

// Padding is TFLite's Padding enum.
type Padding int8

const (
	PaddingSame  Padding = 0
	PaddingValid Padding = 1
)

// Activation is TFLite's ActivationFunctionType (fused activation).
type Activation int8

const (
	ActNone      Activation = 0
	ActRelu      Activation = 1
	ActReluN1To1 Activation = 2
	ActRelu6     Activation = 3
)

// Quant holds a tensor's affine quantization: real = Scale * (q - ZeroPoint).
// One Scale/ZeroPoint per tensor, or one per slice along Dim (per-channel).
type Quant struct {
	Scale     []float32
	ZeroPoint []int64
	Dim       int
	// Min and Max are optional recorded ranges (as TFLite stores them).
	Min, Max []float32
}

// PerChannel reports whether the tensor has more than one scale.
func (q *Quant) PerChannel() bool { return q != nil && len(q.Scale) > 1 }

// Tensor describes one tensor of the graph. Data holds constant contents
// (weights, biases, shape vectors) in little-endian order; activations have
// nil Data.
type Tensor struct {
	Name  string
	Type  DType
	Shape []int
	Data  []byte
	Quant *Quant
}

// NumElements is the product of the shape (1 for a scalar).
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Options are an operator's builtin options; each op has its own struct.
type Options interface{ isOptions() }

type Conv2DOptions struct {
	Padding              Padding
	StrideW, StrideH     int
	Activation           Activation
	DilationW, DilationH int // 0 means 1
}

type DepthwiseConv2DOptions struct {
	Padding              Padding
	StrideW, StrideH     int
	DepthMultiplier      int
	Activation           Activation
	DilationW, DilationH int
}

type Pool2DOptions struct {
	Padding          Padding
	StrideW, StrideH int
	FilterW, FilterH int
	Activation       Activation
}

type FullyConnectedOptions struct {
	Activation  Activation
	KeepNumDims bool
}

type AddOptions struct{ Activation Activation }

type SoftmaxOptions struct{ Beta float32 }

type ReshapeOptions struct{ NewShape []int }

type SqueezeOptions struct{ SqueezeDims []int }

// ReducerOptions are MEAN's options; the axes come from the second input.
type ReducerOptions struct{ KeepDims bool }

func (*Conv2DOptions) isOptions()          {}
func (*DepthwiseConv2DOptions) isOptions() {}
func (*Pool2DOptions) isOptions()          {}
func (*FullyConnectedOptions) isOptions()  {}
func (*AddOptions) isOptions()             {}
func (*SoftmaxOptions) isOptions()         {}
func (*ReshapeOptions) isOptions()         {}
func (*SqueezeOptions) isOptions()         {}
func (*ReducerOptions) isOptions()         {}

// Operator is one node of the graph. An input index of -1 means an omitted
// optional input (for example a convolution without bias).
type Operator struct {
	Op      OpCode
	Version int // operator code version written to the file (>=1)
	Inputs  []int
	Outputs []int
	Options Options // nil for ops without options (PAD, QUANTIZE, DEQUANTIZE)
}

// Metadata is what a model says about itself for image classification:
// labels for the class-score output and the input normalization
// (real input = (pixel/255 - Mean[c]) / Std[c] when Std is set).
type Metadata struct {
	Name    string
	Version string
	Labels  []string
	Mean    []float32
	Std     []float32
	// OutputNames names the model outputs in order ("scores", "embedding").
	OutputNames []string
	// ImageSize, when not zero, is [height, width] of the image content the
	// model was trained on inside its larger input 0 ([N, H, W, C]): the
	// content lies centred in the input, its top-left corner at row
	// (H-height)/2 and column (W-width)/2 (integer division, so an odd
	// margin puts the extra row or column at the bottom or right), and the
	// border around it holds black pixels, pixel value 0, that is
	// (0 - Mean[c]) / Std[c] after normalization. This is what training with
	// pad_to does (`shortcut-train fit --pad-to 32` on 28x28 images gives
	// ImageSize [28, 28] in a 32x32 input). Each side is 1..H or 1..W; zero
	// (the default, and absent in the file) means the content fills the
	// whole input. Stored as "image_size" in shortcut.meta.
	ImageSize [2]int
}

// HasImageSize reports whether md records a content area (ImageSize not
// zero).
func (md *Metadata) HasImageSize() bool { return md.ImageSize != [2]int{} }

// Model is a single-subgraph TFLite model held in memory.
type Model struct {
	Description string
	Tensors     []Tensor
	Operators   []Operator
	Inputs      []int
	Outputs     []int
	Meta        Metadata
}

// QuantBehind is the int8 quantization that stands behind tensor ti: its
// own when it is int8, or that of the DEQUANTIZE input producing it (a float
// output of a quantized model); nil for a float tensor of a float model.
// Comparisons use it to measure distances in LSB.
func (m *Model) QuantBehind(ti int) *Quant {
	if ti < 0 || ti >= len(m.Tensors) {
		return nil
	}
	if m.Tensors[ti].Type == Int8 {
		return m.Tensors[ti].Quant
	}
	for _, op := range m.Operators {
		if op.Op == OpDequantize && len(op.Outputs) > 0 && op.Outputs[0] == ti && len(op.Inputs) > 0 {
			if in := op.Inputs[0]; in >= 0 && in < len(m.Tensors) {
				return m.Tensors[in].Quant
			}
		}
	}
	return nil
}
