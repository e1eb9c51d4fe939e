package head

import (
	"fmt"
	"math"
	"slices"
)

// WithImprintScore returns h with the bias of label (an imprinted row:
// Report.Imprinted) raised, when needed, so that the head's softmax score
// for label reaches score on the median of embs, the label's examples.
//
// Imprinting alone (imprintBias) sets the bias where the new row only ties
// the best other row on half of its own examples: its softmax score there
// is about 0.5 at best, below any decision threshold above 0.5, so the
// taught label shows up as a top score and never becomes a debounced state.
// Whoever debounces with a threshold knows the score a label needs; the
// head cannot. Raising one row's bias moves only that row's logits, by the
// same amount everywhere: other pictures switch to the label only where the
// row already came within that amount of their own best row.
func (h *Head) WithImprintScore(label string, embs [][]float32, score float64) (*Head, error) {
	c := slices.Index(h.labels, label)
	switch {
	case c < 0:
		return nil, fmt.Errorf("head: raising %q: not a label of the head", label)
	case len(embs) == 0:
		return h, nil
	case !(score > 0 && score < 1):
		return nil, fmt.Errorf("head: raising %q: score %v is not in (0, 1)", label, score)
	}
	// The label's score on e is sigmoid(w·e + b - logsumexp(others)), so it
	// reaches score when b >= logsumexp(others) - w·e + logit(score).
	target := math.Log(score / (1 - score))
	need := make([]float64, len(embs))
	logits := make([]float32, len(h.labels))
	for i, e := range embs {
		if err := checkEmbedding(e, h.dim); err != nil {
			return nil, fmt.Errorf("head: raising %q: example %d: %w", label, i, err)
		}
		logits, _ = h.Logits(logits, e)
		others := math.Inf(-1)
		for k, v := range logits {
			if k != c {
				others = logAddExp(others, float64(v))
			}
		}
		need[i] = others - (float64(logits[c]) - float64(h.b[c])) + target
	}
	slices.Sort(need)
	b := float32(need[(len(need)-1)/2])
	if b <= h.b[c] {
		return h, nil
	}
	bias := h.Bias()
	bias[c] = b
	nh, err := NewHead(h.Labels(), h.dim, h.Weights(), bias, h.Background())
	if err != nil {
		return nil, err
	}
	nh.report = h.report
	return nh, nil
}
