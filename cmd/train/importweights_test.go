package main

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/train"
	"github.com/shortcut-edge/shortcut/train/data"
	"github.com/shortcut-edge/shortcut/train/models"
)

// randomTorchvision writes a safetensors file with torchvision's ResNet-50 names and shapes
// (base width w, c input channels, k classes) and random weights; it returns the tensors.
func randomTorchvision(t *testing.T, path string, w, c, k int) map[string]train.NamedTensor {
	t.Helper()
	net, err := models.New(models.Config{Arch: "resnet50", BaseWidth: w, Height: 32, Width: 32, Channels: c, NumClasses: k})
	if err != nil {
		t.Fatal(err)
	}
	names, shapes := train.ExpectedTensorNames(net)
	rng := rand.New(rand.NewPCG(11, 12))
	ts := map[string]train.NamedTensor{}
	var list []train.NamedTensor
	for _, n := range names {
		size := 1
		for _, d := range shapes[n] {
			size *= d
		}
		v := make([]float32, size)
		for i := range v {
			v[i] = float32(0.1 * rng.NormFloat64())
			if strings.HasSuffix(n, "running_var") || strings.HasSuffix(n, "bn1.weight") {
				v[i] = float32(0.5 + rng.Float64())
			}
		}
		nt := train.NamedTensor{Name: n, Shape: shapes[n], Data: v}
		ts[n] = nt
		list = append(list, nt)
	}
	if err := train.WriteSafetensors(path, list, "F32", nil); err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestImportWeightsGivesARunThatExportsAndFineTunes(t *testing.T) {
	needFashion(t)
	dir := t.TempDir()

	// RGB, 1000 classes, imported as is: the export holds the file's weights, folded.
	file := filepath.Join(dir, "rgb.safetensors")
	ts := randomTorchvision(t, file, 8, 3, 1000)
	run := filepath.Join(dir, "rgb-run")
	code, out, stderr := cli("import-weights", "--format", "safetensors", "--in", file, "--arch", "resnet50",
		"--run", run, "--input", "32")
	if code != 0 {
		t.Fatalf("import-weights: exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "1000 classes") || !strings.Contains(out, "--width 8") {
		t.Errorf("import-weights output does not describe the model and the fine-tuning command:\n%s", out)
	}
	exp := filepath.Join(dir, "rgb-export")
	if code, _, stderr := cli("export", "--run", run, "--out", exp); code != 0 {
		t.Fatalf("export of the imported run: exit %d: %s", code, stderr)
	}
	m, err := train.LoadExported(exp)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]float32{}
	for _, name := range []string{"fc.weights", "fc.bias", "conv1.weights", "conv1.bias"} {
		if got[name], _, err = m.Tensor(name); err != nil {
			t.Fatal(err)
		}
	}
	// fully_connected keeps PyTorch's [out, in] layout.
	for _, i := range []int{0, 1, 777, len(ts["fc.weight"].Data) - 1} {
		if got["fc.weights"][i] != ts["fc.weight"].Data[i] {
			t.Errorf("fc.weights[%d] = %g, file has %g", i, got["fc.weights"][i], ts["fc.weight"].Data[i])
		}
	}
	// conv1 [O,I,7,7] -> OHWI, scaled by gamma/sqrt(var+eps); bias beta - mean*scale.
	g, b := ts["bn1.weight"].Data, ts["bn1.bias"].Data
	mu, va := ts["bn1.running_mean"].Data, ts["bn1.running_var"].Data
	w := ts["conv1.weight"].Data
	for _, idx := range [][4]int{{0, 0, 0, 0}, {5, 2, 6, 1}, {7, 1, 3, 4}} {
		o, i, y, x := idx[0], idx[1], idx[2], idx[3]
		s := float64(g[o]) / math.Sqrt(float64(va[o])+1e-5)
		want := float64(w[((o*3+i)*7+y)*7+x]) * s
		if have := float64(got["conv1.weights"][((o*7+y)*7+x)*3+i]); math.Abs(have-want) > 1e-6 {
			t.Errorf("folded conv1 weight o=%d i=%d y=%d x=%d: %g, want %g", o, i, y, x, have, want)
		}
		if have, want := float64(got["conv1.bias"][o]), float64(b[o])-float64(mu[o])*s; math.Abs(have-want) > 1e-6 {
			t.Errorf("folded conv1 bias %d: %g, want %g", o, have, want)
		}
	}

	// Grey, new 10-class head, then fine-tuned on Fashion-MNIST with fit --resume.
	grey := filepath.Join(dir, "grey.safetensors")
	randomTorchvision(t, grey, 8, 1, 1000)
	greyRun := filepath.Join(dir, "grey-run")
	classes := strings.Join(data.FashionMNISTClasses, ",")
	if code, _, stderr := cli("import-weights", "--in", grey, "--run", greyRun, "--input", "28", "--classes", classes,
		"--mean", "0.29", "--std", "0.35"); code == 0 || !strings.Contains(stderr, "--new-head") {
		t.Errorf("10 classes for a 1000-class fc without --new-head: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := cli("import-weights", "--in", grey, "--run", greyRun, "--input", "28", "--classes", classes,
		"--mean", "0.29", "--std", "0.35", "--new-head"); code != 0 {
		t.Fatalf("import-weights --new-head: exit %d: %s", code, stderr)
	}
	code, out, stderr = cli("fit", "--run", greyRun, "--resume", "--arch", "resnet50", "--width", "8", "--data",
		"fashion-mnist", "--recipe", "seed", "--batch", "16", "--max-steps", "2", "--val", "0", "--train-limit", "64",
		"--test-limit", "32", "--quiet")
	if code != 0 {
		t.Fatalf("fit --resume from imported weights: exit %d: %s", code, stderr)
	}
	if value(t, out, "step") != "2" || value(t, out, "input") != "28x28x1" {
		t.Errorf("fine-tuning output:\n%s\nwant step 2 on 28x28x1", out)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no input file", []string{"import-weights", "--run", filepath.Join(dir, "x")}, "--in and --run"},
		{"missing file", []string{"import-weights", "--in", filepath.Join(dir, "nope.safetensors"), "--run", filepath.Join(dir, "y")}, "nope.safetensors"},
		{"wrong architecture", []string{"import-weights", "--in", file, "--arch", "resnet34", "--run", filepath.Join(dir, "z")}, "resnet34"},
		{"bad classes", []string{"import-weights", "--in", file, "--run", filepath.Join(dir, "w"), "--classes", "1"}, "at least 2"},
		{"bad input size", []string{"import-weights", "--in", file, "--run", filepath.Join(dir, "v"), "--input", "3"}, "between 8 and 4096"},
		{"used run", []string{"import-weights", "--in", file, "--run", run}, "already holds checkpoints"},
	} {
		code, _, stderr := cli(tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%s: exit %d, stderr %q; want one error line mentioning %q", tc.name, code, stderr, tc.want)
		}
	}
	code, out, _ = cli("import-weights", "--print-names", "--arch", "resnet50")
	if code != 0 || !strings.Contains(out, "layer4.2.bn3.running_var [2048]") || !strings.Contains(out, "conv1.weight [64 3 7 7]") {
		t.Errorf("--print-names: exit %d, output lacks torchvision names:\n%.300s", code, out)
	}
}
