package agenttest

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
)

// ModelConfig describes a small real model for tests.
type ModelConfig struct {
	Depth   int // CIFAR layout, 6n+2 (default 8)
	Size    int // square input side (default 16)
	Labels  []string
	Seed    uint64 // random weights
	Version string
	// Mean and Std go into the metadata (default 0.5 and 0.25).
	Mean, Std []float32
	// ImageSize goes into the metadata: [height, width] of the picture
	// area centred in the input, as quantize records for models trained
	// with pad_to (zero: none).
	ImageSize [2]int
}

// WriteModel builds a random-weight ResNet with resnet/build, quantizes it
// to int8 (float inputs and outputs) with quant, and writes it into dir.
// The model has the two outputs the agent uses: class scores and the
// embedding that feeds the classifier. It returns the file's path.
func WriteModel(t testing.TB, dir string, c ModelConfig) string {
	t.Helper()
	if c.Depth == 0 {
		c.Depth = 8
	}
	if c.Size == 0 {
		c.Size = 16
	}
	if c.Mean == nil {
		c.Mean, c.Std = []float32{0.5}, []float32{0.25}
	}
	if c.Version == "" {
		c.Version = "1"
	}
	m, err := build.ResNet(build.Config{Depth: c.Depth, Input: [3]int{c.Size, c.Size, 3}, Classes: len(c.Labels), Weights: build.RandomWeights(c.Seed),
		Meta: resnet.Metadata{Name: "tiny", Version: c.Version, Labels: c.Labels, Mean: c.Mean, Std: c.Std, ImageSize: c.ImageSize}})
	if err != nil {
		t.Fatalf("building the test model: %v", err)
	}
	r := rand.New(rand.NewPCG(c.Seed, 9))
	var samples []quant.Sample
	for range 8 {
		v := make([]float32, c.Size*c.Size*3)
		for j := range v {
			v[j] = float32(r.NormFloat64() * 2)
		}
		samples = append(samples, quant.Sample{v})
	}
	if m, err = quant.Model(m, samples, quant.Options{}); err != nil {
		t.Fatalf("quantizing the test model: %v", err)
	}
	name := fmt.Sprintf("tiny-d%d-s%d-seed%d-v%s", c.Depth, c.Size, c.Seed, c.Version)
	if c.ImageSize != [2]int{} {
		name += fmt.Sprintf("-img%dx%d", c.ImageSize[0], c.ImageSize[1])
	}
	path := filepath.Join(dir, name+".tflite")
	if err := m.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}
