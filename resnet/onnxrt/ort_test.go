//go:build onnxruntime

package onnxrt_test

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/internal/repo"
	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/interp"
	"github.com/shortcut-edge/shortcut/resnet/onnxrt"
)

// library is the CPU libonnxruntime.so that npm onnxruntime-node ships
// (tools/ort-node, installed by make setup), or $SHORTCUT_ONNXRUNTIME_LIB.
func library(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SHORTCUT_ONNXRUNTIME_LIB"); p != "" {
		return p
	}
	arch := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	rel := "tools/ort-node/node_modules/onnxruntime-node/bin/napi-v6/linux/" + arch + "/libonnxruntime.so.1"
	dir, err := repo.Find(rel)
	if err != nil {
		t.Fatalf("no ONNX Runtime library (%v): make setup installs tools/ort-node, or set SHORTCUT_ONNXRUNTIME_LIB", err)
	}
	return filepath.Join(dir, filepath.Base(rel))
}

func models(t *testing.T) map[string]*resnet.Model {
	t.Helper()
	hwc := [3]int{16, 16, 3}
	f, err := build.ResNet(build.Config{Depth: 20, Input: hwc, Classes: 5, Weights: build.RandomWeights(7)})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	var calib []quant.Sample
	for range 4 {
		calib = append(calib, quant.Sample{normal(r, 16*16*3)})
	}
	q, err := quant.Model(f, calib, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	qio, err := quant.Model(f, calib, quant.Options{IO: quant.Int8IO})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*resnet.Model{"float": f, "int8": q, "int8 with int8 I/O": qio}
}

func normal(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// ONNX Runtime inside the process gives what our kernels give: scores and
// the embedding, float within rounding, int8 within a few output steps
// (ONNX Runtime requantizes in float and rounds half to even; TFLite's
// reference rounds half away from zero).
func TestSessionsAgreeWithOurRuntime(t *testing.T) {
	lib := library(t)
	for name, m := range models(t) {
		t.Run(name, func(t *testing.T) {
			net, err := onnxrt.Load(m, onnxrt.Options{Library: lib, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			s, err := net.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			it, err := interp.New(m, interp.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer it.Close()
			r := rand.New(rand.NewPCG(3, 4))
			for trial := range 3 {
				x := normal(r, len(s.Input()))
				copy(s.Input(), x)
				got, err := s.Run()
				if err != nil {
					t.Fatal(err)
				}
				if err := it.Input(0).SetFloat32(x); err != nil {
					t.Fatal(err)
				}
				if err := it.Invoke(); err != nil {
					t.Fatal(err)
				}
				want, _ := it.Output(0).Floats()
				wantEmb, _ := it.Output(1).Floats()
				sd, ed := maxDiff(got, want), maxDiff(s.Embedding(), wantEmb)
				limit, embLimit := 1e-5, 1e-4*maxAbs(wantEmb)
				if name != "float" {
					_, step := steps(m)
					limit, embLimit = 8*step[0], 8*step[1]
				}
				t.Logf("trial %d: scores differ by %.3g (limit %.3g), embedding by %.3g (limit %.3g)", trial, sd, limit, ed, embLimit)
				if sd > limit || ed > embLimit || len(s.Embedding()) != len(wantEmb) {
					t.Errorf("trial %d: ONNX Runtime and our runtime differ: scores %.3g, embedding %.3g", trial, sd, ed)
				}
			}
		})
	}
}

// steps is the int8 step of output 0 and 1 behind their DEQUANTIZE (or the
// outputs themselves).
func steps(m *resnet.Model) (bool, [2]float64) {
	var s [2]float64
	for k := range 2 {
		o := m.Outputs[k]
		if q := m.Tensors[o].Quant; q != nil && len(q.Scale) == 1 {
			s[k] = float64(q.Scale[0])
		}
		for _, op := range m.Operators {
			if op.Op == resnet.OpDequantize && op.Outputs[0] == o {
				s[k] = float64(m.Tensors[op.Inputs[0]].Quant.Scale[0])
			}
		}
	}
	return true, s
}

func maxDiff(a, b []float32) float64 {
	d := math.Inf(1)
	if len(a) == len(b) {
		d = 0
		for i := range a {
			d = math.Max(d, math.Abs(float64(a[i]-b[i])))
		}
	}
	return d
}

func maxAbs(v []float32) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}

// A provider the library lacks fails at Load, with the provider named: the
// CPU build from npm has no CUDA, so the agent falls back to our kernels.
func TestAProviderTheLibraryLacksIsRefusedAtLoad(t *testing.T) {
	m := models(t)["float"]
	_, err := onnxrt.Load(m, onnxrt.Options{Library: library(t), Provider: onnxrt.CUDA})
	if err == nil || !strings.Contains(err.Error(), "cuda") {
		t.Fatalf("Load with CUDA on a CPU-only library = %v, want an error naming cuda", err)
	}
}

func TestAMissingLibraryIsRefusedWithItsPath(t *testing.T) {
	_, err := onnxrt.Load(models(t)["float"], onnxrt.Options{Library: "/nonexistent/libonnxruntime.so"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/libonnxruntime.so") {
		t.Fatalf("Load = %v, want an error naming the missing library", err)
	}
}
