package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/train"
	"github.com/shortcut-edge/shortcut/train/models"
	"github.com/shortcut-edge/shortcut/train/pth/pthtest"
)

// torchvisionPTH writes a ResNet-18 state dict with torchvision's names (base width 8, 10
// classes) as torch.save lays it out, and the same numbers as safetensors.
func torchvisionPTH(t *testing.T, dir string) (pth, safetensors string) {
	t.Helper()
	net, err := models.New(models.Config{Arch: "resnet18", BaseWidth: 8, Height: 32, Width: 32, Channels: 3, NumClasses: 10})
	if err != nil {
		t.Fatal(err)
	}
	names, shapes := train.ExpectedTensorNames(net)
	rng := rand.New(rand.NewPCG(5, 6))
	f := &pthtest.File{Metadata: true}
	var list []train.NamedTensor
	for _, n := range names {
		size := 1
		for _, d := range shapes[n] {
			size *= d
		}
		v := make([]float32, size)
		for i := range v {
			v[i] = float32(0.1 * rng.NormFloat64())
			if strings.HasSuffix(n, "running_var") {
				v[i] = float32(0.5 + rng.Float64())
			}
		}
		list = append(list, train.NamedTensor{Name: n, Shape: shapes[n], Data: v})
		f.Storages = append(f.Storages, pthtest.Storage{Class: "FloatStorage", Data: pthtest.Float32s(v)})
		f.Entries = append(f.Entries, pthtest.Entry{Name: n, Storage: len(f.Storages) - 1, Shape: shapes[n]})
	}
	b, err := f.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	pth, safetensors = filepath.Join(dir, "resnet18.pth"), filepath.Join(dir, "resnet18.safetensors")
	if err := os.WriteFile(pth, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := train.WriteSafetensors(safetensors, list, "F32", nil); err != nil {
		t.Fatal(err)
	}
	return pth, safetensors
}

func TestImportWeightsTellsTheFormatFromTheContent(t *testing.T) {
	dir := t.TempDir()
	pth, st := torchvisionPTH(t, dir)
	// The name says nothing: what decides is the content.
	anon := filepath.Join(dir, "weights.bin")
	if b, err := os.ReadFile(pth); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(anon, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file, format, want string
	}{
		{pth, "", "(pth)"},
		{anon, "auto", "(pth)"},
		{pth, "pth", "(pth)"},
		{st, "", "(safetensors)"},
		{st, "safetensors", "(safetensors)"},
	} {
		args := []string{"import-weights", "--in", tc.file, "--arch", "resnet18", "--input", "32",
			"--run", filepath.Join(t.TempDir(), "run")}
		if tc.format != "" {
			args = append(args, "--format", tc.format)
		}
		code, out, stderr := cli(args...)
		if code != 0 || !strings.Contains(out, tc.want) || !strings.Contains(out, "10 classes") {
			t.Errorf("%s --format %q: exit %d, stdout %q, stderr %q; want %s", filepath.Base(tc.file), tc.format, code, out, stderr, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a .pth forced as safetensors", []string{"--in", pth, "--format", "safetensors"}, "--format safetensors, but the file is a torch.save zip"},
		{"safetensors forced as .pth", []string{"--in", st, "--format", "pth"}, "--format pth, but the file is safetensors"},
		{"an unknown format", []string{"--in", pth, "--format", "h5"}, `format "h5" is not supported; use auto, safetensors or pth`},
		{"neither format", []string{"--in", filepath.Join("importweights.go")}, "neither safetensors"},
	} {
		args := append([]string{"import-weights", "--arch", "resnet18", "--input", "32", "--run", filepath.Join(t.TempDir(), "run")}, tc.args...)
		code, _, stderr := cli(args...)
		if code == 0 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%s: exit %d, stderr %q; want one error line mentioning %q", tc.name, code, stderr, tc.want)
		}
	}
}
