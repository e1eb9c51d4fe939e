//go:build onnxruntime

package classify

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/internal/repo"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/onnxrt"
)

// ortLibrary is the CPU libonnxruntime.so npm onnxruntime-node ships
// (tools/ort-node, installed by make setup).
func ortLibrary(t *testing.T) string {
	t.Helper()
	arch := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	rel := "tools/ort-node/node_modules/onnxruntime-node/bin/napi-v6/linux/" + arch + "/libonnxruntime.so.1"
	dir, err := repo.Find(rel)
	if err != nil {
		t.Fatalf("no ONNX Runtime library (%v): make setup installs tools/ort-node", err)
	}
	return filepath.Join(dir, filepath.Base(rel))
}

// The agreement check refuses ONNX Runtime when it computes something else
// than our kernels: here ONNX Runtime runs a model of other weights (what a
// wrong conversion would give), and the model stays on our kernels with
// the distance in the reason. The same model agrees.
func TestAnEngineThatComputesSomethingElseIsRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(seed uint64) (string, *resnet.Model) {
		m, err := build.ResNet(build.Config{Depth: 8, Input: [3]int{16, 16, 3}, Classes: 5, Weights: build.RandomWeights(seed)})
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "m"+string(rune('0'+seed))+".tflite")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path, m
	}
	pathA, a := write(1)
	_, b := write(2)
	ours, err := LoadModel(pathA)
	if err != nil {
		t.Fatal(err)
	}
	lib := ortLibrary(t)
	for _, tc := range []struct {
		name   string
		theirs *resnet.Model
		refuse bool
	}{
		{"the same model", a, false},
		{"a model of other weights", b, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			net, err := onnxrt.Load(tc.theirs, onnxrt.Options{Library: lib})
			if err != nil {
				t.Fatal(err)
			}
			s, err := net.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			agreement, err := agreeORT(ours.NewSession(), s, a, ours.Info().EmbeddingDim)
			switch {
			case tc.refuse && (err == nil || !strings.Contains(err.Error(), "from ours")):
				t.Fatalf("agreement %q, err %v; want a refusal naming the distance from ours", agreement, err)
			case !tc.refuse && err != nil:
				t.Fatalf("the same model refused: %v", err)
			}
			t.Logf("%s: %s %v", tc.name, agreement, err)
		})
	}
}
