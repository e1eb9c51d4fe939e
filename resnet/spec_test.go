package resnet

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// The refusals of spec.go are in brokenCases (load_test.go), one corpus
// file each. These tests hold the other side: what converters and our own
// writers produce must still load, right up to each rule's edge.

func TestLoadAcceptsFilesThatFollowTheSpecUpToItsTolerances(t *testing.T) {
	tests := []struct {
		name   string
		change func(m *Model)
	}{
		{"the test model as it is", func(m *Model) {}},
		{"bias scales computed in double from unrounded scales", func(m *Model) {
			for c, w := range []float64{0.01, 0.02, 0.03, 0.04} {
				m.Tensors[tmConvB].Quant.Scale[c] = float32(0.05 * w)
			}
		}},
		{"bias scale one unit in the last place away", func(m *Model) {
			s := &m.Tensors[tmConvB].Quant.Scale[2]
			*s = math.Nextafter32(*s, 1)
		}},
		{"bias scale half the relative tolerance away", func(m *Model) {
			m.Tensors[tmConvB].Quant.Scale[3] *= 1 + biasScaleTolerance/2
		}},
		{"the smallest normal scale", func(m *Model) { m.Tensors[tmDwOut].Quant.Scale[0] = 0x1p-126 }},
		{"per-channel bias shaped [1, 4] along dimension 1", func(m *Model) {
			m.Tensors[tmConvB].Shape = []int{1, 4}
			m.Tensors[tmConvB].Quant.Dim = 1
		}},
		{"per-tensor weights whose quantized dimension points elsewhere", func(m *Model) {
			m.Tensors[11].Quant.Dim = 3
		}},
		{"per-channel FULLY_CONNECTED weights with a per-channel bias", func(m *Model) {
			m.Tensors[19].Quant = &Quant{Scale: []float32{0.01, 0.02, 0.03}, ZeroPoint: []int64{0, 0, 0}}
			m.Tensors[20].Quant = &Quant{Scale: []float32{0.0005, 0.001, 0.0015}, ZeroPoint: []int64{0, 0, 0}}
		}},
		{"softmax output scale within TFLite's 0.1 %", func(m *Model) {
			m.Tensors[23].Quant.Scale[0] = 1.0 / 256 * 1.0009
		}},
		{"maxpool output scale within 1e-6 of its input's", func(m *Model) {
			m.Tensors[10].Quant.Scale[0] += 0.5e-6
		}},
		{"a constant per-channel input of DEQUANTIZE", func(m *Model) {
			m.Tensors = append(m.Tensors,
				Tensor{Name: "w_int8", Type: Int8, Shape: []int{2, 2}, Data: []byte{1, 2, 3, 4},
					Quant: &Quant{Scale: []float32{0.5, 0.25}, ZeroPoint: []int64{0, 0}}},
				Tensor{Name: "w", Type: Float32, Shape: []int{2, 2}})
			n := len(m.Tensors)
			m.Operators = append(m.Operators, Operator{Op: OpDequantize, Version: 2, Inputs: []int{n - 2}, Outputs: []int{n - 1}})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := testModel()
			tc.change(m)
			data, err := m.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if _, err := Load(data); err != nil {
				t.Fatalf("Load: %v", err)
			}
		})
	}
}

func TestLoadRefusesJustPastEachTolerance(t *testing.T) {
	tests := []struct {
		name   string
		change func(m *Model)
		want   string
	}{
		{"bias scale twice the relative tolerance away", func(m *Model) {
			m.Tensors[tmConvB].Quant.Scale[3] *= 1 + 2*biasScaleTolerance
		}, `bias tensor 5 "conv1/bias": scale[3] is 0.0020004`},
		{"the largest denormal scale", func(m *Model) {
			m.Tensors[tmDwOut].Quant.Scale[0] = math.Nextafter32(0x1p-126, 0)
		}, `operator 3 (DEPTHWISE_CONV_2D): output tensor 8 "dw": scale[0] is 1.1754942e-38, a denormal float32`},
		{"softmax output scale 0.11 % away", func(m *Model) {
			m.Tensors[23].Quant.Scale[0] = 1.0 / 256 * 1.0011
		}, `operator 12 (SOFTMAX): output tensor 23 "probabilities": scale 0.0039105467 and zero point -128`},
		{"softmax output zero point -127", func(m *Model) {
			m.Tensors[23].Quant.ZeroPoint[0] = -127
		}, `operator 12 (SOFTMAX): output tensor 23 "probabilities": scale 0.00390625 and zero point -127`},
		{"maxpool output scale 2e-6 away", func(m *Model) {
			m.Tensors[10].Quant.Scale[0] += 2e-6
		}, `operator 5 (MAX_POOL_2D): output tensor 10 "maxpool": scale 0.050002`},
		{"pad output zero point one away", func(m *Model) {
			m.Tensors[3].Quant.ZeroPoint[0] = -2
		}, `operator 1 (PAD): output tensor 3 "pad": scale 0.05 and zero point -2 differ from input tensor 1 "input_int8"`},
		{"per-channel bias with fewer scales than the weights", func(m *Model) {
			m.Tensors[tmConvB].Shape = []int{2, 2}
			m.Tensors[tmConvB].Quant.Scale = []float32{0.0005, 0.001}
			m.Tensors[tmConvB].Quant.ZeroPoint = []int64{0, 0}
		}, `operator 2 (CONV_2D): bias tensor 5 "conv1/bias": 2 scales, but filter tensor 4 "conv1/weights" has 4`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := testModel()
			tc.change(m)
			if err := m.Validate(); err != nil {
				t.Fatalf("Validate refuses the changed model already: %v", err)
			}
			_, err := m.Marshal()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Marshal error:\n  %v\nwant it to contain:\n  %s", err, tc.want)
			}
		})
	}
}

// TestValidateLeavesTheFileRulesToLoadAndMarshal: a model built in memory
// may leave out its bias quantization (the kernels take input × weight
// scales), but it cannot be written, since no file may lack it.
func TestValidateLeavesTheFileRulesToLoadAndMarshal(t *testing.T) {
	m := testModel()
	m.Tensors[tmConvB].Quant = nil
	if err := m.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	_, err := m.Marshal()
	if want := `operator 2 (CONV_2D): bias tensor 5 "conv1/bias": no quantization parameters`; err == nil ||
		!strings.Contains(err.Error(), want) {
		t.Fatalf("Marshal error %v, want one containing %s", err, want)
	}
}

// TestDemoModelLoads loads the model the README's demo runs, written by our
// quantizer: what our own tools write must pass every rule.
func TestDemoModelLoads(t *testing.T) {
	m, err := LoadFile(filepath.Join("..", "configs", "demo", "fashion-resnet8-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Marshal(); err != nil {
		t.Fatalf("Marshal of the loaded demo model: %v", err)
	}
}
