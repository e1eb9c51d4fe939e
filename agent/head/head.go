package head

import (
	"fmt"
	"math"
	"slices"

	"github.com/shortcut-edge/shortcut/resnet/modelio"
)

// Head is a linear softmax classifier over embeddings: scores =
// softmax(W e + b), one row of W per label. A Head never changes after it
// is made; share it freely between goroutines and swap heads with an
// atomic.Pointer.
type Head struct {
	labels     []string
	dim        int
	w          []float32 // len(labels) x dim, row-major
	b          []float32
	background int // index of the background label, or -1
	report     Report
}

// NewHead checks and copies a classifier: weights are len(labels) x dim,
// row-major (TFLite's FULLY_CONNECTED layout). background names the
// "nothing of interest" label, or is "" for none.
func NewHead(labels []string, dim int, weights, bias []float32, background string) (*Head, error) {
	if len(labels) == 0 || len(labels) > MaxLabelsLimit {
		return nil, fmt.Errorf("head: %d labels; want 1 to %d", len(labels), MaxLabelsLimit)
	}
	if dim < 1 || dim > MaxDim {
		return nil, fmt.Errorf("head: embedding width %d is out of range [1, %d]", dim, MaxDim)
	}
	seen := make(map[string]bool, len(labels))
	for _, l := range labels {
		if err := CheckLabel(l); err != nil {
			return nil, fmt.Errorf("head: %w", err)
		}
		if seen[l] {
			return nil, fmt.Errorf("head: label %q appears twice", l)
		}
		seen[l] = true
	}
	if len(weights) != len(labels)*dim {
		return nil, fmt.Errorf("head: %d weights for %d labels x %d inputs; want %d", len(weights), len(labels), dim, len(labels)*dim)
	}
	if len(bias) != len(labels) {
		return nil, fmt.Errorf("head: %d bias values for %d labels", len(bias), len(labels))
	}
	for i, v := range weights {
		if !finite(v) {
			return nil, fmt.Errorf("head: weight %d (label %q) is %v; want finite values", i, labels[i/dim], v)
		}
	}
	for i, v := range bias {
		if !finite(v) {
			return nil, fmt.Errorf("head: bias of label %q is %v; want a finite value", labels[i], v)
		}
	}
	bg := -1
	if background != "" {
		bg = slices.Index(labels, background)
		if bg < 0 {
			return nil, fmt.Errorf("head: background label %q is not one of the %d labels", background, len(labels))
		}
	}
	return &Head{labels: slices.Clone(labels), dim: dim, w: slices.Clone(weights), b: slices.Clone(bias), background: bg}, nil
}

func finite(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }

// Labels returns the class names, in score order.
func (h *Head) Labels() []string { return slices.Clone(h.labels) }

// NumClasses is the number of labels.
func (h *Head) NumClasses() int { return len(h.labels) }

// Dim is the embedding width the head takes.
func (h *Head) Dim() int { return h.dim }

// Weights returns a copy of the weights (NumClasses x Dim, row-major).
func (h *Head) Weights() []float32 { return slices.Clone(h.w) }

// Bias returns a copy of the biases.
func (h *Head) Bias() []float32 { return slices.Clone(h.b) }

// Background is the background label, or "" when the head has none.
func (h *Head) Background() string {
	if h.background < 0 {
		return ""
	}
	return h.labels[h.background]
}

// Report describes how the head was trained (zero for heads not made by a
// Trainer).
func (h *Head) Report() Report { return h.report }

// Logits writes W e + b into dst (len NumClasses) and returns it; dst may
// be nil.
func (h *Head) Logits(dst, embedding []float32) ([]float32, error) {
	if len(embedding) != h.dim {
		return nil, fmt.Errorf("head: embedding has %d values; this head takes %d", len(embedding), h.dim)
	}
	if cap(dst) < len(h.labels) {
		dst = make([]float32, len(h.labels))
	}
	dst = dst[:len(h.labels)]
	for c := range h.labels {
		dst[c] = dot32(h.w[c*h.dim:(c+1)*h.dim], embedding) + h.b[c]
	}
	return dst, nil
}

// Predict returns the class scores (softmax probabilities, in Labels
// order) for one embedding.
func (h *Head) Predict(embedding []float32) ([]float32, error) {
	s, err := h.Logits(nil, embedding)
	if err != nil {
		return nil, err
	}
	softmax32(s)
	return s, nil
}

// Top returns the best label of a score vector, with its index and score.
func (h *Head) Top(scores []float32) (label string, index int, score float32) {
	if len(scores) != len(h.labels) {
		return "", -1, 0
	}
	index = argmax32(scores)
	return h.labels[index], index, scores[index]
}

