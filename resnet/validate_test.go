package resnet

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestValidateAcceptsTestModel(t *testing.T) {
	if err := testModel().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateRejectsBadModels(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		name   string
		change func(m *Model)
		want   string // substring of the error
	}{
		// Tensors.
		{"unknown tensor type", func(m *Model) { m.Tensors[tmInput].Type = 42 },
			`tensor 0 "input": element type TensorType(42) is not supported`},
		{"string tensor", func(m *Model) { m.Tensors[tmInput].Type = String },
			`tensor 0 "input": element type STRING is not supported`},
		{"negative dimension", func(m *Model) { m.Tensors[tmConvOut].Shape[1] = -8 },
			`tensor 6 "conv1": shape [1 -8 8 4] dimension 1 is negative`},
		{"dimension above int32", func(m *Model) { m.Tensors[tmConvOut].Shape = []int{0, math.MaxInt} },
			`tensor 6 "conv1": shape [0 ` + strconv.Itoa(math.MaxInt) + `] dimension 1 is ` + strconv.Itoa(math.MaxInt) +
				`, above the limit 2147483647`},
		{"too many elements", func(m *Model) { m.Tensors[tmConvOut].Shape = []int{1 << 16, 1 << 16, 1 << 16} },
			`tensor 6 "conv1": shape [65536 65536 65536] has more than 2147483647 elements`},
		{"element count overflowing int64", func(m *Model) {
			m.Tensors[tmConvOut].Shape = []int{math.MaxInt32, math.MaxInt32, math.MaxInt32, math.MaxInt32}
		}, `has more than 2147483647 elements`},
		{"data size mismatch", func(m *Model) { m.Tensors[tmConvB].Data = m.Tensors[tmConvB].Data[:12] },
			`tensor 5 "conv1/bias": data has 12 bytes, shape [4] INT32 needs 16`},
		{"int8 tensor without quantization", func(m *Model) { m.Tensors[tmConvOut].Quant = nil },
			`tensor 6 "conv1": INT8 tensor has no quantization parameters`},
		{"int8 tensor with range but no scale", func(m *Model) {
			m.Tensors[tmConvOut].Quant = &Quant{Min: []float32{-1}, Max: []float32{1}}
		}, `tensor 6 "conv1": quantization: INT8 tensor has no scale`},
		{"scale and zero point counts differ", func(m *Model) { m.Tensors[tmConvW].Quant.ZeroPoint = []int64{0} },
			`tensor 4 "conv1/weights": quantization: 4 scales but 1 zero points`},
		{"per-channel count does not match dimension", func(m *Model) { m.Tensors[tmConvW].Quant.Dim = 1 },
			`tensor 4 "conv1/weights": quantization: 4 scales, but quantized dimension 1 of shape [4 3 3 3] has 3 entries: ` +
				`per-channel quantization takes one scale per entry of that dimension, per-tensor quantization one scale ` +
				`(dimension 0 has 4 entries: quantized_dimension 0 would fit)`},
		{"per-channel bias shaped [1 4] along its dimension of 1", func(m *Model) { m.Tensors[tmConvB].Shape = []int{1, 4} },
			`tensor 5 "conv1/bias": quantization: 4 scales, but quantized dimension 0 of shape [1 4] has 1 entry: ` +
				`per-channel quantization takes one scale per entry of that dimension, per-tensor quantization one scale ` +
				`(dimension 1 has 4 entries: quantized_dimension 1 would fit)`},
		{"quantized dimension out of range", func(m *Model) { m.Tensors[tmConvW].Quant.Dim = 4 },
			`quantization: quantized dimension 4 is out of range for shape [4 3 3 3]`},
		{"negative quantized dimension", func(m *Model) { m.Tensors[tmConvW].Quant.Dim = -1 },
			`quantization: quantized dimension -1 is out of range`},
		{"zero scale", func(m *Model) { m.Tensors[tmConvW].Quant.Scale[2] = 0 },
			`tensor 4 "conv1/weights": quantization: scale[2] is 0, want a finite value > 0`},
		{"NaN scale", func(m *Model) { m.Tensors[tmConvOut].Quant.Scale[0] = nan },
			`quantization: scale[0] is NaN`},
		{"infinite scale", func(m *Model) { m.Tensors[tmConvOut].Quant.Scale[0] = float32(math.Inf(1)) },
			`quantization: scale[0] is +Inf`},
		{"int8 zero point out of range", func(m *Model) { m.Tensors[tmConvOut].Quant.ZeroPoint[0] = 128 },
			`quantization: zero point[0] is 128, outside the INT8 range [-128, 127]`},
		{"min without max", func(m *Model) { m.Tensors[tmQuantized].Quant.Max = nil },
			`tensor 1 "input_int8": quantization: 1 min values but 0 max values`},

		// Operators.
		{"unsupported operator", func(m *Model) { m.Operators[4].Op = 18 },
			`operator 4 (BuiltinOperator(18)): operator is not supported`},
		{"input index out of range", func(m *Model) { m.Operators[2].Inputs[1] = 99 },
			`operator 2 (CONV_2D): input 1 is tensor index 99, out of range [0, 25)`},
		{"omitted required input", func(m *Model) { m.Operators[2].Inputs[1] = -1 },
			`operator 2 (CONV_2D): input 1 is tensor index -1, out of range`},
		{"output index out of range", func(m *Model) { m.Operators[2].Outputs[0] = -1 },
			`operator 2 (CONV_2D): output 0 is tensor index -1, out of range`},
		{"too few inputs", func(m *Model) { m.Operators[4].Inputs = m.Operators[4].Inputs[:1] },
			`operator 4 (ADD): has 1 inputs, want 2`},
		{"too many inputs", func(m *Model) { m.Operators[2].Inputs = append(m.Operators[2].Inputs, 5) },
			`operator 2 (CONV_2D): has 4 inputs, want 2 to 3`},
		{"two outputs", func(m *Model) { m.Operators[4].Outputs = []int{9, 10} },
			`operator 4 (ADD): has 2 outputs, want 1`},
		{"missing options", func(m *Model) { m.Operators[2].Options = nil },
			`operator 2 (CONV_2D): options are <nil>, want *Conv2DOptions`},
		{"options of another operator", func(m *Model) { m.Operators[2].Options = &Pool2DOptions{} },
			`operator 2 (CONV_2D): options are *resnet.Pool2DOptions, want *Conv2DOptions`},
		{"options on an operator without options", func(m *Model) { m.Operators[1].Options = &AddOptions{} },
			`operator 1 (PAD): has options *resnet.AddOptions, but PAD takes none`},
		{"zero stride", func(m *Model) { m.Operators[2].Options.(*Conv2DOptions).StrideH = 0 },
			`operator 2 (CONV_2D): strides (w, h) [1 0] must be >= 1`},
		{"zero filter", func(m *Model) { m.Operators[5].Options.(*Pool2DOptions).FilterW = 0 },
			`operator 5 (MAX_POOL_2D): filter size (w, h) [0 2] must be >= 1`},
		{"zero depth multiplier", func(m *Model) { m.Operators[3].Options.(*DepthwiseConv2DOptions).DepthMultiplier = 0 },
			`operator 3 (DEPTHWISE_CONV_2D): depth multiplier [0] must be >= 1`},
		{"unknown padding", func(m *Model) { m.Operators[2].Options.(*Conv2DOptions).Padding = 2 },
			`operator 2 (CONV_2D): padding 2 is not SAME (0) or VALID (1)`},
		{"unsupported activation", func(m *Model) { m.Operators[4].Options.(*AddOptions).Activation = 4 },
			`operator 4 (ADD): fused activation 4 is not supported`},
		{"negative dilation", func(m *Model) { m.Operators[3].Options.(*DepthwiseConv2DOptions).DilationW = -1 },
			`operator 3 (DEPTHWISE_CONV_2D): dilation [-1 2] must be >= 1`},
		{"NaN softmax beta", func(m *Model) { m.Operators[12].Options.(*SoftmaxOptions).Beta = nan },
			`operator 12 (SOFTMAX): softmax beta NaN is not finite`},
		{"bad reshape dimension", func(m *Model) { m.Operators[10].Options.(*ReshapeOptions).NewShape[1] = -2 },
			`operator 10 (RESHAPE): new shape [1 -2]`},
		{"negative version", func(m *Model) { m.Operators[0].Version = -1 },
			`operator 0 (QUANTIZE): version -1 is out of range`},

		// Graph.
		{"no inputs", func(m *Model) { m.Inputs = nil }, `graph has no inputs`},
		{"no outputs", func(m *Model) { m.Outputs = nil }, `graph has no outputs`},
		{"graph input out of range", func(m *Model) { m.Inputs = []int{25} },
			`graph input 0 is tensor index 25, out of range [0, 25)`},
		{"graph output out of range", func(m *Model) { m.Outputs = []int{-1} },
			`graph output 0 is tensor index -1, out of range [0, 25)`},
		{"graph input listed twice", func(m *Model) { m.Inputs = []int{0, 0} },
			`graph input 1: tensor 0 "input" is listed twice`},
		{"constant graph input", func(m *Model) { m.Inputs = []int{0, tmConvW} },
			`graph input 1: tensor 4 "conv1/weights" is a constant`},
		{"graph output never written", func(m *Model) {
			m.Tensors = append(m.Tensors, Tensor{Name: "orphan", Type: Float32, Shape: []int{1}})
			m.Outputs = []int{25}
		}, `graph output 0: tensor 25 "orphan" is not written by any operator`},
		{"tensor written twice", func(m *Model) { m.Operators[3].Outputs = []int{tmConvOut} },
			`operator 3 (DEPTHWISE_CONV_2D): output tensor 6 "conv1" is already written by operator 2 (CONV_2D)`},
		{"operator writes a graph input", func(m *Model) { m.Operators[0].Outputs = []int{tmInput} },
			`operator 0 (QUANTIZE): output tensor 0 "input" is a graph input`},
		{"operator writes a constant", func(m *Model) { m.Operators[0].Outputs = []int{tmConvW} },
			`operator 0 (QUANTIZE): output tensor 4 "conv1/weights" is a constant`},
		{"input never written", func(m *Model) {
			m.Tensors = append(m.Tensors, act8("dangling"))
			m.Operators[4].Inputs[1] = 25
		}, `operator 4 (ADD): input 1, tensor 25 "dangling", is neither a constant, a graph input nor written by any operator`},
		{"operator reads its own output", func(m *Model) { m.Operators[4].Inputs[1] = tmAddOut },
			`operator 4 (ADD): input 1, tensor 9 "add", is its own output (cycle)`},
		{"cycle between two operators", func(m *Model) {
			// conv1 reads add, which is computed from conv1.
			m.Operators[2].Inputs[0] = tmAddOut
		}, `operator 2 (CONV_2D): input 0, tensor 9 "add", is written later by operator 4 (ADD)`},
		{"operators out of order", func(m *Model) {
			m.Operators[2], m.Operators[3] = m.Operators[3], m.Operators[2]
		}, `operator 2 (DEPTHWISE_CONV_2D): input 0, tensor 6 "conv1", is written later by operator 3 (CONV_2D)`},

		// Metadata.
		{"mean and std lengths differ", func(m *Model) { m.Meta.Std = m.Meta.Std[:2] },
			`metadata: 3 mean values but 2 std values`},
		{"zero std", func(m *Model) { m.Meta.Std[1] = 0 }, `metadata: std[1] is 0`},
		{"NaN mean", func(m *Model) { m.Meta.Mean[0] = nan }, `metadata: mean[0] is NaN`},
		{"output names do not match outputs", func(m *Model) { m.Meta.OutputNames = []string{"a", "b"} },
			`metadata: 2 output names for 1 graph outputs`},
		{"image size taller than the input", func(m *Model) { m.Meta.ImageSize = [2]int{9, 8} },
			`metadata: image_size [9, 8] does not fit the 8x8 input tensor 0 "input": want 1..8 by 1..8`},
		{"image size with a zero side", func(m *Model) { m.Meta.ImageSize = [2]int{0, 4} },
			`metadata: image_size [0, 4] does not fit`},
		{"negative image size", func(m *Model) { m.Meta.ImageSize = [2]int{4, -1} },
			`metadata: image_size [4, -1] does not fit`},
		{"image size on an input that is no image", func(m *Model) {
			m.Tensors[tmInput].Shape = []int{1, 192}
			m.Meta.ImageSize = [2]int{4, 4}
		}, `metadata: image_size [4, 4] but input 0 is not an image [N, H, W, C]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "dimension above int32" && strconv.IntSize == 32 {
				t.Skip("int cannot hold a dimension above int32 on this platform")
			}
			m := testModel()
			tc.change(m)
			err := m.Validate()
			if err == nil {
				t.Fatalf("Validate accepted the model, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate error:\n  %v\nwant it to contain:\n  %s", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "model: ") {
				t.Errorf("error %q lacks the \"model: \" prefix", err)
			}
		})
	}
}

func act8(name string) Tensor {
	return Tensor{Name: name, Type: Int8, Shape: []int{1, 8, 8, 4}, Quant: perTensor(0.05, 0)}
}

func TestValidateAcceptsOmittedOptionalInputs(t *testing.T) {
	m := testModel()
	m.Operators[11].Inputs[2] = -1 // FULLY_CONNECTED without bias
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateRejectsNilModel(t *testing.T) {
	var m *Model
	if err := m.Validate(); err == nil {
		t.Fatal("Validate of a nil model returned nil")
	}
}
