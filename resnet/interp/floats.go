package interp

import (
	"fmt"

	"github.com/shortcut-edge/shortcut/resnet"
)

// SetFloat32 fills the tensor with real values: copied into a FLOAT32 tensor,
// quantized with its per-tensor parameters into an INT8 one. It is how every
// caller feeds a model input, so that a float model and its int8 twin take the
// same normalized image. No allocation.
func (t *Tensor) SetFloat32(src []float32) error {
	if len(src) != t.NumElements() {
		return fmt.Errorf("tensor %q (shape %v) takes %d values, got %d", t.Name, t.Shape, t.NumElements(), len(src))
	}
	switch t.Type {
	case resnet.Float32:
		copy(t.Float32(), src)
	case resnet.Int8:
		if !t.Quant.QuantizeInt8(t.Int8(), src) {
			return fmt.Errorf("tensor %q is INT8 without per-tensor quantization; cannot quantize real values into it", t.Name)
		}
	default:
		return fmt.Errorf("tensor %q has type %v; real values go into FLOAT32 or INT8 tensors", t.Name, t.Type)
	}
	return nil
}

// ReadFloat32 writes the tensor's real values into dst, which must hold
// NumElements values: a copy of a FLOAT32 tensor, or an INT8 tensor
// dequantized with its per-tensor parameters. It returns dst[:NumElements()].
// No allocation.
func (t *Tensor) ReadFloat32(dst []float32) ([]float32, error) {
	n := t.NumElements()
	if len(dst) < n {
		return nil, fmt.Errorf("tensor %q (shape %v) has %d values, the buffer holds %d", t.Name, t.Shape, n, len(dst))
	}
	dst = dst[:n]
	switch t.Type {
	case resnet.Float32:
		copy(dst, t.Float32())
	case resnet.Int8:
		if !t.Quant.DequantizeInt8(dst, t.Int8()) {
			return nil, fmt.Errorf("tensor %q is INT8 without per-tensor quantization; cannot read it as real values", t.Name)
		}
	default:
		return nil, fmt.Errorf("tensor %q has type %v; only FLOAT32 and INT8 tensors read as real values", t.Name, t.Type)
	}
	return dst, nil
}

// Floats returns the tensor's real values in a new slice (see ReadFloat32).
func (t *Tensor) Floats() ([]float32, error) {
	return t.ReadFloat32(make([]float32, t.NumElements()))
}
