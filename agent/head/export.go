package head

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
)

// logitsMargin widens the calibrated logits range on each side, as a
// fraction of its width, so that embeddings a little beyond the training
// ones do not clip (clipped top logits would tie in the SOFTMAX).
const logitsMargin = 0.1

// Export returns a copy of m whose classifier is h: the FULLY_CONNECTED
// feeding the SOFTMAX gets h's weights and bias, the logits, softmax and
// following DEQUANTIZE tensors get h's class count, and the metadata gets
// h's labels. m itself is not changed.
//
// In an int8 model the weights become per-tensor symmetric int8, the bias
// int32 with scale input_scale x weight_scale (TFLite's rule), and the
// logits get a new quantization from the range of h's logits over
// calibration (use the training embeddings; required for int8 models).
// In a float model the values are copied as they are.
func Export(m *resnet.Model, h *Head, calibration [][]float32) (*resnet.Model, error) {
	if h == nil {
		return nil, fmt.Errorf("head: export: nil head")
	}
	s, err := findClassifier(m)
	if err != nil {
		return nil, err
	}
	if s.dim != h.dim {
		return nil, fmt.Errorf("head: export: the model's classifier takes %d inputs but the head takes %d; train the head on this model's embeddings", s.dim, h.dim)
	}
	out := *m
	out.Tensors = slices.Clone(m.Tensors)
	out.Operators = slices.Clone(m.Operators)
	out.Operators[s.fc].Inputs = slices.Clone(m.Operators[s.fc].Inputs)
	out.Meta.Labels = h.Labels()
	out.Meta.Mean = slices.Clone(m.Meta.Mean)
	out.Meta.Std = slices.Clone(m.Meta.Std)
	out.Meta.OutputNames = slices.Clone(m.Meta.OutputNames)
	nc := h.NumClasses()

	wt := out.Tensors[s.weights]
	wt.Shape = []int{nc, h.dim}
	var bt resnet.Tensor
	if s.bias >= 0 {
		bt = out.Tensors[s.bias]
	} else {
		bt = resnet.Tensor{Name: wt.Name + "/bias"}
	}
	bt.Shape = []int{nc}
	switch wt.Type {
	case resnet.Float32:
		wt.Data, wt.Quant = float32Bytes(h.w), nil
		bt.Type, bt.Data, bt.Quant = resnet.Float32, float32Bytes(h.b), nil
	case resnet.Int8:
		in := out.Tensors[s.input].Quant
		if in == nil || len(in.Scale) != 1 {
			return nil, fmt.Errorf("head: export: classifier input tensor %q has no per-tensor quantization", out.Tensors[s.input].Name)
		}
		if len(calibration) == 0 {
			return nil, fmt.Errorf("head: export: an int8 model needs calibration embeddings to quantize the logits; pass the training embeddings")
		}
		wq, wScale := symmetricInt8(h.w)
		wt.Data, wt.Quant = wq, &resnet.Quant{Scale: []float32{wScale}, ZeroPoint: []int64{0}}
		bScale := float64(in.Scale[0]) * float64(wScale)
		bt.Type, bt.Data = resnet.Int32, int32Bias(h.b, bScale)
		bt.Quant = &resnet.Quant{Scale: []float32{float32(bScale)}, ZeroPoint: []int64{0}}
		lo, hi, err := logitsRange(h, calibration)
		if err != nil {
			return nil, err
		}
		scale, zp, err := quant.ActParams(lo, hi)
		if err != nil {
			return nil, fmt.Errorf("head: export: logits range: %w", err)
		}
		lt := out.Tensors[s.logits]
		lt.Quant = &resnet.Quant{Scale: []float32{scale}, ZeroPoint: []int64{zp}}
		out.Tensors[s.logits] = lt
	default:
		return nil, fmt.Errorf("head: export: classifier weights tensor %q is %v; want FLOAT32 or INT8", wt.Name, wt.Type)
	}
	out.Tensors[s.weights] = wt
	if s.bias >= 0 {
		out.Tensors[s.bias] = bt
	} else {
		out.Tensors = append(out.Tensors, bt)
		if len(out.Operators[s.fc].Inputs) < 3 {
			out.Operators[s.fc].Inputs = append(out.Operators[s.fc].Inputs, len(out.Tensors)-1)
		} else {
			out.Operators[s.fc].Inputs[2] = len(out.Tensors) - 1
		}
	}
	if err := resizeClasses(&out, s, nc); err != nil {
		return nil, err
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("head: export produced an invalid model: %w", err)
	}
	return &out, nil
}

