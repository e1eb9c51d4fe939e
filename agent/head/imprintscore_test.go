package head

import (
	"math"
	"testing"
)

// TestAnImprintedLabelClearsTheScoreItNeeds imprints a label beside two
// trained rows: alone, it only ties the best of them on its own example
// (about 0.5); raised, it reaches the score asked for there, while a
// picture of another class keeps its class.
func TestAnImprintedLabelClearsTheScoreItNeeds(t *testing.T) {
	base, err := NewHead([]string{"boot", "bag"}, 3, []float32{4, 0, 1, 0, 4, 1}, []float32{0, 0}, "")
	if err != nil {
		t.Fatal(err)
	}
	pattern := [][]float32{{1, 1, 1}, {1.1, 0.9, 1}, {0.9, 1.1, 1}}
	h, err := base.Imprint("pattern", pattern)
	if err != nil {
		t.Fatal(err)
	}
	score := func(h *Head, e []float32, label string) float64 {
		p, _ := h.Predict(e)
		for i, l := range h.Labels() {
			if l == label {
				return float64(p[i])
			}
		}
		return math.NaN()
	}
	if s := score(h, pattern[0], "pattern"); s > 0.55 {
		t.Fatalf("imprinted alone, pattern scores %.3f on its own example; the test expects a near tie (about 0.5)", s)
	}
	raised, err := h.WithImprintScore("pattern", pattern, 0.8)
	if err != nil {
		t.Fatal(err)
	}
	if s := score(raised, pattern[0], "pattern"); s < 0.8-1e-4 {
		t.Errorf("raised, pattern scores %.3f on its median example, want 0.8", s)
	}
	boot := []float32{1, 0, 0.2}
	if l, _, _ := raised.Top(mustPredict(t, raised, boot)); l != "boot" {
		t.Errorf("a boot picture now predicts %q", l)
	}
	if raised.Report().Mode != h.Report().Mode {
		t.Errorf("the report was lost")
	}
	// A bias already high enough stays; a label the head lacks is refused.
	if again, _ := raised.WithImprintScore("pattern", pattern, 0.6); again != raised {
		t.Errorf("asking for a lower score changed the head")
	}
	if _, err := raised.WithImprintScore("sock", pattern, 0.8); err == nil {
		t.Errorf("raising a label the head lacks succeeded")
	}
}

func mustPredict(t *testing.T, h *Head, e []float32) []float32 {
	p, err := h.Predict(e)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
