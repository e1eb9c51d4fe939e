package head

import "testing"

func TestTheConfusionMatrixCountsEveryHeldOutExampleOnce(t *testing.T) {
	// Overlapping labels (low-dimensional, noisy), so that some held-out
	// examples land off the diagonal.
	ex := syntheticExamples(4, 30, 2, 3)
	h := train(t, nil, ex, Options{Mode: Replace, Seed: 1})
	r := h.Report()
	if len(r.Confusion) != 4 {
		t.Fatalf("confusion matrix has %d rows for 4 labels", len(r.Confusion))
	}
	total, diagonal := 0, 0
	for i, row := range r.Confusion {
		if len(row) != 4 {
			t.Fatalf("row %d has %d columns for 4 labels", i, len(row))
		}
		n := 0
		for _, v := range row {
			n += v
		}
		la := r.PerLabel[i]
		if la.Label != h.Labels()[i] || n != la.Total || row[i] != la.Correct {
			t.Errorf("row %d (%q) %v: sum %d, diagonal %d; per-label accuracy says %+v", i, h.Labels()[i], row, n, row[i], la)
		}
		total, diagonal = total+n, diagonal+row[i]
	}
	if total != r.ValidationExamples || diagonal == total {
		t.Errorf("matrix holds %d examples, %d on the diagonal; want all %d validation examples, some misclassified", total, diagonal, r.ValidationExamples)
	}
	none := train(t, nil, ex, Options{Mode: Replace, Validation: -1})
	if c := none.Report().Confusion; c != nil {
		t.Errorf("without a validation split the confusion matrix is %v, want nil", c)
	}
}
