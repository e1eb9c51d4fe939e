package agent_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/shortcut-edge/shortcut/agent"
)

// buildAgent compiles cmd/agent into dir: the tests below run the real
// binary, as systemd would.
func buildAgent(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "shortcut-agent")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/shortcut-edge/shortcut/cmd/agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go build cmd/agent: %v\n%s", err, out)
	}
	return bin
}

func writePNGs(t *testing.T, dir string, n int) {
	t.Helper()
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, 24, 24))
		for y := 0; y < 24; y++ {
			for x := 0; x < 24; x++ {
				img.SetRGBA(x, y, color.RGBA{uint8(x * 10 * (i + 1)), uint8(y * 10), uint8(i * 80), 255})
			}
		}
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.png", i)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func fileSHA(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestAgentProcess(t *testing.T) {
	dir := t.TempDir()
	bin := buildAgent(t, dir)
	model := realModels(t)[0]

	t.Run("check-config lists every error of a malformed file and exits 2", func(t *testing.T) {
		cfg := filepath.Join(dir, "bad.yaml")
		os.WriteFile(cfg, []byte("cameras:\n  - id: \"a b\"\n    source: nope\nmqtt:\n  qos: 9\n"), 0o644)
		cmd := exec.Command(bin, "--check-config", "-config", cfg)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("exit: %v, want status 2", err)
		}
		for _, p := range []string{"cameras[0].id", "cameras[0].source", "mqtt.qos"} {
			if !strings.Contains(string(out), p) {
				t.Errorf("output does not name %s:\n%s", p, out)
			}
		}
	})

	t.Run("check-model still loads a model without a configuration", func(t *testing.T) {
		out, err := exec.Command(bin, "--model", model, "--check-model").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "3 labels") {
			t.Errorf("--check-model: %v\n%s", err, out)
		}
	})

	t.Run("the last will says offline when the process is killed", func(t *testing.T) {
		broker := startMosquitto(t, 0)
		imgs := filepath.Join(dir, "imgs")
		os.Mkdir(imgs, 0o755)
		writePNGs(t, imgs, 3)
		cfg := filepath.Join(dir, "agent.yaml")
		yaml := fmt.Sprintf(`device: {id: procdev}
model: {path: %q, watch: false}
cameras:
  - {id: door, source: "images:%s/*.png?loop=1", fps: 20}
mqtt: {broker: %q, keepalive: 60s, predictions: {max_rate: 0}}
http: {address: "127.0.0.1:0"}
learning: {state_dir: %q}
log: {level: debug}
`, model, imgs, broker.URL(), filepath.Join(dir, "state"))
		os.WriteFile(cfg, []byte(yaml), 0o644)
		if out, err := exec.Command(bin, "--check-config", "-config", cfg).CombinedOutput(); err != nil {
			t.Fatalf("--check-config on a good file: %v\n%s", err, out)
		}
		sub := subscribe(t, broker.URL(), "shortcut/#")
		var logs bytes.Buffer
		cmd := exec.Command(bin, "-config", cfg)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killed := false
		t.Cleanup(func() {
			if !killed {
				cmd.Process.Kill()
				cmd.Wait()
			}
			if t.Failed() {
				t.Logf("agent log:\n%s", logs.String())
			}
		})
		sub.WaitFor("shortcut/procdev/availability", "online", hasPayload(agent.Online))
		preds := sub.WaitFor("shortcut/procdev/door/prediction", "predictions from the real model", atLeast(2))
		var p agent.Prediction
		if err := json.Unmarshal([]byte(preds[0].Payload), &p); err != nil {
			t.Fatalf("prediction payload is not JSON: %v\n%s", err, preds[0].Payload)
		}
		if p.Device != "procdev" || p.Camera != "door" || p.Seq < 1 || len(p.TopK) != 3 || p.TopK[0].Label != p.Label ||
			p.Model.Name != "tiny" || p.Model.Version != "1" || p.Model.SHA256 != fileSHA(t, model) || p.Score <= 0 || p.Score > 1 ||
			!strings.Contains("cat dog empty", p.Label) || p.LatencyMS.Inference <= 0 {
			t.Errorf("prediction from the real model does not match the documented payload: %+v", p)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		killed = true
		sub.WaitFor("shortcut/procdev/availability", "offline from the last will", func(ms []msg) bool {
			return len(ms) > 0 && ms[len(ms)-1].Payload == agent.Offline
		})
	})
}
