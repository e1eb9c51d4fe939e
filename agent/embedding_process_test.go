package agent_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet/build"
)

// A classifier .tflite from elsewhere has its scores as its only output. The
// agent takes the features its last FULLY_CONNECTED reads as the embedding,
// says so (--check-model, /healthz) and learns from them, driven from
// outside (issue 16, part 4).
func TestAClassifierWithoutAnEmbeddingOutputCanLearnOnTheDevice(t *testing.T) {
	dir := t.TempDir()
	bin := buildAgent(t, dir)
	m, err := build.ResNet(build.Config{Depth: 8, Input: [3]int{16, 16, 3}, Classes: 3, Weights: build.RandomWeights(5)})
	if err != nil {
		t.Fatal(err)
	}
	m.Outputs = m.Outputs[:1]
	if len(m.Meta.OutputNames) > 1 {
		m.Meta.OutputNames = m.Meta.OutputNames[:1]
	}
	model := filepath.Join(dir, "scores-only.tflite")
	if err := m.WriteFile(model); err != nil {
		t.Fatal(err)
	}
	out, code := runBinary(t, bin, "--check-model", "--model", model)
	if code != 0 || !strings.Contains(out, "from the input of FULLY_CONNECTED") || !strings.Contains(out, "on-device learning available") {
		t.Fatalf("--check-model (exit %d):\n%s\nwant the embedding from the FULLY_CONNECTED input and learning available", code, out)
	}
	imgs := filepath.Join(dir, "imgs")
	if err := os.MkdirAll(imgs, 0o755); err != nil {
		t.Fatal(err)
	}
	writePNGs(t, imgs, 3)
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := startAgentProc(t, bin, dir, addr, fmt.Sprintf(`device: {id: fc}
model: {path: %q, watch: false}
cameras:
  - {id: door, source: "images:%s/*.png?loop=1", fps: 20}
learning: {enabled: true, state_dir: %q}
http: {address: %q}
embedded_broker: {address: "127.0.0.1:%d"}
`, model, imgs, filepath.Join(dir, "state"), addr, freePort(t)))
	waitUntil(t, "a classified frame", func() bool {
		h := p.health(t)
		return len(h.Cameras) == 1 && h.Cameras[0].Frames > 0
	})
	if h := p.health(t); !strings.Contains(h.Embedding, "FULLY_CONNECTED") {
		t.Errorf("/healthz embedding = %q, want the FULLY_CONNECTED input named", h.Embedding)
	}
	for _, cmd := range []struct{ name, body string }{
		{"learn", `{"id":"l1","label":"thing","count":5,"interval_ms":20}`},
		{"train", `{"id":"t1"}`},
	} {
		resp, err := http.Post(p.base+"/api/v1/commands/"+cmd.name, "application/json", strings.NewReader(cmd.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"ok":true`) {
			t.Fatalf("%s answered HTTP %d: %s", cmd.name, resp.StatusCode, b)
		}
	}
}
