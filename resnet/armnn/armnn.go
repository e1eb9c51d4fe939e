// Package armnn runs .tflite classifiers through Arm NN, Arm's C++ inference
// engine (Debian's 20.08 build), so that arm64 boards can use its NEON
// (CpuAcc) or OpenCL/Mali (GpuAcc) kernels instead of Shortcut's own.
//
// The cgo half is built only with the build tag `armnn`:
//
//	go build -tags armnn ./cmd/agent
//
// and needs libarmnn-dev and libarmnntfliteparser-dev to build, and at run
// time libarmnn22, libarmnntfliteparser22 and a backend package
// (libarmnn-cpuacc-backend22, libarmnn-gpuacc-backend22 on arm64;
// libarmnn-cpuref-backend22 everywhere, for tests). Without the tag Load
// returns ErrNotBuilt, so callers fall back to their own kernels either way.
//
// Arm NN runs in the caller's process, and Debian builds it with assertions
// on: a model it cannot handle may abort the process (SIGABRT) instead of
// throwing. Load therefore first loads and runs the model once in a child
// copy of the running executable (the probe) and reports such a crash as a
// *RefusedError with Aborted set. Set SHORTCUT_ARMNN_PROBE=off to skip the
// probe (for example under qemu-user, where a child arm64 process cannot be
// started without binfmt_misc).
package armnn

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/shortcut-edge/shortcut/resnet"
)

// Accelerator settings (the agent's model.accelerator).
const (
	AccelCPU      = "cpu"       // Shortcut's own kernels
	AccelArmNNCPU = "armnn-cpu" // Arm NN CpuAcc (NEON)
	AccelArmNNGPU = "armnn-gpu" // Arm NN GpuAcc (OpenCL), CpuAcc for layers the GPU lacks
)

// Backends maps an accelerator setting to Arm NN backends, in order of
// preference; nil for "cpu" (and ""). The first must be installed; the
// others take the layers it refuses, when installed. CpuRef is last because
// Arm NN 20.08's CpuAcc refuses int8 MEAN with different input and output
// quantization (every int8 ResNet's global pooling): Arm NN then runs that
// one small layer on CpuRef.
func Backends(accelerator string) ([]string, error) {
	switch accelerator {
	case "", AccelCPU:
		return nil, nil
	case AccelArmNNCPU:
		return []string{"CpuAcc", "CpuRef"}, nil
	case AccelArmNNGPU:
		return []string{"GpuAcc", "CpuAcc", "CpuRef"}, nil
	}
	return nil, fmt.Errorf("accelerator %q is not one of %s, %s, %s", accelerator, AccelCPU, AccelArmNNCPU, AccelArmNNGPU)
}

// ErrNotBuilt is Load's error in a binary built without the armnn tag.
var ErrNotBuilt = errors.New("armnn: this binary was built without Arm NN (rebuild with `-tags armnn` " +
	"after `apt-get install libarmnn-dev libarmnntfliteparser-dev`)")

// ProbeEnv set to "off" makes Load skip the child-process probe.
const ProbeEnv = "SHORTCUT_ARMNN_PROBE"

// RefusedError reports that Arm NN will not run the model on the backends
// asked for: the parser or optimizer rejected it, a backend is not
// installed or has no device, or Arm NN aborted on it in the probe. The
// model may still be valid: run it with Shortcut's own kernels.
type RefusedError struct {
	Backends []string
	Msg      string
	// Aborted: Arm NN failed one of its own assert()s (SIGABRT) in the probe.
	Aborted bool
}

func (e *RefusedError) Error() string {
	how := "refused the model"
	if e.Aborted {
		how = "aborted on the model"
	}
	return fmt.Sprintf("armnn: Arm NN (%s) %s: %s", strings.Join(e.Backends, ","), how, e.Msg)
}

// DType is a tensor's element type.
type DType int

const (
	Float32 DType = iota + 1
	Int8
	Uint8
	Int32
)

