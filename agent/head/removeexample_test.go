package head

import "testing"

func TestRemoveExampleForgetsOnlyThatExample(t *testing.T) {
	s, err := NewStore(2, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	jpg := []byte{0xFF, 0xD8, 0xFF, 1}
	for _, e := range []struct {
		label string
		emb   []float32
	}{{"cat", []float32{1, 0}}, {"cat", []float32{0, 1}}, {"cat", []float32{0, 1}}, {"dog", []float32{1, 1}}} {
		if _, err := s.Add(e.label, e.emb, jpg); err != nil {
			t.Fatal(err)
		}
	}
	ids := s.ExampleIDs()
	// The second of two identical examples has its own id ("-2").
	label, left, ok := s.RemoveExample(ids[0].IDs[2])
	if !ok || label != "cat" || left != 2 {
		t.Fatalf("RemoveExample(%s) = %q, %d, %v; want cat, 2, true", ids[0].IDs[2], label, left, ok)
	}
	after := s.ExampleIDs()
	if len(after[0].IDs) != 2 || after[0].IDs[0] != ids[0].IDs[0] || after[0].IDs[1] != ids[0].IDs[1] {
		t.Errorf("cat ids after removing %s: %v, want %v", ids[0].IDs[2], after[0].IDs, ids[0].IDs[:2])
	}
	if _, _, ok := s.RemoveExample(ids[0].IDs[2]); ok {
		t.Errorf("removing %s twice succeeded", ids[0].IDs[2])
	}
	if _, _, ok := s.RemoveExample("0123456789abcdef"); ok {
		t.Errorf("removing an unknown id succeeded")
	}
	// The last example of a label takes the label with it.
	if label, left, ok := s.RemoveExample(ids[1].IDs[0]); !ok || label != "dog" || left != 0 {
		t.Errorf("removing dog's only example: %q, %d, %v", label, left, ok)
	}
	if c := s.Counts(); len(c) != 1 || c[0] != (LabelCount{"cat", 2}) {
		t.Errorf("counts %v, want only cat 2", c)
	}
	if th := s.Snapshot().Labels[0].Thumbnails; len(th) != 2 {
		t.Errorf("%d thumbnails for 2 examples", len(th))
	}
}
