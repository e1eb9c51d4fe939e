package agent_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/shortcut-edge/shortcut/internal/repo"
)

// onnxRuntimeLibrary is the CPU libonnxruntime.so that npm onnxruntime-node
// ships (tools/ort-node, installed by make setup).
func onnxRuntimeLibrary(t *testing.T) string { return onnxRuntimeLibraryPath(t) }

func onnxRuntimeLibraryPath(t testing.TB) string {
	t.Helper()
	arch := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	rel := "tools/ort-node/node_modules/onnxruntime-node/bin/napi-v6/linux/" + arch + "/libonnxruntime.so.1"
	dir, err := repo.Find(rel)
	if err != nil {
		t.Fatalf("no ONNX Runtime library (%v): make setup installs tools/ort-node", err)
	}
	return filepath.Join(dir, filepath.Base(rel))
}

// The onnxruntime-* accelerators, driven from outside: a binary built with
// -tags onnxruntime runs the demo model in ONNX Runtime (the CPU library npm
// ships here; JetPack's CUDA/TensorRT one on a Jetson), says so in /healthz,
// classifies frames and learns from its embedding; a default binary, a
// missing library or a provider the library lacks fall back to our kernels
// and /healthz says why.
func TestTheONNXRuntimeAcceleratorRunsTheModelOrSaysWhyNot(t *testing.T) {
	dir := t.TempDir()
	plain := buildAgent(t, dir)
	tagged := filepath.Join(dir, "shortcut-agent-onnxruntime")
	if out, err := exec.Command("go", "build", "-tags", "onnxruntime", "-o", tagged, "github.com/shortcut-edge/shortcut/cmd/agent").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags onnxruntime: %v\n%s", err, out)
	}
	lib := onnxRuntimeLibrary(t)
	imgs := filepath.Join(dir, "imgs")
	if err := os.MkdirAll(imgs, 0o755); err != nil {
		t.Fatal(err)
	}
	writePNGs(t, imgs, 3)
	config := func(sub, accel, library string, port int) (string, string) {
		d := filepath.Join(dir, sub)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		return d, fmt.Sprintf(`device: {id: accel}
model: {path: %q, watch: false, accelerator: %s, onnxruntime_library: %q}
cameras:
  - {id: door, source: "images:%s/*.png?loop=1", fps: 20}
learning: {enabled: true, state_dir: %q}
http: {address: %q}
embedded_broker: {address: "127.0.0.1:%d"}
`, demoModelPath(t), accel, library, imgs, filepath.Join(d, "state"), addr, freePort(t))
	}
	for _, tc := range []struct {
		name, bin, accel, library, inUse, reason string
	}{
		{"ONNX Runtime on the CPU", tagged, "onnxruntime-cpu", lib, "onnxruntime-cpu", ""},
		{"a binary built without ONNX Runtime", plain, "onnxruntime-cpu", lib, "cpu", "built without ONNX Runtime"},
		{"a missing library", tagged, "onnxruntime-cpu", "/nonexistent/libonnxruntime.so", "cpu", "/nonexistent/libonnxruntime.so"},
		{"a provider the library lacks", tagged, "onnxruntime-cuda", lib, "cpu", "cuda"},
		// TensorRT is prepared in the background (its engine build takes
		// minutes); npm's CPU library has no TensorRT, so it ends on cpu.
		{"TensorRT, which the library lacks", tagged, "onnxruntime-tensorrt", lib, "cpu", "tensorrt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			d, cfg := config(strings.ReplaceAll(tc.name, " ", "-"), tc.accel, tc.library, port)
			p := startAgentProc(t, tc.bin, d, fmt.Sprintf("127.0.0.1:%d", port), cfg)
			waitUntil(t, "a classified frame and the accelerator prepared", func() bool {
				h := p.health(t)
				return len(h.Cameras) == 1 && h.Cameras[0].Frames > 0 && h.Accelerator != nil && !h.Accelerator.Preparing
			})
			a := p.health(t).Accelerator
			if a == nil || a.Requested != tc.accel || a.InUse != tc.inUse || !strings.Contains(a.Reason, tc.reason) {
				t.Fatalf("/healthz accelerator = %+v, want requested %s, in use %s, a reason containing %q", a, tc.accel, tc.inUse, tc.reason)
			}
			// Learning reads the embedding of whichever engine runs the model.
			resp, err := http.Post(p.base+"/api/v1/commands/learn", "application/json",
				strings.NewReader(`{"id":"l1","label":"thing","count":3,"interval_ms":50}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("learn on %s answered HTTP %d", a.InUse, resp.StatusCode)
			}
		})
	}
}

// A reload (SIGHUP after the model file changed) goes through the same
// accelerator choice: the new model runs in ONNX Runtime too.
func TestAReloadedModelRunsInONNXRuntimeToo(t *testing.T) {
	dir := t.TempDir()
	tagged := filepath.Join(dir, "shortcut-agent-onnxruntime")
	if out, err := exec.Command("go", "build", "-tags", "onnxruntime", "-o", tagged, "github.com/shortcut-edge/shortcut/cmd/agent").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags onnxruntime: %v\n%s", err, out)
	}
	imgs := filepath.Join(dir, "imgs")
	if err := os.MkdirAll(imgs, 0o755); err != nil {
		t.Fatal(err)
	}
	writePNGs(t, imgs, 3)
	model := filepath.Join(dir, "model.tflite")
	demo, err := os.ReadFile(demoModelPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(model, demo, 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := startAgentProc(t, tagged, dir, addr, fmt.Sprintf(`device: {id: reload}
model: {path: %q, watch: false, accelerator: onnxruntime-cpu, onnxruntime_library: %q}
cameras:
  - {id: door, source: "images:%s/*.png?loop=1", fps: 20}
http: {address: %q}
embedded_broker: {address: "127.0.0.1:%d"}
`, model, onnxRuntimeLibrary(t), imgs, addr, freePort(t)))
	waitUntil(t, "the model on ONNX Runtime", func() bool {
		a := p.health(t).Accelerator
		return a != nil && a.InUse == "onnxruntime-cpu"
	})
	first := p.health(t).Model.SHA256
	// Another model (a float ResNet-8): the camera adapts to its input size.
	other, err := os.ReadFile(realModels(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(model+".new", other, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(model+".new", model); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the reloaded model", func() bool { return p.health(t).Model.SHA256 != first })
	if a := p.health(t).Accelerator; a == nil || a.InUse != "onnxruntime-cpu" {
		t.Fatalf("after the reload /healthz accelerator = %+v, want onnxruntime-cpu in use", a)
	}
}
