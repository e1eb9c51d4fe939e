package agent_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// demoModelPath is the model `make run` ships (labels like "T-shirt/top").
func demoModelPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../configs/demo/fashion-resnet8-int8.tflite")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runBinary runs the built binary and returns its output and exit status.
func runBinary(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return string(out), 0
}

// TestTheBinaryChecksTheConfigurationAndItsModelAsTheAgentStarts drives
// shortcut-agent with configuration files as a user writes them: a key
// given twice, and a model.path that is missing, a directory or not a
// model. --check-config lists each with its key and line, beside the
// file's other problems, and the agent, started on the same file, refuses
// with the same words (exit status 2).
func TestTheBinaryChecksTheConfigurationAndItsModelAsTheAgentStarts(t *testing.T) {
	dir := t.TempDir()
	bin := buildAgent(t, dir)
	demo := demoModelPath(t)
	garbage := filepath.Join(dir, "garbage.tflite")
	os.WriteFile(garbage, []byte("PK\x03\x04 not a model"), 0o644)
	write := func(name, yaml string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	conf := func(model, extra string) string {
		return fmt.Sprintf(`device:
  id: kitchen
model:
  path: %s
  watch: false
cameras:
  - {id: front, source: synthetic}
mqtt: {broker: "tcp://127.0.0.1:1"}
http: {address: ""}
learning: {state_dir: %s}
%s`, model, filepath.Join(dir, "state"), extra)
	}

	t.Run("a good file loads its model", func(t *testing.T) {
		out, code := runBinary(t, bin, "--check-config", "-config", write("good.yaml", conf(demo, "")))
		if code != 0 || !strings.Contains(out, "model "+demo+" loads") || !strings.Contains(out, "10 labels") || !strings.Contains(out, "on-device learning available") {
			t.Errorf("--check-config on a good file: status %d\n%s", code, out)
		}
	})

	t.Run("a key given twice is refused with both lines", func(t *testing.T) {
		cfg := write("dup.yaml", conf(demo, "device:\n  id: garage\n")+"mqtt: {qos: 7}\n")
		out, code := runBinary(t, bin, "--check-config", "-config", cfg)
		for _, want := range []string{"device: duplicate key (lines 1 and 11)", "mqtt: duplicate key (lines 8 and 13)"} {
			if code != 2 || !strings.Contains(out, want) {
				t.Errorf("--check-config: status %d, want 2 and %q:\n%s", code, want, out)
			}
		}
		cfg = write("dup2.yaml", strings.Replace(conf(demo, ""), "  id: kitchen\n", "  id: kitchen\n  name: Kitchen\n  id: garage\n", 1))
		if out, code := runBinary(t, bin, "--check-config", "-config", cfg); code != 2 || !strings.Contains(out, "device.id: duplicate key (lines 2 and 4)") {
			t.Errorf("device.id twice: status %d\n%s", code, out)
		}
	})

	for _, tc := range []struct {
		name, model, says string
	}{
		{"a missing model", "/nonexistent/m.tflite", `model.path: line 4: "/nonexistent/m.tflite" does not exist; set model.path to the .tflite model to run`},
		{"a directory", dir, fmt.Sprintf(`model.path: line 4: %q is a directory; set model.path to the .tflite file in it`, dir)},
		{"a file that is no model", garbage, fmt.Sprintf(`model.path: line 4: %q does not load as a model: `, garbage)},
	} {
		t.Run(tc.name+" is named at model.path with its line", func(t *testing.T) {
			cfg := write("m.yaml", conf(tc.model, "decision: {frames: 0}\n"))
			out, code := runBinary(t, bin, "--check-config", "-config", cfg)
			if code != 2 || !strings.Contains(out, tc.says) || !strings.Contains(out, "decision.frames: line 11: is 0") {
				t.Errorf("--check-config: status %d; want 2, %q and the file's other error:\n%s", code, tc.says, out)
			}
			cfg = write("m.yaml", conf(tc.model, ""))
			out, code = runBinary(t, bin, "-config", cfg)
			if code != 2 || !strings.Contains(out, tc.says) || !strings.Contains(out, cfg) {
				t.Errorf("starting the agent: status %d; want 2 and %q naming the file:\n%s", code, tc.says, out)
			}
		})
	}

	t.Run("--check-model on the configuration's model names model.path", func(t *testing.T) {
		out, code := runBinary(t, bin, "--check-model", "-config", write("m.yaml", conf("/nonexistent/m.tflite", "")))
		if code != 1 || !strings.Contains(out, `model.path: line 4: "/nonexistent/m.tflite" does not exist`) {
			t.Errorf("--check-model: status %d; want 1 and model.path with its line:\n%s", code, out)
		}
	})

	t.Run("a model given with --model is named as the flag", func(t *testing.T) {
		out, code := runBinary(t, bin, "--check-config", "-config", write("good.yaml", conf(demo, "")), "--model", "/nonexistent/m.tflite")
		if code != 2 || !strings.Contains(out, `model.path: (from --model) "/nonexistent/m.tflite" does not exist`) {
			t.Errorf("--check-config --model: status %d\n%s", code, out)
		}
	})
}
