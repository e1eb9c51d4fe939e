package armnn

import (
	"errors"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
)

func TestBackendsMapsEveryAcceleratorSetting(t *testing.T) {
	for _, tc := range []struct {
		accel string
		want  string
		err   string
	}{
		{"", "", ""},
		{"cpu", "", ""},
		{"armnn-cpu", "CpuAcc,CpuRef", ""},
		{"armnn-gpu", "GpuAcc,CpuAcc,CpuRef", ""},
		{"gpu", "", `accelerator "gpu" is not one of cpu, armnn-cpu, armnn-gpu`},
		{"ARMNN-CPU", "", "is not one of"},
	} {
		t.Run(tc.accel, func(t *testing.T) {
			got, err := Backends(tc.accel)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Backends(%q) error = %v, want one containing %q", tc.accel, err, tc.err)
				}
				return
			}
			if err != nil || strings.Join(got, ",") != tc.want {
				t.Fatalf("Backends(%q) = %v, %v; want %q", tc.accel, got, err, tc.want)
			}
		})
	}
}

func TestLoadRejectsBadArgumentsBeforeTouchingArmNN(t *testing.T) {
	model := append([]byte{0, 0, 0, 0}, "TFL3 and more"...)
	for _, tc := range []struct {
		name  string
		model []byte
		o     Options
		want  string
	}{
		{"no backend", model, Options{}, "no backend given"},
		{"backend with a comma", model, Options{Backends: []string{"CpuRef,CpuAcc"}}, `backend name "CpuRef,CpuAcc" is not valid`},
		{"empty backend", model, Options{Backends: []string{""}}, `backend name "" is not valid`},
		{"not a tflite file", []byte("hello, world"), Options{Backends: []string{"CpuRef"}}, "no TFL3 identifier"},
		{"empty file", nil, Options{Backends: []string{"CpuRef"}}, "no TFL3 identifier"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Load(tc.model, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, %v; want an error containing %q", n, err, tc.want)
			}
			if errors.Is(err, ErrNotBuilt) {
				t.Fatalf("Load reported ErrNotBuilt before checking its arguments: %v", err)
			}
		})
	}
}

// agreementModel is x -> FULLY_CONNECTED -> (SOFTMAX) with an int8 output
// of scale 0.5, or a float output behind a DEQUANTIZE.
func agreementModel(softmax, dequantize bool) *resnet.Model {
	m := &resnet.Model{Tensors: []resnet.Tensor{
		{Name: "x", Type: resnet.Int8, Shape: []int{1, 4}, Quant: &resnet.Quant{Scale: []float32{0.5}, ZeroPoint: []int64{0}}},
		{Name: "y", Type: resnet.Int8, Shape: []int{1, 4}, Quant: &resnet.Quant{Scale: []float32{0.5}, ZeroPoint: []int64{0}}},
	}, Inputs: []int{0}, Outputs: []int{1}}
	op := resnet.OpFullyConnected
	if softmax {
		op = resnet.OpSoftmax
	}
	m.Operators = []resnet.Operator{{Op: op, Inputs: []int{0}, Outputs: []int{1}}}
	if dequantize {
		m.Tensors = append(m.Tensors, resnet.Tensor{Name: "f", Type: resnet.Float32, Shape: []int{1, 4}})
		m.Operators = append(m.Operators, resnet.Operator{Op: resnet.OpDequantize, Inputs: []int{1}, Outputs: []int{2}})
		m.Outputs = []int{2}
	}
	return m
}

func TestAgreementMeasuresInLSBBehindTheOutput(t *testing.T) {
	floatModel := &resnet.Model{Tensors: []resnet.Tensor{{Name: "y", Type: resnet.Float32, Shape: []int{1, 3}}}, Outputs: []int{0}}
	for _, tc := range []struct {
		name        string
		m           *resnet.Model
		ours, their []float32
		diff, limit float64
		unit        string
	}{
		{"int8 chain, 2 LSB apart", agreementModel(false, false), []float32{1, 2, 3, 4}, []float32{1, 2, 4, 4}, 2, 2.001, "LSB"},
		{"int8 softmax allows 7 LSB", agreementModel(true, false), []float32{0, 0, 0, 0}, []float32{0, 0, 0, 3.5}, 7, 7.001, "LSB"},
		{"dequantized output uses the scale behind it", agreementModel(false, true), []float32{1, 1, 1, 1}, []float32{1.5, 1, 1, 1}, 1, 2.001, "LSB"},
		{"float model is absolute", floatModel, []float32{10, 0, 0}, []float32{10.0005, 0, 0}, 0.0005, 1e-4 * 11, "abs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, lim, unit, err := Agreement(tc.m, tc.ours, tc.their)
			if err != nil {
				t.Fatal(err)
			}
			if unit != tc.unit || abs(d-tc.diff) > 1e-4 || abs(lim-tc.limit) > 1e-6 {
				t.Fatalf("Agreement = %v %v %s; want %v %v %s", d, lim, unit, tc.diff, tc.limit, tc.unit)
			}
		})
	}
	if _, _, _, err := Agreement(agreementModel(false, false), []float32{1}, []float32{1, 2}); err == nil || !strings.Contains(err.Error(), "1 scores from our runtime, 2 from Arm NN") {
		t.Fatalf("Agreement on different lengths: %v", err)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
