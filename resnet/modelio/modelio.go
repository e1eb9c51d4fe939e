// Package modelio is the one description of an image classifier's inputs and
// outputs: what the agent, camera preprocessing, quant, eval and the
// accelerator backends agree on about a loaded .tflite.
//
// The contract (train/EXPORT.md writes it; the agent reads it):
//   - input 0 is one NHWC image [1, H, W, C], FLOAT32 or INT8 (per-tensor
//     quantization), holding (pixel/255 - Mean) / Std per channel;
//   - when the metadata's image_size is set, the training images filled only
//     a centred ContentHeight x ContentWidth area and the border is black;
//   - output 0 is the class scores (FLOAT32 or INT8), one per label;
//   - output 1, when present with at least 2 values, is the embedding: the
//     pooled features the classifier reads.
//
// Conversions between real values and a tensor's storage are
// resnet.Quant.QuantizeInt8/DequantizeInt8 and interp.Tensor.SetFloat32 and
// ReadFloat32; ranking scores is Argmax and TopK here.
package modelio

import (
	"fmt"
	"math"

	"github.com/shortcut-edge/shortcut/resnet"
)

// Input describes input 0.
type Input struct {
	Tensor                  int // index in the model's tensors
	Name                    string
	Type                    resnet.DType // FLOAT32 or INT8
	Height, Width, Channels int
	Quant                   *resnet.Quant // per-tensor; nil for FLOAT32
	// Mean and Std normalize 0..1 pixels: (p - Mean[c]) / Std[c]. Each has
	// 0 (no normalization recorded), 1 (all channels) or Channels values.
	Mean, Std []float32
	// ContentHeight and ContentWidth are the metadata's image_size (training's
	// pad_to): the area, centred in the input, that images fill; 0 means the
	// whole input.
	ContentHeight, ContentWidth int
}

// Elements is Height*Width*Channels.
func (in Input) Elements() int { return in.Height * in.Width * in.Channels }

// Normalized reports whether Mean and Std hold one value per channel (or one
// for all), so that images can be prepared from the model alone.
func (in Input) Normalized() bool {
	ok := func(v []float32) bool { return len(v) == 1 || len(v) == in.Channels }
	return ok(in.Mean) && ok(in.Std)
}

// Output describes one model output.
type Output struct {
	Index  int // position among the model's outputs
	Tensor int
	Name   string
	Type   resnet.DType // FLOAT32 or INT8
	Len    int          // number of values
	Quant  *resnet.Quant
}

// IO is a classifier's whole contract.
type IO struct {
	Input     Input
	Scores    Output
	Embedding *Output // nil when the model has none
	// Labels has one name per score (ClassLabels).
	Labels []string
}

// Describe checks m against the contract and describes it. Errors say which
// part of the contract the model breaks.
func Describe(m *resnet.Model) (IO, error) {
	var io IO
	if len(m.Inputs) != 1 {
		return io, fmt.Errorf("the model has %d inputs; an image classifier has one [1,H,W,C] input", len(m.Inputs))
	}
	if len(m.Outputs) < 1 {
		return io, fmt.Errorf("the model has no outputs; output 0 must be the class scores")
	}
	ti := m.Inputs[0]
	t := &m.Tensors[ti]
	s := t.Shape
	if len(s) != 4 || s[0] != 1 || s[1] < 1 || s[2] < 1 || s[3] < 1 {
		return io, fmt.Errorf("input 0 %q has shape %v; an image classifier takes one image [1,H,W,C]", t.Name, s)
	}
	in := Input{Tensor: ti, Name: t.Name, Type: t.Type, Height: s[1], Width: s[2], Channels: s[3],
		Mean: m.Meta.Mean, Std: m.Meta.Std}
	q, err := realValued(t)
	if err != nil {
		return io, fmt.Errorf("input 0 %w", err)
	}
	in.Quant = q
	for _, v := range [][]float32{in.Mean, in.Std} {
		if len(v) != 0 && len(v) != 1 && len(v) != in.Channels {
			return io, fmt.Errorf("metadata mean/std have %d values for %d channels", len(v), in.Channels)
		}
	}
	for _, sd := range in.Std {
		if sd == 0 || math.IsNaN(float64(sd)) || math.IsInf(float64(sd), 0) {
			return io, fmt.Errorf("metadata std holds %v; every std must be finite and non-zero", sd)
		}
	}
	if m.Meta.HasImageSize() { // resnet.Load checked it against the input
		in.ContentHeight, in.ContentWidth = m.Meta.ImageSize[0], m.Meta.ImageSize[1]
	}
	io.Input = in

	out, err := output(m, 0)
	if err != nil {
		return io, fmt.Errorf("output 0 must be the class scores: %w", err)
	}
	io.Scores = out
	if len(m.Outputs) > 1 {
		if e, err := output(m, 1); err == nil && e.Len >= 2 {
			io.Embedding = &e
		}
	}
	io.Labels = ClassLabels(m.Meta.Labels, out.Len)
	return io, nil
}

