package onnxrt

import "testing"

func TestParseAccelerator(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Provider
		ok   bool
		err  bool
	}{
		{"cpu", "", false, false}, {"armnn-gpu", "", false, false},
		{"onnxruntime-cpu", CPU, true, false}, {"onnxruntime-cuda", CUDA, true, false},
		{"onnxruntime-tensorrt", TensorRT, true, false}, {"onnxruntime-npu", "", false, true},
	} {
		p, ok, err := ParseAccelerator(c.in)
		if p != c.want || ok != c.ok || (err != nil) != c.err {
			t.Errorf("ParseAccelerator(%q) = %q, %v, %v", c.in, p, ok, err)
		}
	}
}
