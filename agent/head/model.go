package head

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/shortcut-edge/shortcut/resnet"
)

// classifierSite locates a model's classifier: the FULLY_CONNECTED whose
// output feeds the SOFTMAX that produces a graph output.
type classifierSite struct {
	fc, softmax          int // operator indices
	input, weights, bias int // tensor indices (bias -1 when absent)
	logits               int // FC output tensor
	classes, dim         int
}

// findClassifier finds the classifier in m, refusing graphs where the
// logits go anywhere but a SOFTMAX (Export could not resize them).
func findClassifier(m *resnet.Model) (classifierSite, error) {
	var s classifierSite
	if m == nil {
		return s, fmt.Errorf("head: nil model")
	}
	if err := m.Validate(); err != nil {
		return s, fmt.Errorf("head: %w", err)
	}
	producer := make(map[int]int, len(m.Operators))
	for i, op := range m.Operators {
		for _, t := range op.Outputs {
			producer[t] = i
		}
	}
	found := 0
	for i, op := range m.Operators {
		if op.Op != resnet.OpSoftmax || len(op.Inputs) != 1 {
			continue
		}
		p, ok := producer[op.Inputs[0]]
		if !ok || m.Operators[p].Op != resnet.OpFullyConnected {
			continue
		}
		found++
		fc := m.Operators[p]
		s = classifierSite{fc: p, softmax: i, input: fc.Inputs[0], weights: fc.Inputs[1], bias: -1, logits: fc.Outputs[0]}
		if len(fc.Inputs) > 2 {
			s.bias = fc.Inputs[2]
		}
	}
	switch found {
	case 0:
		return s, fmt.Errorf("head: model %q has no FULLY_CONNECTED feeding a SOFTMAX; cannot find its classifier", m.Description)
	case 1:
	default:
		return s, fmt.Errorf("head: model %q has %d FULLY_CONNECTED -> SOFTMAX pairs; want exactly one classifier", m.Description, found)
	}
	wt := &m.Tensors[s.weights]
	if len(wt.Shape) != 2 || len(wt.Data) == 0 {
		return s, fmt.Errorf("head: classifier weights tensor %d %q has shape %v; want a constant [classes, width]", s.weights, wt.Name, wt.Shape)
	}
	s.classes, s.dim = wt.Shape[0], wt.Shape[1]
	for _, op := range m.Operators {
		for _, t := range op.Inputs {
			if t == s.logits && op.Op != resnet.OpSoftmax {
				return s, fmt.Errorf("head: the logits tensor %d %q also feeds %v; only a SOFTMAX may read it", s.logits, m.Tensors[s.logits].Name, op.Op)
			}
		}
	}
	return s, nil
}

// FromModel returns the model's own classifier as a Head: the weights and
// bias of the FULLY_CONNECTED feeding the SOFTMAX, dequantized when the
// model is int8 (per-tensor or per-channel weight scales, int32 bias with
// its own scale or, when the file gives none, input scale x weight scale).
// Labels are the model's own, as they are ("T-shirt/top" included), named
// by ClassLabels: "class_<i>" where the metadata has none, repeated names
// made unique.
func FromModel(m *resnet.Model) (*Head, error) {
	s, err := findClassifier(m)
	if err != nil {
		return nil, err
	}
	w, wScales, err := dequantizeWeights(m, s)
	if err != nil {
		return nil, err
	}
	b, err := dequantizeBias(m, s, wScales)
	if err != nil {
		return nil, err
	}
	if n := len(m.Meta.Labels); n != 0 && n != s.classes {
		return nil, fmt.Errorf("head: model %q has %d labels in its metadata but its classifier has %d classes", m.Description, n, s.classes)
	}
	h, err := NewHead(ClassLabels(m.Meta.Labels, s.classes), s.dim, w, b, "")
	if err != nil {
		return nil, fmt.Errorf("head: model %q classifier: %w", m.Description, err)
	}
	return h, nil
}

func le32(b []byte, i int) uint32 { return binary.LittleEndian.Uint32(b[4*i:]) }

// dequantizeWeights returns the real weights and, for int8 models, the
// per-row weight scales (one value when per-tensor).
func dequantizeWeights(m *resnet.Model, s classifierSite) ([]float32, []float64, error) {
	t := &m.Tensors[s.weights]
	n := s.classes * s.dim
	w := make([]float32, n)
	switch t.Type {
	case resnet.Float32:
		if len(t.Data) != 4*n {
			return nil, nil, fmt.Errorf("head: weights tensor %q has %d bytes; want %d", t.Name, len(t.Data), 4*n)
		}
		for i := range w {
			w[i] = math.Float32frombits(le32(t.Data, i))
		}
		return w, nil, nil
	case resnet.Int8:
		q := t.Quant
		if q == nil || len(q.Scale) == 0 || len(t.Data) != n {
			return nil, nil, fmt.Errorf("head: int8 weights tensor %q lacks quantization or has %d bytes for %d values", t.Name, len(t.Data), n)
		}
		if len(q.Scale) != 1 && (len(q.Scale) != s.classes || q.Dim != 0) {
			return nil, nil, fmt.Errorf("head: weights tensor %q has %d scales along dimension %d; want 1 or one per class (%d) along 0",
				t.Name, len(q.Scale), q.Dim, s.classes)
		}
		scales := make([]float64, len(q.Scale))
		for c := range scales {
			scales[c] = float64(q.Scale[c])
		}
		for i := range w {
			c := 0
			if len(scales) > 1 {
				c = i / s.dim
			}
			w[i] = float32(scales[c] * float64(int64(int8(t.Data[i]))-q.ZeroPoint[c]))
		}
		return w, scales, nil
	}
	return nil, nil, fmt.Errorf("head: classifier weights tensor %q is %v; want FLOAT32 or INT8", t.Name, t.Type)
}

func dequantizeBias(m *resnet.Model, s classifierSite, wScales []float64) ([]float32, error) {
	b := make([]float32, s.classes)
	if s.bias < 0 {
		return b, nil
	}
	t := &m.Tensors[s.bias]
	if len(t.Data) != 4*s.classes {
		return nil, fmt.Errorf("head: bias tensor %q has %d bytes; want %d for %d classes", t.Name, len(t.Data), 4*s.classes, s.classes)
	}
	switch t.Type {
	case resnet.Float32:
		for i := range b {
			b[i] = math.Float32frombits(le32(t.Data, i))
		}
		return b, nil
	case resnet.Int32:
		scale := func(c int) (float64, int64) {
			if q := t.Quant; q != nil && len(q.Scale) > 0 {
				if len(q.Scale) > 1 {
					return float64(q.Scale[c]), q.ZeroPoint[c]
				}
				return float64(q.Scale[0]), q.ZeroPoint[0]
			}
			in := m.Tensors[s.input].Quant
			if in == nil || len(in.Scale) == 0 || wScales == nil {
				return 0, 0
			}
			ws := wScales[0]
			if len(wScales) > 1 {
				ws = wScales[c]
			}
			return float64(in.Scale[0]) * ws, 0
		}
		for c := range b {
			sc, zp := scale(c)
			if sc == 0 {
				return nil, fmt.Errorf("head: int32 bias tensor %q has no scale and the input or weights give none", t.Name)
			}
			b[c] = float32(sc * float64(int64(int32(le32(t.Data, c)))-zp))
		}
		return b, nil
	}
	return nil, fmt.Errorf("head: classifier bias tensor %q is %v; want FLOAT32 or INT32", t.Name, t.Type)
}
