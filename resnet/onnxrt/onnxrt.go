// Package onnxrt runs our models in ONNX Runtime, the engine Jetson boards
// reach their GPU through (CUDA and TensorRT execution providers), and on any
// CPU. A .tflite is converted in memory by our own exporter (resnet/onnx) and
// run by the libonnxruntime.so the machine has, loaded at run time through
// github.com/yalue/onnxruntime_go.
//
// It is built only with the build tag onnxruntime (like resnet/armnn with
// armnn), so the default binary needs no extra library; without the tag Load
// returns ErrNotBuilt. The agent uses it only when ONNX Runtime agrees with
// our own kernels on a test input (agent/accelerate.go).
package onnxrt

import (
	"errors"
	"fmt"
	"strings"
)

// Provider is an ONNX Runtime execution provider.
type Provider string

const (
	CPU      Provider = "cpu"
	CUDA     Provider = "cuda"
	TensorRT Provider = "tensorrt"
)

// AcceleratorPrefix starts the model.accelerator values this package serves:
// onnxruntime-cpu, onnxruntime-cuda, onnxruntime-tensorrt.
const AcceleratorPrefix = "onnxruntime-"

// ErrNotBuilt is Load's error in a binary built without the onnxruntime tag.
var ErrNotBuilt = errors.New("onnxrt: this binary was built without ONNX Runtime (go build -tags onnxruntime)")

// ParseAccelerator maps a model.accelerator value to a provider: ok is false
// for values that are not ONNX Runtime's (cpu, armnn-*), and an unknown
// onnxruntime-* value is an error.
func ParseAccelerator(s string) (p Provider, ok bool, err error) {
	rest, found := strings.CutPrefix(s, AcceleratorPrefix)
	if !found {
		return "", false, nil
	}
	switch Provider(rest) {
	case CPU, CUDA, TensorRT:
		return Provider(rest), true, nil
	}
	return "", false, fmt.Errorf("onnxrt: accelerator %q: want onnxruntime-cpu, onnxruntime-cuda or onnxruntime-tensorrt", s)
}

// Options configure Load.
type Options struct {
	// Library is the path of libonnxruntime.so (JetPack's on a Jetson; the
	// one npm onnxruntime-node ships on x86). Required.
	Library string
	// Provider picks the execution provider; empty means CPU.
	Provider Provider
	// Threads is ONNX Runtime's intra-op thread count; 0 lets it choose.
	Threads int
	// CacheDir keeps TensorRT's built engines, keyed by the model's sha256
	// (building one takes minutes on a Jetson); empty disables the cache.
	CacheDir string
	// SHA256 names the model in the engine cache.
	SHA256 string
}
