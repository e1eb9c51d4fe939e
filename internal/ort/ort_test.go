package ort

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/internal/npy"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/onnx"
)

func requireORT(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("ONNX Runtime is not installed: %v", err)
	}
}

// tinyModel exports a float ResNet-8 on 8x8 inputs and writes an input.
func tinyModel(t *testing.T) (model, input string) {
	t.Helper()
	m, err := build.ResNet(build.Config{Depth: 8, Input: [3]int{8, 8, 3}, Classes: 3, Weights: build.RandomWeights(1)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := onnx.Export(m, onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	model, input = filepath.Join(dir, "m.onnx"), filepath.Join(dir, "x.npy")
	if err := os.WriteFile(model, b, 0o644); err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 8*8*3)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	if err := npy.Write(input, []int{1, 8, 8, 3}, x); err != nil {
		t.Fatal(err)
	}
	return model, input
}

func TestBenchTimesTheRequestedRunsAndReusesTheSession(t *testing.T) {
	requireORT(t)
	model, input := tinyModel(t)
	r, err := Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.ORTVersion != Version {
		t.Errorf("runner reports onnxruntime-node %q, want %s", r.ORTVersion, Version)
	}
	first, err := r.Bench(model, []string{input}, 2, 1, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Samples) != 5 || first.MsMin <= 0 || first.MsMin > first.MsMedian || first.LoadMs <= 0 {
		t.Errorf("first bench: %d samples, min %v, median %v, load %v; want 5 samples, 0 < min <= median, a load time",
			len(first.Samples), first.MsMin, first.MsMedian, first.LoadMs)
	}
	again, err := r.Bench(model, []string{input}, 2, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Samples) != 3 || again.LoadMs != 0 {
		t.Errorf("second bench on the same session: %d samples, load %v ms; want 3 samples and no load", len(again.Samples), again.LoadMs)
	}
	if got := first.Outputs; len(got) != 2 || got[0].Shape[1] != 3 {
		t.Errorf("outputs %+v; want scores [1 3] and the embedding", got)
	}
}

func TestAFailedJobLeavesTheRunnerUsable(t *testing.T) {
	requireORT(t)
	model, input := tinyModel(t)
	bogus := filepath.Join(t.TempDir(), "bogus.onnx")
	if err := os.WriteFile(bogus, []byte("not a protobuf"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	_, errs, err := Run(context.Background(), []Job{
		{Model: bogus, Inputs: []string{input}},
		{Model: model, Inputs: []string{input, input}},
		{Model: model, Inputs: []string{input}, OutputDir: out},
	})
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] == nil || !strings.Contains(errs[0].Error(), "bogus.onnx") {
		t.Errorf("a file that is not ONNX: %v; want an error naming it", errs[0])
	}
	if errs[1] == nil || !strings.Contains(errs[1].Error(), "1 inputs") {
		t.Errorf("two inputs for a one-input model: %v; want an error saying it has 1 input", errs[1])
	}
	if errs[2] != nil {
		t.Fatalf("a good job after two failed ones: %v", errs[2])
	}
	shape, _, err := npy.Read(filepath.Join(out, "output_1.npy"))
	if err != nil || len(shape) != 2 || shape[1] != 64 {
		t.Errorf("output_1.npy (the embedding): shape %v, %v; want [1 64]", shape, err)
	}
}