func (d DType) String() string {
	switch d {
	case Float32:
		return "FLOAT32"
	case Int8:
		return "INT8"
	case Uint8:
		return "UINT8"
	case Int32:
		return "INT32"
	}
	return fmt.Sprintf("DType(%d)", int(d))
}

// TensorInfo describes one network input or output as Arm NN sees it.
type TensorInfo struct {
	Shape     []int
	Type      DType
	Scale     float32 // quantized types only
	ZeroPoint int32
}

// NumElements is the product of Shape.
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Options configure Load.
type Options struct {
	// Backends in order of preference, e.g. {"CpuAcc", "CpuRef"} (see
	// Backends); {"CpuRef"} alone is Arm NN's slow reference backend
	// (tests). The first must be installed; later ones are skipped when not.
	Backends []string
}

func checkOptions(model []byte, o Options) error {
	if len(o.Backends) == 0 {
		return errors.New("armnn: no backend given (Options.Backends: CpuAcc, GpuAcc or CpuRef)")
	}
	for _, b := range o.Backends {
		if b == "" || strings.ContainsAny(b, ", \t\n") {
			return fmt.Errorf("armnn: backend name %q is not valid", b)
		}
	}
	if len(model) < 8 || string(model[4:8]) != "TFL3" {
		return errors.New("armnn: the model is not a .tflite file (no TFL3 identifier)")
	}
	return nil
}

// Agreement compares the scores of output 0 from Shortcut's runtime (ours)
// and from Arm NN (theirs) for model m. For an int8 model (output 0 int8,
// or float from a DEQUANTIZE) diff is in LSB of that int8 tensor and limit
// follows NOTES.md: 2 LSB for chains, 7 LSB when the model has a SOFTMAX
// (Arm NN's softmax works in float, TFLite's in fixed point); plus 1e-3 for
// float rounding of dequantized values. For a float model diff is absolute
// and limit is 1e-4 * (1 + the largest |score|).
func Agreement(m *resnet.Model, ours, theirs []float32) (diff, limit float64, unit string, err error) {
	if len(ours) != len(theirs) {
		return 0, 0, "", fmt.Errorf("armnn: %d scores from our runtime, %d from Arm NN", len(ours), len(theirs))
	}
	if len(m.Outputs) == 0 {
		return 0, 0, "", errors.New("armnn: the model has no outputs")
	}
	scale, unit := 1.0, "abs"
	if q := m.QuantBehind(m.Outputs[0]); q != nil && len(q.Scale) > 0 && q.Scale[0] > 0 {
		scale, unit = float64(q.Scale[0]), "LSB"
		limit = 2
		for _, op := range m.Operators {
			if op.Op == resnet.OpSoftmax {
				limit = 7
			}
		}
		limit += 1e-3
	}
	big := 0.0
	for i := range ours {
		d := math.Abs(float64(ours[i])-float64(theirs[i])) / scale
		if math.IsNaN(d) {
			return 0, 0, "", fmt.Errorf("armnn: score %d is NaN (ours %v, Arm NN %v)", i, ours[i], theirs[i])
		}
		diff = math.Max(diff, d)
		big = math.Max(big, math.Abs(float64(ours[i])))
	}
	if unit == "abs" {
		limit = 1e-4 * (1 + big)
	}
	return diff, limit, unit, nil
}

// quant is t's per-tensor quantization in the runtime's terms, so that
// sessions convert with resnet.Quant's QuantizeInt8 and DequantizeInt8, the
// same arithmetic as our interpreter's inputs and outputs. A zero scale (a
// float tensor) reads as 1.
func (t TensorInfo) quant() *resnet.Quant {
	scale := t.Scale
	if scale == 0 {
		scale = 1
	}
	return &resnet.Quant{Scale: []float32{scale}, ZeroPoint: []int64{int64(t.ZeroPoint)}}
}
