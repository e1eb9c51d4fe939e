package resnet

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/shortcut-edge/shortcut/resnet/internal/tflfb"
)

// QuantRule says how an operator's int8 form is quantized: what quant
// writes and what Load checks against TFLite's int8 specification.
type QuantRule int8

const (
	// QuantBoundary: QUANTIZE and DEQUANTIZE, the float<->int8 boundaries
	// that quant inserts itself.
	QuantBoundary QuantRule = iota
	// QuantWeighted: int8 input and output, symmetric int8 weights (per
	// channel along WeightChannelDim), an int32 bias whose scale is input
	// scale x weight scale.
	QuantWeighted
	// QuantOwnRange: int8 inputs and output; the output's range comes from
	// calibration.
	QuantOwnRange
	// QuantKeepInput: the output keeps its input's scale and zero point.
	QuantKeepInput
	// QuantSoftmax: the output is fixed at scale 1/256, zero point -128.
	QuantSoftmax
)

// OpInfo is what the format layer knows of one supported operator. It is the
// operator registry: the loader, Validate, the int8 specification checks
// (spec.go), the interpreter (resnet/interp registers a kernel per code and
// checks it has one for every entry) and the quantizer (quant) all look
// operators up here. docs/architecture.md says how to add one.
type OpInfo struct {
	Code OpCode
	Name string // TFLite's BuiltinOperator name
	// MinInputs and MaxInputs bound the input count; inputs from MinInputs
	// on are optional and may be -1.
	MinInputs, MaxInputs int
	// FileOptions is the BuiltinOptions union member the operator carries in
	// a file (NONE when it has none).
	FileOptions tflfb.BuiltinOptions
	// NewOptions returns the in-memory options with the schema's defaults,
	// which a file without options gets; nil for an operator whose options
	// table is empty (Operator.Options is then nil).
	NewOptions func() Options
	// Quant is how the int8 form is quantized; WeightChannelDim is the
	// per-channel dimension of a QuantWeighted operator's weights (input 1).
	Quant            QuantRule
	WeightChannelDim int
	// Int8Version is the operator version converters write for the int8
	// kernel; a runtime refuses versions it does not know.
	Int8Version int
}

