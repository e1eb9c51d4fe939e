package head

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
)

// demoModel is the model `make run` ships: an int8 ResNet-8 trained on
// Fashion-MNIST, whose labels are the dataset's own ("T-shirt/top").
const demoModel = "../../configs/demo/fashion-resnet8-int8.tflite"

// demoEmbeddings runs the demo model on Fashion-MNIST images (normalised
// with the model's metadata) and returns each image's embedding.
func demoEmbeddings(t *testing.T, m *resnet.Model, set fashionSet) [][]float32 {
	t.Helper()
	r := newRunner(t, m)
	mean, std := m.Meta.Mean[0], m.Meta.Std[0]
	out := make([][]float32, len(set.pixels))
	in := make([]float32, 784)
	for i, p := range set.pixels {
		for k, v := range p {
			in[k] = (v - mean) / std
		}
		_, out[i] = r.run(t, in)
	}
	return out
}

// TestTeachingTheDemoModelsOwnClasses is on-device learning on the model
// `make run` uses, with real Fashion-MNIST: its labels carry a '/'
// ("T-shirt/top"), which the typed-label rule refuses. The model's labels
// must pass through every step as they are: the base head, the store,
// training, the state file and the exported .tflite.
func TestTeachingTheDemoModelsOwnClasses(t *testing.T) {
	m, err := resnet.LoadFile(demoModel)
	if err != nil {
		t.Fatal(err)
	}
	if ValidateLabel(m.Meta.Labels[0]) == nil {
		t.Fatalf("the demo model's first label %q passes the typed-label rule; this test needs one that does not", m.Meta.Labels[0])
	}
	base, err := FromModel(m)
	if err != nil {
		t.Fatalf("the demo model's classifier as a head: %v", err)
	}
	if !slices.Equal(base.Labels(), m.Meta.Labels) {
		t.Fatalf("base head labels %q, want the model's %q", base.Labels(), m.Meta.Labels)
	}

	// Teach the pair the model confuses most, T-shirt/top and Shirt, from
	// 60 training images each (the agent stores them under the model's
	// labels), plus 20 of every other class so that they stay put.
	train := loadFashion(t, "train", 2000)
	test := loadFashion(t, "t10k", 1000)
	trainEmb, testEmb := demoEmbeddings(t, m, train), demoEmbeddings(t, m, test)
	store, _ := NewStore(base.Dim(), Limits{})
	taken := map[int]int{}
	for i, c := range train.labels {
		want := 20
		if c == 0 || c == 6 {
			want = 60
		}
		if taken[c] < want {
			taken[c]++
			if _, err := store.Add(m.Meta.Labels[c], trainEmb[i], nil); err != nil {
				t.Fatalf("storing an example of the model's label %q: %v", m.Meta.Labels[c], err)
			}
		}
	}
	tr, err := NewTrainer(base, store.Snapshot(), Options{Mode: Extend, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	h, err := tr.Train(context.Background())
	if err != nil {
		t.Fatalf("training on the demo model: %v", err)
	}
	if !slices.Equal(h.Labels(), m.Meta.Labels) {
		t.Errorf("trained head labels %q, want the model's %q", h.Labels(), m.Meta.Labels)
	}
	accuracy := func(h *Head, classes ...int) float64 {
		right, total := 0, 0
		for i, c := range test.labels {
			if !slices.Contains(classes, c) {
				continue
			}
			s, _ := h.Predict(testEmb[i])
			if l, _, _ := h.Top(s); l == m.Meta.Labels[c] {
				right++
			}
			total++
		}
		return float64(right) / float64(total)
	}
	all := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	before, after := accuracy(base, all...), accuracy(h, all...)
	pairBefore, pairAfter := accuracy(base, 0, 6), accuracy(h, 0, 6)
	t.Logf("test accuracy: all classes %.3f -> %.3f, T-shirt/top and Shirt %.3f -> %.3f (validation %.3f on %d)",
		before, after, pairBefore, pairAfter, h.Report().ValidationAccuracy, h.Report().ValidationExamples)
	if after < before-0.03 {
		t.Errorf("teaching the model's own classes cost %.3f of test accuracy (%.3f -> %.3f); want at most 0.03", before-after, before, after)
	}

	// The state file and an export keep the labels as they are.
	d, _ := OpenDir(filepath.Join(t.TempDir(), "state"))
	if _, err := d.Save(State{Head: h, Examples: store.Snapshot()}); err != nil {
		t.Fatalf("saving a head with the model's labels: %v", err)
	}
	st, _, err := d.Load()
	if err != nil || st.Head == nil || !slices.Equal(st.Head.Labels(), m.Meta.Labels) {
		t.Fatalf("state read back: %v; head %v", err, st.Head)
	}
	if i := slices.IndexFunc(st.Examples.Labels, func(l LabelExamples) bool { return l.Label == "T-shirt/top" }); i < 0 || len(st.Examples.Labels[i].Embeddings) != 60 {
		t.Errorf("state read back has no 60 examples of \"T-shirt/top\": %d labels", len(st.Examples.Labels))
	}
	var calib [][]float32
	for _, l := range store.Snapshot().Labels {
		calib = append(calib, l.Embeddings...)
	}
	exp, err := Export(m, h, calib)
	if err != nil {
		t.Fatalf("exporting the demo model with the trained head: %v", err)
	}
	exp = roundTrip(t, exp)
	if !slices.Equal(exp.Meta.Labels, m.Meta.Labels) {
		t.Errorf("exported labels %q, want %q", exp.Meta.Labels, m.Meta.Labels)
	}
	if back, err := FromModel(exp); err != nil || !slices.Equal(back.Labels(), m.Meta.Labels) {
		t.Errorf("the export's classifier as a head: %v", err)
	}
}

func TestModelLabelsAreDataAndTypedLabelsFollowTheRule(t *testing.T) {
	for _, l := range []string{"T-shirt/top", "crane, Grus americana", `say "cheese"`, "🐈 cat", "tab\there"} {
		if err := CheckLabel(l); err != nil {
			t.Errorf("CheckLabel(%q) = %v; a model may carry any non-empty UTF-8 label", l, err)
		}
		if err := ValidateLabel(l); err == nil {
			t.Errorf("ValidateLabel(%q) accepted it; a typed label must stay within letters, digits, space, '-', '_', '.'", l)
		}
		if _, err := NewHead([]string{l, "other"}, 1, []float32{1, 2}, []float32{0, 0}, ""); err != nil {
			t.Errorf("NewHead with the label %q: %v", l, err)
		}
	}
	for _, l := range []string{"", "a\xffb", string(make([]byte, MaxLabelDataBytes+1))} {
		if CheckLabel(l) == nil {
			t.Errorf("CheckLabel(%.20q) accepted it", l)
		}
	}
}

func TestClassLabelsNameEveryClassOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		meta    []string
		classes int
		want    []string
	}{
		{"labels as the model has them", []string{"T-shirt/top", "Trouser"}, 2, []string{"T-shirt/top", "Trouser"}},
		{"none", nil, 2, []string{"class_0", "class_1"}},
		{"empty and missing ones", []string{"a", ""}, 3, []string{"a", "class_1", "class_2"}},
		{"repeats (ImageNet has crane twice)", []string{"crane", "x", "crane", "crane"}, 4, []string{"crane", "x", "crane (2)", "crane (3)"}},
		{"a repeat that meets a real label", []string{"a", "a", "a (2)"}, 3, []string{"a", "a (2)", "a (2) (2)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ClassLabels(tc.meta, tc.classes); !slices.Equal(got, tc.want) {
				t.Errorf("ClassLabels(%q, %d) = %q, want %q", tc.meta, tc.classes, got, tc.want)
			}
		})
	}
}
