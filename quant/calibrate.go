package quant

import (
	"fmt"
	"math"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

// Range is the real interval a float tensor covered during calibration.
type Range struct{ Min, Max float32 }

// Ranges maps a float model's tensor index to its calibrated range.
type Ranges map[int]Range

// Sample holds one value per model input, each flattened in NHWC order.
type Sample [][]float32

// Calibrate runs the float model on every sample and records the min and max
// of every activation tensor (graph inputs included).
func Calibrate(f *resnet.Model, samples []Sample) (Ranges, error) {
	if len(samples) == 0 {
		return nil, fmt.Errorf("quant: calibration needs at least one sample; pass representative inputs (for example 100 training images)")
	}
	it, err := interp.New(f, interp.Options{KeepAll: true})
	if err != nil {
		return nil, fmt.Errorf("quant: preparing the float model: %w", err)
	}
	r := Ranges{}
	for si, s := range samples {
		if len(s) != it.NumInputs() {
			return nil, fmt.Errorf("quant: calibration sample %d has %d inputs, the model takes %d", si, len(s), it.NumInputs())
		}
		for k, v := range s {
			dst := it.Input(k).Float32()
			if len(dst) != len(v) {
				return nil, fmt.Errorf("quant: calibration sample %d input %d has %d values, the model's input %q takes %d (shape %v)",
					si, k, len(v), it.Input(k).Name, len(dst), it.Input(k).Shape)
			}
			copy(dst, v)
		}
		if err := it.Invoke(); err != nil {
			return nil, fmt.Errorf("quant: running calibration sample %d: %w", si, err)
		}
		for ti := range f.Tensors {
			t := &f.Tensors[ti]
			if t.Data != nil || t.Type != resnet.Float32 {
				continue
			}
			vals := it.TensorByIndex(ti).Float32()
			if len(vals) == 0 {
				continue
			}
			lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
			for i, x := range vals {
				if x != x || math.IsInf(float64(x), 0) {
					return nil, fmt.Errorf("quant: tensor %d %q holds %v at element %d on calibration sample %d; the float model or its input is broken", ti, t.Name, x, i, si)
				}
				lo, hi = min(lo, x), max(hi, x)
			}
			if old, ok := r[ti]; ok {
				lo, hi = min(lo, old.Min), max(hi, old.Max)
			}
			r[ti] = Range{lo, hi}
		}
	}
	return r, nil
}

// Model calibrates and quantizes in one step.
func Model(f *resnet.Model, samples []Sample, o Options) (*resnet.Model, error) {
	r, err := Calibrate(f, samples)
	if err != nil {
		return nil, err
	}
	return Quantize(f, r, o)
}
