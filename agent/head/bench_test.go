package head

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkTrain trains a head on 10 labels x 20 examples (16 train, 4
// validation each), as a user teaching ten classes would; ms/op is the
// number to compare with the one-second budget.
func BenchmarkTrain(b *testing.B) {
	for _, dim := range []int{64, 2048} {
		for _, mode := range []Mode{Replace, Extend} {
			b.Run(fmt.Sprintf("dim=%d/%v", dim, mode), func(b *testing.B) {
				ex := syntheticExamples(10, 20, dim, 1)
				var base *Head
				if mode == Extend {
					// A 1000-class base head, as an ImageNet ResNet-50 has,
					// that knows none of the ten labels.
					bex := syntheticExamples(1000, 1, dim, 2)
					for i := range bex.Labels {
						bex.Labels[i].Label = fmt.Sprintf("base %d", i)
					}
					var err error
					if base, err = NewHead(labelsOf(bex), dim, flatten(bex), make([]float32, 1000), ""); err != nil {
						b.Fatal(err)
					}
				}
				tr, err := NewTrainer(base, ex, Options{Mode: mode})
				if err != nil {
					b.Fatal(err)
				}
				var h *Head
				for b.Loop() {
					if h, err = tr.Train(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(h.Report().Iterations), "iterations")
				b.ReportMetric(h.Report().ValidationAccuracy, "val-acc")
			})
		}
	}
}

func labelsOf(ex Examples) []string {
	var l []string
	for _, x := range ex.Labels {
		l = append(l, x.Label)
	}
	return l
}

func flatten(ex Examples) []float32 {
	var w []float32
	for _, x := range ex.Labels {
		w = append(w, x.Embeddings[0]...)
	}
	return w
}
