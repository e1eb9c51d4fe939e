//go:build onnxruntime

package agent_test

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/shortcut-edge/shortcut/agent/classify"
)

// BenchmarkInferenceEngines times the agent's inference stage on int8
// ResNet-50 224 (one Session.Run, batch 1) with our kernels and with the
// onnxruntime-cpu accelerator (the CPU library npm ships; on a Jetson,
// onnxruntime-cuda/-tensorrt with JetPack's), in the same run. make bench
// runs it; compare the two lines' ns/op.
func BenchmarkInferenceEngines(b *testing.B) {
	dir := b.TempDir()
	model := filepath.Join(dir, "resnet50-int8.tflite")
	writeResNet50(b, model)
	ours, err := classify.LoadModel(model)
	if err != nil {
		b.Fatal(err)
	}
	lib := onnxRuntimeLibraryPath(b)
	ort, st := classify.Accelerate(ours, classify.AccelOptions{Accelerator: "onnxruntime-cpu", OnnxRuntimeLibrary: lib},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if st.InUse != "onnxruntime-cpu" {
		b.Fatalf("ONNX Runtime not used: %+v", st)
	}
	for _, e := range []struct {
		name string
		c    classify.Classifier
	}{{"ours", ours}, {"onnxruntime-cpu", ort}} {
		b.Run(e.name, func(b *testing.B) {
			s := e.c.NewSession()
			for i := range s.Input() {
				s.Input()[i] = float32(i%13) / 13
			}
			for b.Loop() {
				if _, err := s.Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
