package interp_test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

var (
	resnet50Once  sync.Once
	resnet50Model *resnet.Model
	resnet50Err   error
)

// resnet50 is an int8 ResNet-50 at 224x224 with random weights, calibrated
// on one random image: the shapes and arithmetic of the real thing.
func resnet50() (*resnet.Model, error) {
	resnet50Once.Do(func() {
		hwc := [3]int{224, 224, 3}
		f, err := build.ResNet(build.Config{Depth: 50, Input: hwc, Classes: 1000, Weights: build.RandomWeights(50)})
		if err != nil {
			resnet50Err = err
			return
		}
		r := rand.New(rand.NewPCG(50, 50))
		img := make([]float32, hwc[0]*hwc[1]*hwc[2])
		for i := range img {
			img[i] = float32(r.NormFloat64())
		}
		resnet50Model, resnet50Err = quant.Model(f, []quant.Sample{{img}}, quant.Options{})
	})
	return resnet50Model, resnet50Err
}

// peakMACsPerCycle is one core's multiply-accumulates per cycle for a
// kernel path, from its instruction and this CPU's execution units:
// VPDPBUSD zmm does 64 MACs, ymm 32; AVX2's VPMADDWD ymm 16. Units is the
// number of pipes that issue it each cycle (SHORTCUT_BENCH_UNITS, default 2:
// Zen 4/5 and Intel cores since Ice Lake have two for the VNNI forms).
func peakMACsPerCycle(kernels string, units float64) float64 {
	switch kernels {
	case "avx512vnni":
		return 64 * units
	case "avxvnni":
		return 32 * units
	case "avx2":
		return 16 * units
	case "neondot":
		return 16 * units // SDOT .4S: 16 MACs
	case "neon":
		return 8 * units // SMULL .8H: 8 products
	}
	return 0
}

// cpuGHz reads the clock from SHORTCUT_BENCH_GHZ, else /proc/cpuinfo
// (Linux), else 0 (unknown).
func cpuGHz() float64 {
	if v, err := strconv.ParseFloat(os.Getenv("SHORTCUT_BENCH_GHZ"), 64); err == nil {
		return v
	}
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "cpu MHz" {
			if mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return mhz / 1e3
			}
		}
	}
	return 0
}

// BenchmarkResNet50 times one int8 ResNet-50 224x224 inference on every
// fast kernel path this CPU runs, with 1 and 2 threads, and reports
// ms/inference, GMAC/s and the share of the path's peak: for avx512vnni
// the VPDPBUSD rate measured on this core (fast.DotPeak) times threads,
// for the others threads x GHz x MACs per cycle (peakMACsPerCycle). Building and calibrating the model
// takes a while before the first result. Run it with
//
//	go test -run '^$' -bench ResNet50 -benchtime 20x ./resnet/interp/
func BenchmarkResNet50(b *testing.B) {
	m, err := resnet50()
	if err != nil {
		b.Fatal(err)
	}
	units := 2.0
	if v, err := strconv.ParseFloat(os.Getenv("SHORTCUT_BENCH_UNITS"), 64); err == nil {
		units = v
	}
	ghz := cpuGHz()
	dot := fast.DotPeak()
	for _, kernels := range []string{"avx512vnni", "avxvnni", "avx2", "neondot", "neon", "go"} {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("kernels=%s/threads=%d", kernels, threads), func(b *testing.B) {
				it, err := interp.New(m, interp.Options{Threads: threads, Kernels: kernels})
				if err != nil {
					b.Skipf("this CPU cannot run kernels %q: %v", kernels, err)
				}
				defer it.Close()
				if err := it.Invoke(); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					it.Invoke()
				}
				sec := b.Elapsed().Seconds() / float64(b.N)
				gmacs := float64(it.MACs()) / sec / 1e9
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(sec*1e3, "ms/inference")
				b.ReportMetric(gmacs, "GMAC/s")
				peak := peakMACsPerCycle(kernels, units) * ghz * float64(threads)
				if kernels == "avx512vnni" && dot > 0 {
					peak = dot * float64(threads)
				}
				if peak > 0 {
					b.ReportMetric(100*gmacs/peak, "%peak")
				}
			})
		}
	}
}
