package interp_test

import (
	"math/rand/v2"
	"testing"

	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
)

// int8ResNet is build.ResNet of the given depth with random weights (seed)
// for hwc images, quantized by quant.Model on two images from sample,
// which draws images of normal noise from r.
func int8ResNet(t *testing.T, depth int, hwc [3]int, seed uint64, r *rand.Rand) (m *resnet.Model, sample func() []float32) {
	t.Helper()
	f, err := build.ResNet(build.Config{Depth: depth, Input: hwc, Classes: 10, Weights: build.RandomWeights(seed)})
	if err != nil {
		t.Fatal(err)
	}
	sample = func() []float32 {
		v := make([]float32, hwc[0]*hwc[1]*hwc[2])
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	m, err = quant.Model(f, []quant.Sample{{sample()}, {sample()}}, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return m, sample
}