// resizeClasses gives the logits and every tensor computed from them
// (SOFTMAX, then QUANTIZE/DEQUANTIZE/RESHAPE) the new class count in their
// last dimension.
func resizeClasses(m *resnet.Model, s classifierSite, nc int) error {
	changed := map[int]bool{s.logits: true}
	setLast := func(t int) error {
		tt := m.Tensors[t]
		if len(tt.Shape) == 0 || tt.Shape[len(tt.Shape)-1] != s.classes {
			return fmt.Errorf("head: export: tensor %d %q has shape %v; expected %d classes in its last dimension", t, tt.Name, tt.Shape, s.classes)
		}
		tt.Shape = slices.Clone(tt.Shape)
		tt.Shape[len(tt.Shape)-1] = nc
		m.Tensors[t] = tt
		changed[t] = true
		return nil
	}
	if err := setLast(s.logits); err != nil {
		return err
	}
	for i, op := range m.Operators {
		if len(op.Inputs) == 0 || op.Inputs[0] < 0 || !changed[op.Inputs[0]] {
			continue
		}
		switch op.Op {
		case resnet.OpSoftmax, resnet.OpDequantize, resnet.OpQuantize:
			if err := setLast(op.Outputs[0]); err != nil {
				return err
			}
		default:
			return fmt.Errorf("head: export: operator %d (%v) reads the class scores; only SOFTMAX, QUANTIZE and DEQUANTIZE can be resized", i, op.Op)
		}
	}
	return nil
}

// logitsRange is the int8 range of h's logits: over the calibration
// embeddings, the range that best keeps their top-1 and scores
// (quant.ChooseLogitsRange: min/max would spend the 256 levels on a few
// extreme embeddings), widened by logitsMargin on each side.
func logitsRange(h *Head, embs [][]float32) (float64, float64, error) {
	logits := make([][]float64, len(embs))
	z := make([]float32, h.NumClasses())
	for i, e := range embs {
		var err error
		if z, err = h.Logits(z, e); err != nil {
			return 0, 0, fmt.Errorf("head: export: calibration embedding %d: %w", i, err)
		}
		logits[i] = make([]float64, len(z))
		for c, v := range z {
			logits[i][c] = float64(v)
		}
	}
	lc, err := quant.ChooseLogitsRange(logits, logits)
	if err != nil {
		return 0, 0, fmt.Errorf("head: export: %w", err)
	}
	lo, hi := float64(lc.Range.Min), float64(lc.Range.Max)
	w := hi - lo
	return lo - logitsMargin*w, hi + logitsMargin*w, nil
}

// symmetricInt8 quantizes to [-127, 127] with one scale for the tensor.
func symmetricInt8(v []float32) ([]byte, float32) {
	var m float64
	for _, x := range v {
		m = math.Max(m, math.Abs(float64(x)))
	}
	scale := float32(m / 127)
	if scale == 0 {
		scale = 1
	}
	out := make([]byte, len(v))
	for i, x := range v {
		r := math.Round(float64(x) / float64(scale))
		out[i] = byte(int8(math.Max(-127, math.Min(127, r))))
	}
	return out, scale
}

func int32Bias(v []float32, scale float64) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		r := math.Round(float64(x) / scale)
		r = math.Max(math.MinInt32, math.Min(math.MaxInt32, r))
		binary.LittleEndian.PutUint32(out[4*i:], uint32(int32(r)))
	}
	return out
}

func float32Bytes(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}