func dot32(a, b []float32) float32 {
	var s0, s1, s2, s3 float32
	n := len(a) &^ 3
	b = b[:len(a)]
	for i := 0; i < n; i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for i := n; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func softmax32(s []float32) {
	m := s[argmax32(s)]
	var sum float64
	for i, v := range s {
		e := math.Exp(float64(v - m))
		s[i] = float32(e)
		sum += e
	}
	for i := range s {
		s[i] = float32(float64(s[i]) / sum)
	}
}

func argmax32(s []float32) int { return modelio.Argmax(s) }

// imprintLogit is the logit an imprinted row gives its own mean embedding
// when there are no other rows to take a scale from.
const imprintLogit = 10

// imprintRow is Qi et al.'s weight imprinting ("Low-Shot Learning with
// Imprinted Weights", CVPR 2018): the new class's weight is the normalised
// mean of its embeddings, scaled to the mean norm of the existing rows so
// that its logits are comparable with theirs. Without existing rows, the
// scale makes the mean embedding's logit imprintLogit.
func imprintRow(embs [][]float32, rowNorm float64) []float32 {
	dim := len(embs[0])
	mean := make([]float64, dim)
	for _, e := range embs {
		for i, v := range e {
			mean[i] += float64(v)
		}
	}
	var n2 float64
	for i := range mean {
		mean[i] /= float64(len(embs))
		n2 += mean[i] * mean[i]
	}
	norm := math.Sqrt(n2)
	row := make([]float32, dim)
	if norm == 0 {
		return row
	}
	if rowNorm <= 0 {
		rowNorm = imprintLogit / norm
	}
	for i := range row {
		row[i] = float32(mean[i] / norm * rowNorm)
	}
	return row
}

// meanRowNorm and meanBias describe the existing rows for imprinting.
func (h *Head) meanRowNorm() float64 {
	var s float64
	for c := range h.labels {
		var n2 float64
		for _, v := range h.w[c*h.dim : (c+1)*h.dim] {
			n2 += float64(v) * float64(v)
		}
		s += math.Sqrt(n2)
	}
	return s / float64(len(h.labels))
}

func (h *Head) meanBias() float32 {
	var s float64
	for _, v := range h.b {
		s += float64(v)
	}
	return float32(s / float64(len(h.b)))
}

// Imprint returns a new head where label's row is imprinted from a few
// embeddings (one is enough): instant, no training. An existing label's
// row is replaced, a new label is appended; the bias comes from
// imprintBias. h may be nil for a first label.
func (h *Head) Imprint(label string, embeddings [][]float32) (*Head, error) {
	if err := CheckLabel(label); err != nil {
		return nil, fmt.Errorf("head: imprinting: %w", err)
	}
	if len(embeddings) == 0 {
		return nil, fmt.Errorf("head: imprinting %q: no embeddings; give at least one", label)
	}
	dim := len(embeddings[0])
	if h != nil {
		dim = h.dim
	}
	for i, e := range embeddings {
		if err := checkEmbedding(e, dim); err != nil {
			return nil, fmt.Errorf("head: imprinting %q: example %d: %w", label, i, err)
		}
	}
	if h == nil {
		return NewHead([]string{label}, dim, imprintRow(embeddings, 0), []float32{0}, "")
	}
	row := imprintRow(embeddings, h.meanRowNorm())
	labels, w, b := h.Labels(), h.Weights(), h.Bias()
	var othersW [][]float32
	var othersB []float32
	for c, l := range labels {
		if l != label {
			othersW, othersB = append(othersW, w[c*dim:(c+1)*dim]), append(othersB, b[c])
		}
	}
	bias := imprintBias(row, embeddings, othersW, othersB)
	if i := slices.Index(labels, label); i >= 0 {
		copy(w[i*dim:], row)
		b[i] = bias
	} else {
		labels = append(labels, label)
		w = append(w, row...)
		b = append(b, bias)
	}
	nh, err := NewHead(labels, dim, w, b, h.Background())
	if err != nil {
		return nil, err
	}
	return nh, nil
}

// imprintQuantile is the share of its own examples an imprinted class is
// made to win against the other rows (see imprintBias).
var imprintQuantile = 0.5

// imprintBias picks an imprinted row's bias from its examples alone. The
// mean bias of the other rows is not enough: embeddings after a ReLU share
// a large positive mean, so a normalised-mean row scores high on every
// image and would take over the head. Instead the bias is set so that the
// new class wins on imprintQuantile of its own examples against the best
// other row: with no negative examples, that is the one thing we can
// measure. others lists (weights, bias) rows; with none it returns 0.
func imprintBias(row []float32, embs [][]float32, othersW [][]float32, othersB []float32) float32 {
	if len(othersW) == 0 {
		return 0
	}
	need := make([]float64, len(embs))
	for i, e := range embs {
		best := math.Inf(-1)
		for k, w := range othersW {
			best = math.Max(best, float64(dot32(w, e)+othersB[k]))
		}
		need[i] = best - float64(dot32(row, e))
	}
	slices.Sort(need)
	// The row beats the others on example i when bias > need[i].
	k := max(0, int(math.Ceil(imprintQuantile*float64(len(need))))-1)
	return float32(need[k] + 1e-6*math.Abs(need[k]))
}