// ClassLabels names a model's classes from its metadata labels: label i for
// class i, "class_<i>" where the metadata has none or an empty one, and a
// label that repeats an earlier one gets " (2)", " (3)", ... appended
// (ImageNet's label list has "crane" twice), so that every class has its own
// name in predictions, heads and commands alike.
func ClassLabels(meta []string, classes int) []string {
	out := make([]string, classes)
	seen := make(map[string]bool, classes)
	for i := range out {
		l := ""
		if i < len(meta) {
			l = meta[i]
		}
		if l == "" {
			l = fmt.Sprintf("class_%d", i)
		}
		for n, base := 2, l; seen[l]; n++ {
			l = fmt.Sprintf("%s (%d)", base, n)
		}
		seen[l] = true
		out[i] = l
	}
	return out
}

func output(m *resnet.Model, k int) (Output, error) {
	ti := m.Outputs[k]
	t := &m.Tensors[ti]
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	o := Output{Index: k, Tensor: ti, Name: t.Name, Type: t.Type, Len: n}
	if n < 1 {
		return o, fmt.Errorf("%q has shape %v (no values)", t.Name, t.Shape)
	}
	q, err := realValued(t)
	o.Quant = q
	return o, err
}

// realValued checks that t holds real values the contract can convert: a
// FLOAT32 tensor (nil quantization) or an INT8 one with per-tensor
// quantization, which it returns.
func realValued(t *resnet.Tensor) (*resnet.Quant, error) {
	switch t.Type {
	case resnet.Float32:
		return nil, nil
	case resnet.Int8:
		if _, _, ok := t.Quant.PerTensor(); !ok {
			return nil, fmt.Errorf("%q is INT8 without per-tensor quantization", t.Name)
		}
		return t.Quant, nil
	}
	return nil, fmt.Errorf("%q is %v; want FLOAT32 or INT8", t.Name, t.Type)
}

// Argmax is the index of the largest value, the first one on ties (as
// TFLite's ARG_MAX and numpy.argmax); -1 for an empty slice. A NaN never
// beats a number.
func Argmax(v []float32) int {
	best := -1
	for i, x := range v {
		if best < 0 || greater(x, v[best]) {
			best = i
		}
	}
	return best
}

// TopK writes the indices of the k largest values of v into dst, best first,
// ties to the lower index, and returns dst[:min(k, len(v))]. It allocates
// nothing when dst has room for k.
func TopK(dst []int, v []float32, k int) []int {
	k = min(k, len(v))
	dst = dst[:0]
	for i, x := range v {
		// Insertion into the sorted first k: k is small (top-5).
		pos := len(dst)
		for pos > 0 && greater(x, v[dst[pos-1]]) {
			pos--
		}
		if pos >= k {
			continue
		}
		if len(dst) < k {
			dst = append(dst, 0)
		}
		copy(dst[pos+1:], dst[pos:len(dst)-1])
		dst[pos] = i
	}
	return dst
}

// greater orders NaN below every number.
func greater(a, b float32) bool {
	if a != a {
		return false
	}
	return b != b || a > b
}

// ExposeEmbedding gives a classifier without an embedding output one: the
// tensor the last FULLY_CONNECTED reads (the pooled features a classifier's
// head takes) becomes output 1 of m, so that an interpreter keeps it and
// Describe reports it. It changes m only in that way, and only when m has a
// single output. It returns where the embedding comes from, for logs and
// /healthz, or an error saying why there is none.
func ExposeEmbedding(m *resnet.Model) (string, error) {
	if len(m.Outputs) != 1 {
		return "", fmt.Errorf("the model has %d outputs; only a single-output classifier gets its embedding exposed", len(m.Outputs))
	}
	for i := len(m.Operators) - 1; i >= 0; i-- {
		op := &m.Operators[i]
		if op.Op != resnet.OpFullyConnected || len(op.Inputs) == 0 || op.Inputs[0] < 0 {
			continue
		}
		t := op.Inputs[0]
		tt := &m.Tensors[t]
		if len(tt.Data) != 0 {
			return "", fmt.Errorf("FULLY_CONNECTED operator %d reads a constant, not features", i)
		}
		n := 1
		for _, d := range tt.Shape {
			n *= d
		}
		if n < 2 {
			return "", fmt.Errorf("the input of FULLY_CONNECTED operator %d (tensor %d %q) has %d values; an embedding needs at least 2", i, t, tt.Name, n)
		}
		if _, err := realValued(tt); err != nil {
			return "", fmt.Errorf("the input of FULLY_CONNECTED operator %d: %w", i, err)
		}
		m.Outputs = append(m.Outputs, t)
		if len(m.Meta.OutputNames) == 1 {
			m.Meta.OutputNames = append(m.Meta.OutputNames[:1:1], "embedding")
		}
		return fmt.Sprintf("the input of FULLY_CONNECTED operator %d (tensor %d %q, %d values)", i, t, tt.Name, n), nil
	}
	return "", fmt.Errorf("the model has neither an embedding output (output 1) nor a FULLY_CONNECTED whose input could serve as one")
}
