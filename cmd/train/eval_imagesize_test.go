package main

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/train/data"
	"github.com/shortcut-edge/shortcut/train/evaluate"
)

// imageSizeModel writes a float ResNet-20 .tflite on 8x8x1 inputs with
// normalization mean 0.25, std 0.5 and, when size is not zero, metadata
// image_size size.
func imageSizeModel(t *testing.T, size [2]int) string {
	t.Helper()
	m, err := build.ResNet(build.Config{Depth: 20, Input: [3]int{8, 8, 1}, Classes: 10, Weights: build.RandomWeights(3),
		Meta: resnet.Metadata{Mean: []float32{0.25}, Std: []float32{0.5}, ImageSize: size}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "m.tflite")
	if err := m.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// mnistDir writes an MNIST-layout test split of n images of h x w, every
// pixel of image i being 100+i.
func mnistDir(t *testing.T, h, w, n int) string {
	t.Helper()
	dir := t.TempDir()
	px := make([]uint8, n*h*w)
	labels := make([]int32, n)
	for i := range n {
		for k := range h * w {
			px[i*h*w+k] = uint8(100 + i)
		}
		labels[i] = int32(i % 10)
	}
	if err := data.WriteIDX(filepath.Join(dir, "t10k-images-idx3-ubyte"), filepath.Join(dir, "t10k-labels-idx1-ubyte"), h, w, px, labels); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestEvalUsesTheImageSizeOfATFLite: a .tflite whose metadata says
// image_size [6, 6] in its 8x8 input is scored on 6x6 images padded, centred,
// with black (pixel 0: -mean/std after normalization) to 8x8, with no
// guessing: 7x7 images, which the guess for files without image_size would
// pad as well, are refused.
func TestEvalUsesTheImageSizeOfATFLite(t *testing.T) {
	path := imageSizeModel(t, [2]int{6, 6})
	_, spec, err := evaluate.LoadModel(path, "tflite")
	if err != nil {
		t.Fatal(err)
	}
	if spec.ImageH != 6 || spec.ImageW != 6 || spec.PadTo != 8 {
		t.Fatalf("spec from a .tflite with image_size [6, 6]: images %dx%d pad_to %d, want 6x6 and 8", spec.ImageH, spec.ImageW, spec.PadTo)
	}
	six := mnistDir(t, 6, 6, 3)
	s := *spec
	d, err := evaluate.LoadSplit("mnist:"+six, "test", 1, &s)
	if err != nil {
		t.Fatal(err)
	}
	border, inside := (0-float32(0.25))/0.5, (float32(100)/255-0.25)/0.5
	err = evaluate.ForEachImage(context.Background(), d.Head(1), s, func(_ int, x []float32, _ int) error {
		if len(x) != 64 {
			t.Fatalf("input of %d values, want 8x8", len(x))
		}
		for y := range 8 {
			for xx := range 8 {
				want, tol := border, 0.0 // the border exactly
				if y >= 1 && y < 7 && xx >= 1 && xx < 7 {
					want, tol = inside, 1e-6
				}
				if got := x[y*8+xx]; math.Abs(float64(got-want)) > tol {
					t.Errorf("input (%d,%d) = %g, want %g", y, xx, got, want)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	seven := mnistDir(t, 7, 7, 3)
	s = *spec
	if _, err := evaluate.LoadSplit("mnist:"+seven, "test", 1, &s); err == nil || !strings.Contains(err.Error(), "are 7x7, the model takes 6x6 images") {
		t.Errorf("7x7 images for a model trained on 6x6: %v, want a size error", err)
	}
	if code, out, errOut := cli("eval", "--model", path, "--data", "mnist:"+six, "--layers", "0"); code != 0 {
		t.Errorf("eval of the model with image_size: exit %d: %s %s", code, out, errOut)
	}

	// A .tflite without image_size keeps the guess: smaller images are
	// padded, centred, to its square input.
	bare := imageSizeModel(t, [2]int{})
	_, spec, err = evaluate.LoadModel(bare, "tflite")
	if err != nil {
		t.Fatal(err)
	}
	if spec.ImageH != 0 || spec.PadTo != 0 {
		t.Fatalf("spec from a .tflite without image_size: images %dx%d pad_to %d, want none yet", spec.ImageH, spec.ImageW, spec.PadTo)
	}
	if _, err := evaluate.LoadSplit("mnist:"+seven, "test", 1, spec); err != nil || spec.ImageH != 7 || spec.PadTo != 8 {
		t.Errorf("guess for 7x7 images in a bare 8x8 model: %v, images %dx%d pad_to %d", err, spec.ImageH, spec.ImageW, spec.PadTo)
	}
}

func TestPadToForMatchesHowTrainingPads(t *testing.T) {
	cases := []struct {
		ih, iw, h, w int
		padTo        int
		ok           bool
	}{
		{28, 28, 32, 32, 32, true},
		{28, 28, 28, 28, 0, true},
		{28, 40, 32, 40, 32, true},
		{40, 28, 40, 32, 32, true},
		{28, 28, 32, 40, 32, false}, // both sides padded, to different sizes
		{30, 28, 32, 32, 32, true},
	}
	for _, tc := range cases {
		padTo, ok := evaluate.PadToFor(tc.ih, tc.iw, tc.h, tc.w)
		if ok != tc.ok || (ok && padTo != tc.padTo) {
			t.Errorf("%dx%d in %dx%d: pad_to %d ok %v, want %d %v", tc.ih, tc.iw, tc.h, tc.w, padTo, ok, tc.padTo, tc.ok)
		}
		if !ok {
			continue
		}
		if h, w := data.OutputSize(&data.Dataset{Height: tc.ih, Width: tc.iw}, data.BatchOptions{PadTo: padTo}); h != tc.h || w != tc.w {
			t.Errorf("%dx%d padded to %d gives %dx%d, not %dx%d", tc.ih, tc.iw, padTo, h, w, tc.h, tc.w)
		}
	}
}
