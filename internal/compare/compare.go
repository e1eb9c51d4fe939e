// Package compare holds what the tests that hold our runtime to other
// runtimes (TFLite, Arm NN) share: tensor contents as float64, and sizes.
package compare

import "math"

// Floats returns a tensor's values ([]float32 or []int8) as float64; nil for
// other types.
func Floats(v any) []float64 {
	switch x := v.(type) {
	case []float32:
		o := make([]float64, len(x))
		for i, f := range x {
			o[i] = float64(f)
		}
		return o
	case []int8:
		o := make([]float64, len(x))
		for i, f := range x {
			o[i] = float64(f)
		}
		return o
	}
	return nil
}

// MaxAbs is the largest magnitude in v (0 for an empty v).
func MaxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}
