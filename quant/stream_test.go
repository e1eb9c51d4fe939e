package quant_test

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
)

// generated is a calibration source that makes sample i from a seed into one
// reused buffer: the samples never exist all at once.
func generated(n, size int, seed uint64) quant.SampleFunc {
	buf := make([]float32, size)
	return quant.SampleFunc{N: n, Make: func(i int) (quant.Sample, error) {
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		for k := range buf {
			buf[k] = float32(r.NormFloat64())
		}
		return quant.Sample{buf}, nil
	}}
}

func TestStreamedCalibrationGivesTheModelThatSamplesInMemoryGive(t *testing.T) {
	f, err := quant.FromExport(tinyResNet(3).write(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	src := generated(60, 14*14, 4)
	var all []quant.Sample
	if err := src.Each(func(_ int, s quant.Sample) error {
		all = append(all, quant.Sample{append([]float32(nil), s[0]...)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, o := range []quant.Options{{}, {Method: quant.MSE, BiasCorrection: true}, {Method: quant.Percentile, RefitHead: true}} {
		mem, err := quant.Run(f, all, o)
		if err != nil {
			t.Fatal(err)
		}
		streamed, err := quant.RunSamples(f, src, o)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := mem.Model.Marshal()
		b, _ := streamed.Model.Marshal()
		if !bytes.Equal(a, b) || streamed.Report.Samples != len(all) {
			t.Errorf("%+v: the streamed model (%d bytes, %d samples) differs from the in-memory one (%d bytes)", o, len(b), streamed.Report.Samples, len(a))
		}
	}
}

// TestStreamedCalibrationKeepsMemoryBounded feeds 2,000 generated 64x64x3
// images (96 MB as float32) through a conv net with the percentile method
// (two passes, histograms) and measures the live heap every 100 samples:
// what calibration keeps must stay far below the samples' size.
func TestStreamedCalibrationKeepsMemoryBounded(t *testing.T) {
	const n, h, w, c = 2000, 64, 64, 3
	r := rand.New(rand.NewPCG(2, 2))
	weights := func(k int, std float64) []float32 {
		v := make([]float32, k)
		for i := range v {
			v[i] = float32(r.NormFloat64() * std)
		}
		return v
	}
	g := build.New("stream")
	x := g.Input("x", 1, h, w, c)
	y := g.Conv2D("conv1", x, build.ConvSpec{Out: 8, KH: 3, KW: 3, StrideH: 2, StrideW: 2, Padding: resnet.PaddingSame,
		Act: resnet.ActRelu, Weights: weights(8*3*3*c, 0.3), Bias: weights(8, 0.1)})
	y = g.Conv2D("conv2", y, build.ConvSpec{Out: 16, KH: 3, KW: 3, StrideH: 2, StrideW: 2, Padding: resnet.PaddingSame,
		Act: resnet.ActRelu, Weights: weights(16*3*3*8, 0.2), Bias: weights(16, 0.1)})
	emb := g.SpatialMean("embedding", y, false)
	logits := g.FullyConnected("logits", emb, 10, weights(10*16, 1), weights(10, 0.1), resnet.ActNone)
	g.Output(g.Softmax("scores", logits, 1))
	g.Output(emb)
	m, err := g.Finish()
	if err != nil {
		t.Fatal(err)
	}
	gen := generated(n, h*w*c, 7)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapAlloc, ms.HeapAlloc
	seen := 0
	src := quant.SampleFunc{N: n, Make: func(i int) (quant.Sample, error) {
		if seen++; seen%100 == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
		return gen.Make(i)
	}}
	res, err := quant.RunSamples(m, src, quant.Options{Method: quant.Percentile})
	if err != nil {
		t.Fatal(err)
	}
	if res.Report.Samples != n || seen != 2*n {
		t.Fatalf("report says %d samples, the source made %d; want %d and two passes", res.Report.Samples, seen, n)
	}
	sampleBytes := uint64(n * h * w * c * 4)
	growth := peak - min(base, peak)
	t.Logf("%d samples of %d KiB (%d MiB in all), two passes: live heap grew by at most %d KiB during calibration (%.2f %% of the samples)",
		n, h*w*c*4/1024, sampleBytes>>20, growth>>10, 100*float64(growth)/float64(sampleBytes))
	if growth > sampleBytes/50 {
		t.Errorf("the live heap grew by %d bytes while calibrating; the %d samples take %d, calibration must keep only statistics", growth, n, sampleBytes)
	}
}

// shrinking gives fewer samples on its second pass than on its first.
type shrinking struct{ passes int }

func (s *shrinking) Len() int { return 40 }
func (s *shrinking) Each(fn func(int, quant.Sample) error) error {
	s.passes++
	n := 40
	if s.passes > 1 {
		n = 39
	}
	for i := range n {
		if err := fn(i, quant.Sample{make([]float32, 1000)}); err != nil {
			return err
		}
	}
	return nil
}

func TestASourceThatChangesBetweenPassesIsRefused(t *testing.T) {
	g := build.New("add")
	x := g.Input("x", 1, 1000)
	g.Output(g.Add("y", x, x, resnet.ActNone))
	m, err := g.Finish()
	if err != nil {
		t.Fatal(err)
	}
	_, err = quant.RunSamples(m, &shrinking{}, quant.Options{Method: quant.MSE})
	if err == nil || !strings.Contains(err.Error(), "gave 39 samples on a pass, it promised 40") {
		t.Errorf("a source that lost a sample on its second pass: %v", err)
	}
}
