package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/train"
	"github.com/shortcut-edge/shortcut/train/data"
)

// tinyFit are fit flags for a run of about a second on the CPU: ResNet-8 of width 4 on the first
// 300 real Fashion-MNIST images shrunk to 14x14.
var tinyFit = []string{"--arch", "resnet8", "--width", "4", "--recipe", "seed", "--lr", "3e-3", "--epochs", "1",
	"--train-limit", "300", "--test-limit", "100", "--downsample", "2", "--workers", "2", "--quiet"}

func needFashion(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(data.FashionMNISTDir, "train-images-idx3-ubyte.gz")); err != nil {
		t.Fatalf("Fashion-MNIST is needed (apt-get install dataset-fashion-mnist): %v", err)
	}
}

// value returns the value of key=value in the command output.
func value(t *testing.T, out, key string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)(?:^|\s)` + regexp.QuoteMeta(key) + `=(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output has no %s=...:\n%s", key, out)
	}
	return m[1]
}

func isPNG(t *testing.T, path string) (w, h int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", path, err)
	}
	return img.Bounds().Dx(), img.Bounds().Dy()
}

func TestFitResumeAndExportMakeAUsableRun(t *testing.T) {
	needFashion(t)
	run := filepath.Join(t.TempDir(), "run")
	code, out, stderr := cli(append([]string{"fit", "--run", run}, tinyFit...)...)
	if code != 0 {
		t.Fatalf("fit: exit %d: %s", code, stderr)
	}
	if acc, err := strconv.ParseFloat(value(t, out, "test_acc"), 64); err != nil || acc < 0 || acc > 1 {
		t.Errorf("test_acc=%s is not an accuracy", value(t, out, "test_acc"))
	}
	if value(t, out, "input") != "14x14x1" || value(t, out, "step") != "4" {
		t.Errorf("fit output does not describe 1 epoch of 270 images in batches of 64 on 14x14x1:\n%s", out)
	}
	for _, p := range []string{"metrics.csv", "curves.png", "best"} {
		if _, err := os.Stat(filepath.Join(run, p)); err != nil {
			t.Errorf("run directory lacks %s: %v", p, err)
		}
	}
	if ck, _ := filepath.Glob(filepath.Join(run, "checkpoint-*.json")); len(ck) == 0 {
		t.Error("run directory holds no checkpoint")
	}
	isPNG(t, filepath.Join(run, "curves.png"))

	// The same directory again without --resume is refused; with it, a second epoch follows.
	if code, _, stderr := cli(append([]string{"fit", "--run", run}, tinyFit...)...); code == 0 || !strings.Contains(stderr, "--resume") {
		t.Errorf("fit into a used run directory: exit %d, stderr %q; want a refusal naming --resume", code, stderr)
	}
	args := append([]string{"fit", "--run", run, "--resume"}, tinyFit...)
	args = append(args, "--epochs", "2") // the later flag wins
	if code, out, stderr = cli(args...); code != 0 {
		t.Fatalf("fit --resume: exit %d: %s", code, stderr)
	}
	rows, err := train.ReadCSV(filepath.Join(run, "metrics.csv"))
	if err != nil || len(rows) != 2 || rows[1].Step != 8 || value(t, out, "epoch") != "2" {
		t.Errorf("after --resume --epochs 2: %d metrics rows (err %v), output\n%s\nwant epoch 2 ending at step 8", len(rows), err, out)
	}

	exp := filepath.Join(t.TempDir(), "export")
	code, out, stderr = cli("export", "--run", run, "--out", exp)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	m, err := train.LoadExported(exp)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Manifest.Input.Shape; len(got) != 4 || got[1] != 14 || got[3] != 1 || len(m.Manifest.Classes) != 10 {
		t.Errorf("exported input %v with %d classes, want [1 14 14 1] and 10", got, len(m.Manifest.Classes))
	}
	if value(t, out, "manifest") != filepath.Join(exp, "model.json") {
		t.Errorf("export output does not name the manifest:\n%s", out)
	}
	logits, err := m.Run(make([]float32, 14*14))
	if err != nil || len(logits) != 10 {
		t.Errorf("exported model run: %d logits, err %v", len(logits), err)
	}
}

