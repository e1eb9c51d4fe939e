package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/modelio"
)

// BenchmarkHeadEmbeddingsResNet50 times the embedding step of
// shortcut-train head: SHORTCUT_BENCH_HEAD_IMAGES (default 1000) 224x224
// JPEGs through a random-weight int8 ResNet-50 224 (random-model's, with
// ImageNet normalization in its metadata), one interpreter per core.
func BenchmarkHeadEmbeddingsResNet50(b *testing.B) {
	n := 1000
	if s := os.Getenv("SHORTCUT_BENCH_HEAD_IMAGES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			b.Fatalf("SHORTCUT_BENCH_HEAD_IMAGES=%q: want a positive count", s)
		}
	}
	hwc := [3]int{224, 224, 3}
	f, err := build.ResNet(build.Config{Depth: 50, Input: hwc, Classes: 1000, Weights: build.RandomWeights(1),
		Meta: resnet.Metadata{Mean: []float32{0.485, 0.456, 0.406}, Std: []float32{0.229, 0.224, 0.225}}})
	if err != nil {
		b.Fatal(err)
	}
	m, err := quant.Model(f, randomCalibration(hwc, 4, 1), quant.Options{})
	if err != nil {
		b.Fatal(err)
	}
	mio, err := modelio.Describe(m)
	if err != nil || mio.Embedding == nil {
		b.Fatalf("the benchmark model has no embedding: %v", err)
	}
	prep, err := newImagePreparer(mio.Input)
	if err != nil {
		b.Fatal(err)
	}
	files := writeNoiseJPEGs(b, b.TempDir(), n, 224, 224)
	b.ResetTimer()
	for b.Loop() {
		if _, err := embedAll(context.Background(), m, *mio.Embedding, prep, files, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N*n), "ms/image")
	b.ReportMetric(float64(n), "images")
}

// writeNoiseJPEGs writes n smooth random h x w JPEGs (quality 90).
func writeNoiseJPEGs(b *testing.B, dir string, n, h, w int) []string {
	r := rand.New(rand.NewPCG(1, 2))
	files := make([]string, n)
	for i := range files {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		base := [3]int{r.IntN(256), r.IntN(256), r.IntN(256)}
		for p := 0; p < len(img.Pix); p += 4 {
			for k := range 3 {
				img.Pix[p+k] = uint8((base[k] + (p/4)%w + r.IntN(32)) % 256)
			}
			img.Pix[p+3] = 255
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
			b.Fatal(err)
		}
		files[i] = filepath.Join(dir, fmt.Sprintf("%05d.jpg", i))
		if err := os.WriteFile(files[i], buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return files
}

// BenchmarkHeadCommand10x100 times the whole command (embeddings, training,
// export, check, write) on 10 classes x 100 Fashion-MNIST PNGs with the demo
// int8 ResNet-8, replace mode.
func BenchmarkHeadCommand10x100(b *testing.B) {
	classes := map[string]int32{}
	for c := range 10 {
		classes[fmt.Sprintf("class%d", c)] = int32(c)
	}
	dir := writeFashionFolder(b, b.TempDir(), "train", 100, classes)
	out := filepath.Join(b.TempDir(), "mine.tflite")
	for b.Loop() {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"head", "--model", demoModel, "--data", "folder:" + dir, "--out", out}, &stdout, &stderr); code != 0 {
			b.Fatalf("exit %d: %s", code, stderr.String())
		}
	}
}