var opTable = []OpInfo{
	{Code: OpConv2D, Name: "CONV_2D", MinInputs: 2, MaxInputs: 3, FileOptions: tflfb.BuiltinOptionsConv2DOptions,
		NewOptions: func() Options { return &Conv2DOptions{DilationW: 1, DilationH: 1} }, Quant: QuantWeighted, Int8Version: 3},
	{Code: OpDepthwiseConv2D, Name: "DEPTHWISE_CONV_2D", MinInputs: 2, MaxInputs: 3, FileOptions: tflfb.BuiltinOptionsDepthwiseConv2DOptions,
		NewOptions: func() Options { return &DepthwiseConv2DOptions{DilationW: 1, DilationH: 1} }, Quant: QuantWeighted, WeightChannelDim: 3, Int8Version: 3},
	{Code: OpFullyConnected, Name: "FULLY_CONNECTED", MinInputs: 2, MaxInputs: 3, FileOptions: tflfb.BuiltinOptionsFullyConnectedOptions,
		NewOptions: func() Options { return &FullyConnectedOptions{} }, Quant: QuantWeighted, Int8Version: 4},
	{Code: OpAdd, Name: "ADD", MinInputs: 2, MaxInputs: 2, FileOptions: tflfb.BuiltinOptionsAddOptions,
		NewOptions: func() Options { return &AddOptions{} }, Quant: QuantOwnRange, Int8Version: 2},
	{Code: OpMean, Name: "MEAN", MinInputs: 2, MaxInputs: 2, FileOptions: tflfb.BuiltinOptionsReducerOptions,
		NewOptions: func() Options { return &ReducerOptions{} }, Quant: QuantOwnRange, Int8Version: 2},
	{Code: OpAveragePool2D, Name: "AVERAGE_POOL_2D", MinInputs: 1, MaxInputs: 1, FileOptions: tflfb.BuiltinOptionsPool2DOptions,
		NewOptions: func() Options { return &Pool2DOptions{} }, Quant: QuantKeepInput, Int8Version: 2},
	{Code: OpMaxPool2D, Name: "MAX_POOL_2D", MinInputs: 1, MaxInputs: 1, FileOptions: tflfb.BuiltinOptionsPool2DOptions,
		NewOptions: func() Options { return &Pool2DOptions{} }, Quant: QuantKeepInput, Int8Version: 2},
	{Code: OpPad, Name: "PAD", MinInputs: 2, MaxInputs: 2, FileOptions: tflfb.BuiltinOptionsPadOptions,
		Quant: QuantKeepInput, Int8Version: 2},
	{Code: OpReshape, Name: "RESHAPE", MinInputs: 1, MaxInputs: 2, FileOptions: tflfb.BuiltinOptionsReshapeOptions,
		NewOptions: func() Options { return &ReshapeOptions{} }, Quant: QuantKeepInput, Int8Version: 1},
	{Code: OpSqueeze, Name: "SQUEEZE", MinInputs: 1, MaxInputs: 1, FileOptions: tflfb.BuiltinOptionsSqueezeOptions,
		NewOptions: func() Options { return &SqueezeOptions{} }, Quant: QuantKeepInput, Int8Version: 1},
	{Code: OpSoftmax, Name: "SOFTMAX", MinInputs: 1, MaxInputs: 1, FileOptions: tflfb.BuiltinOptionsSoftmaxOptions,
		NewOptions: func() Options { return &SoftmaxOptions{} }, Quant: QuantSoftmax, Int8Version: 2},
	{Code: OpQuantize, Name: "QUANTIZE", MinInputs: 1, MaxInputs: 1, FileOptions: tflfb.BuiltinOptionsQuantizeOptions,
		Quant: QuantBoundary, Int8Version: 2},
	{Code: OpDequantize, Name: "DEQUANTIZE", MinInputs: 1, MaxInputs: 1, FileOptions: tflfb.BuiltinOptionsDequantizeOptions,
		Quant: QuantBoundary, Int8Version: 2},
}

var opIndex = func() map[OpCode]*OpInfo {
	m := make(map[OpCode]*OpInfo, len(opTable))
	for i := range opTable {
		info := &opTable[i]
		if _, dup := m[info.Code]; dup {
			panic(fmt.Sprintf("resnet: operator %d is registered twice", info.Code))
		}
		m[info.Code] = info
	}
	return m
}()

// Op returns the registry entry of a supported operator.
func Op(code OpCode) (*OpInfo, bool) {
	info, ok := opIndex[code]
	return info, ok
}

// Ops returns every supported operator's code, in the registry's order.
func Ops() []OpCode {
	codes := make([]OpCode, len(opTable))
	for i := range opTable {
		codes[i] = opTable[i].Code
	}
	return codes
}

// SupportedOpNames is the sorted list of supported operator names, for
// error messages.
func SupportedOpNames() []string {
	names := make([]string, len(opTable))
	for i := range opTable {
		names[i] = opTable[i].Name
	}
	slices.Sort(names)
	return names
}

// optionsFit reports whether o is the in-memory options type of info.
func (info *OpInfo) optionsFit(o Options) bool {
	if info.NewOptions == nil {
		return o == nil
	}
	return o != nil && reflect.TypeOf(o) == reflect.TypeOf(info.NewOptions())
}

// optionsTypeName is the options type the operator wants, for errors.
func (info *OpInfo) optionsTypeName() string {
	if info.NewOptions == nil {
		return "no options"
	}
	t := reflect.TypeOf(info.NewOptions())
	if t.Kind() == reflect.Pointer {
		return "*" + t.Elem().Name()
	}
	return t.Name()
}