func TestTrainingCommandsRejectBadFlagsInOneLine(t *testing.T) {
	needFashion(t)
	used := filepath.Join(t.TempDir(), "used")
	if err := os.MkdirAll(used, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(used, "checkpoint-n0000000-x.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"every invalid setting at once", []string{"fit", "--epochs", "-1", "--batch", "-3", "--optimizer", "rmsprop",
			"--schedule", "weird", "--label-smoothing", "1.5", "--lr", "-1"},
			[]string{"epochs:", "batch:", "optimizer:", "schedule:", "label-smoothing:", "lr:"}},
		{"bad validation fraction", []string{"fit", "--val", "1.5"}, []string{"--val"}},
		{"bad milestones", []string{"fit", "--milestones", "0.5,x"}, []string{"--milestones", `"x"`}},
		{"unknown recipe", []string{"fit", "--recipe", "magic"}, []string{"magic", "paper"}},
		{"unknown data format", []string{"fit", "--data", "imagenet:/data"}, []string{"imagenet", "cifar10"}},
		{"missing plugin", []string{"fit", "--backend", "xla:/nonexistent/xla_cuda_plugin.so", "--train-limit", "100"},
			[]string{"/nonexistent/xla_cuda_plugin.so", "not found"}},
		{"unknown backend", []string{"fit", "--backend", "tpu", "--train-limit", "100"}, []string{"tpu", "cpu"}},
		{"resume without run", []string{"fit", "--resume"}, []string{"resume"}},
		{"used run directory", append([]string{"fit", "--run", used}, tinyFit...), []string{used, "--resume"}},
		{"unknown flag", []string{"fit", "--epoch", "3"}, []string{"-epoch"}},
		{"stray argument", []string{"fit", "resnet20"}, []string{"resnet20"}},
		{"export without run", []string{"export", "--out", "x"}, []string{"--run and --out"}},
		{"export of an empty directory", []string{"export", "--run", t.TempDir(), "--out", filepath.Join(t.TempDir(), "o")},
			[]string{"no checkpoint"}},
		{"bench with bad input", []string{"bench-train", "--input", "32,32"}, []string{"H,W,C"}},
		{"bench of an unknown arch", []string{"bench-train", "--arch", "resnet21", "--steps", "1"}, []string{"resnet21"}},
	} {
		code, _, stderr := cli(tc.args...)
		if code == 0 {
			t.Errorf("%s: exit code 0, want non-zero", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr %q does not mention %q", tc.name, stderr, w)
			}
		}
		// flag's own errors print the usage after the message; ours are one line.
		if tc.name != "unknown flag" && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%s: error is not one line: %q", tc.name, stderr)
		}
	}
}

func TestFitHelpDocumentsEveryFlag(t *testing.T) {
	code, _, _ := cli("fit", "-h")
	if code != 0 {
		t.Errorf("fit -h: exit %d, want 0", code)
	}
	fs := newFlags("fit")
	addFitFlags(fs)
	var missing []string
	for _, name := range []string{"data", "width", "recipe", "epochs", "batch", "lr", "schedule", "warmup",
		"label-smoothing", "val", "backend", "ops", "resume", "checkpoint-every", "max-steps", "weight-decay"} {
		if f := fs.Lookup(name); f == nil || f.Usage == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		t.Errorf("fit flags without documentation: %v", missing)
	}
}

func TestBenchTrainPrintsImagesPerSecondLast(t *testing.T) {
	code, out, stderr := cli("bench-train", "--arch", "resnet8", "--width", "4", "--batch", "8", "--input", "14,14,1",
		"--steps", "2", "--warmup", "1", "--backend", "cpu")
	if code != 0 {
		t.Fatalf("bench-train: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !regexp.MustCompile(`^img_per_s=[0-9]+\.[0-9]$`).MatchString(lines[len(lines)-1]) {
		t.Errorf("last line %q is not img_per_s=<number>", lines[len(lines)-1])
	}
	if v, err := strconv.ParseFloat(value(t, out, "img_per_s"), 64); err != nil || v <= 0 {
		t.Errorf("img_per_s=%s is not a positive rate", value(t, out, "img_per_s"))
	}
}
