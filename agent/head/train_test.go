package head

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
)

// syntheticExamples makes labels x perLabel ReLU'd embeddings around
// random class centres: separable, like a trained backbone's.
func syntheticExamples(labels, perLabel, dim int, seed uint64) Examples {
	r := rand.New(rand.NewPCG(seed, 2))
	ex := Examples{Dim: dim}
	for l := range labels {
		centre := make([]float64, dim)
		for i := range centre {
			centre[i] = r.NormFloat64()
		}
		le := LabelExamples{Label: fmt.Sprintf("label %d", l)}
		for range perLabel {
			e := make([]float32, dim)
			for i := range e {
				e[i] = float32(math.Max(0, centre[i]+1.5*r.NormFloat64()))
			}
			le.Embeddings = append(le.Embeddings, e)
		}
		ex.Labels = append(ex.Labels, le)
	}
	return ex
}

func train(t testing.TB, base *Head, ex Examples, o Options) *Head {
	t.Helper()
	tr, err := NewTrainer(base, ex, o)
	if err != nil {
		t.Fatal(err)
	}
	h, err := tr.Train(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestTrainingIsDeterministicForASeed(t *testing.T) {
	ex := syntheticExamples(4, 20, 16, 1)
	a := train(t, nil, ex, Options{Mode: Replace, Seed: 5})
	b := train(t, nil, ex, Options{Mode: Replace, Seed: 5})
	c := train(t, nil, ex, Options{Mode: Replace, Seed: 6})
	if !reflect.DeepEqual(a.w, b.w) || !reflect.DeepEqual(a.b, b.b) {
		t.Fatal("two runs with the same seed gave different heads")
	}
	if reflect.DeepEqual(a.w, c.w) {
		t.Fatal("different seeds gave the same head; the seed does not drive the split")
	}
	if r := a.Report(); r.ValidationExamples != 16 || r.TrainExamples != 64 || r.ValidationAccuracy < 0.9 {
		t.Fatalf("report %+v, want 16 validation examples (20%% of 80) at >= 0.9 accuracy", r)
	}
}

func TestExtendKeepsBaseRowsWithoutExamplesUnchanged(t *testing.T) {
	ex := syntheticExamples(3, 20, 8, 2)
	base := train(t, nil, Examples{Dim: 8, Labels: ex.Labels[:2]}, Options{Mode: Replace})
	// Only label 1 and the new label 2 have examples now.
	h := train(t, base, Examples{Dim: 8, Labels: ex.Labels[1:]}, Options{Mode: Extend})
	if got := h.Labels(); !reflect.DeepEqual(got, []string{"label 0", "label 1", "label 2"}) {
		t.Fatalf("labels %v", got)
	}
	if !reflect.DeepEqual(h.w[:8], base.w[:8]) || h.b[0] != base.b[0] {
		t.Error("the base row without examples changed")
	}
	if reflect.DeepEqual(h.w[8:16], base.w[8:16]) {
		t.Error("the base row with examples did not train")
	}
	if r := h.Report(); !reflect.DeepEqual(r.Trained, []string{"label 1", "label 2"}) {
		t.Errorf("trained %v, want label 1 and label 2", r.Trained)
	}
}

func TestReplaceKeepsOnlyTheStoredLabels(t *testing.T) {
	ex := syntheticExamples(3, 10, 8, 3)
	base := train(t, nil, ex, Options{Mode: Replace})
	h := train(t, base, Examples{Dim: 8, Labels: ex.Labels[1:]}, Options{Mode: Replace})
	if got := h.Labels(); !reflect.DeepEqual(got, []string{"label 1", "label 2"}) {
		t.Fatalf("labels %v", got)
	}
}

func TestALabelWithFewExamplesIsImprinted(t *testing.T) {
	ex := syntheticExamples(3, 20, 8, 4)
	ex.Labels[2].Embeddings = ex.Labels[2].Embeddings[:2]
	h := train(t, nil, ex, Options{Mode: Replace})
	if r := h.Report(); !reflect.DeepEqual(r.Imprinted, []string{"label 2"}) {
		t.Fatalf("imprinted %v, want label 2", r.Imprinted)
	}
	s, _ := h.Predict(ex.Labels[2].Embeddings[0])
	if l, _, _ := h.Top(s); l != "label 2" {
		t.Errorf("an imprinting example is predicted as %q", l)
	}
}

func TestImprintAddsALabelInstantly(t *testing.T) {
	ex := syntheticExamples(3, 20, 8, 5)
	base := train(t, nil, Examples{Dim: 8, Labels: ex.Labels[:2]}, Options{Mode: Replace})
	h, err := base.Imprint("label 2", ex.Labels[2].Embeddings[:10])
	if err != nil {
		t.Fatal(err)
	}
	if h.NumClasses() != 3 || base.NumClasses() != 2 {
		t.Fatalf("classes %d (base %d), want 3 (base unchanged at 2)", h.NumClasses(), base.NumClasses())
	}
	hits := 0
	for _, e := range ex.Labels[2].Embeddings[10:] {
		s, _ := h.Predict(e)
		if _, i, _ := h.Top(s); i == 2 {
			hits++
		}
	}
	t.Logf("imprinted label recognised on %d of 10 held-out examples", hits)
	if hits < 2 { // measured 3
		t.Errorf("imprinted label recognised on %d of 10 held-out examples; want >= 2 (the bias is set to win on half of the imprinting examples)", hits)
	}
	if _, err := base.Imprint("", ex.Labels[2].Embeddings); err == nil {
		t.Error("Imprint accepted an empty label")
	}
	if _, err := base.Imprint("x", [][]float32{{1}}); err == nil {
		t.Error("Imprint accepted an embedding of the wrong width")
	}
}

func TestTrainingStopsWhenCancelled(t *testing.T) {
	tr, err := NewTrainer(nil, syntheticExamples(3, 20, 8, 6), Options{Mode: Replace})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tr.Train(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Train error %v, want context.Canceled", err)
	}
}

func TestTrainerRejectsBadSetups(t *testing.T) {
	ex := syntheticExamples(2, 10, 8, 7)
	base := train(t, nil, ex, Options{Mode: Replace})
	bad := syntheticExamples(2, 10, 8, 7)
	bad.Labels[0].Embeddings[3][1] = float32(math.NaN())
	for _, tc := range []struct {
		name string
		base *Head
		ex   Examples
		o    Options
		want string
	}{
		{"extend without a base", nil, ex, Options{Mode: Extend}, "needs a base head"},
		{"examples of another width", base, syntheticExamples(2, 10, 4, 1), Options{}, "width 4"},
		{"background without examples", nil, ex, Options{Mode: Replace, Background: "nothing"}, "background"},
		{"NaN embedding", nil, bad, Options{Mode: Replace}, "NaN"},
		{"nothing to train", nil, Examples{Dim: 8}, Options{Mode: Replace}, "nothing to train"},
		{"validation fraction", nil, ex, Options{Mode: Replace, Validation: 0.9}, "validation"},
		{"unknown mode", nil, ex, Options{Mode: 7}, "mode"},
	} {
		if _, err := NewTrainer(tc.base, tc.ex, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestABackgroundLabelIsMarked(t *testing.T) {
	ex := syntheticExamples(3, 10, 8, 8)
	ex.Labels[2].Label = "background"
	h := train(t, nil, ex, Options{Mode: Replace, Background: "background"})
	if h.Background() != "background" {
		t.Fatalf("Background() = %q", h.Background())
	}
}

func TestPredictRejectsAWrongWidth(t *testing.T) {
	h := train(t, nil, syntheticExamples(2, 10, 8, 9), Options{Mode: Replace})
	if _, err := h.Predict(make([]float32, 7)); err == nil {
		t.Fatal("Predict accepted 7 values for an 8-wide head")
	}
}

// FromModel must give back a head merged into a float model, and the same
// head within half a quantization step from int8 per-tensor and per-channel
// classifiers.
func TestFromModelDequantizesTheClassifier(t *testing.T) {
	ex := syntheticExamples(3, 10, 8, 10)
	h := train(t, nil, ex, Options{Mode: Replace})
	g := build.New("fc only")
	x := g.Input("embedding", 1, 8)
	g.Output(g.Softmax("scores", g.FullyConnected("logits", x, 3, h.w, h.b, resnet.ActNone), 1))
	f, err := g.Finish()
	if err != nil {
		t.Fatal(err)
	}
	fromFloat, err := FromModel(f)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromFloat.w, h.w) || !reflect.DeepEqual(fromFloat.b, h.b) || fromFloat.Labels()[2] != "class_2" {
		t.Fatal("FromModel of a float model does not return its weights and class_N labels")
	}
	var calib [][]float32
	for _, l := range ex.Labels {
		calib = append(calib, l.Embeddings...)
	}
	q := quantizeModel(t, f, calib)
	perTensor, err := FromModel(q)
	if err != nil {
		t.Fatal(err)
	}
	// Per-channel: requantize the same weights with one scale per class.
	wi := q.Operators[findSite(t, q).fc].Inputs[1]
	pc := *q
	pc.Tensors = append([]resnet.Tensor(nil), q.Tensors...)
	wt := pc.Tensors[wi]
	wt.Data = make([]byte, len(h.w))
	wt.Quant = &resnet.Quant{Scale: make([]float32, 3), ZeroPoint: make([]int64, 3)}
	for c := range 3 {
		row := h.w[c*8 : (c+1)*8]
		data, s := symmetricInt8(row)
		copy(wt.Data[c*8:], data)
		wt.Quant.Scale[c] = s
	}
	pc.Tensors[wi] = wt
	bi := q.Operators[findSite(t, q).fc].Inputs[2]
	bt := pc.Tensors[bi]
	bt.Quant = nil // the scale then comes from input x weight scales
	in := q.Tensors[q.Operators[findSite(t, q).fc].Inputs[0]].Quant.Scale[0]
	bt.Data = make([]byte, 12)
	for c := range 3 {
		copy(bt.Data[4*c:], int32Bias(h.b[c:c+1], float64(in)*float64(wt.Quant.Scale[c])))
	}
	pc.Tensors[bi] = bt
	perChannel, err := FromModel(&pc)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		got  *Head
	}{{"per-tensor", perTensor}, {"per-channel", perChannel}} {
		for i, w := range h.w {
			if d := math.Abs(float64(tc.got.w[i] - w)); d > 0.51*maxAbs32(h.w)/127 {
				t.Fatalf("%s weight %d: %v, want %v within half a step", tc.name, i, tc.got.w[i], w)
			}
		}
		for c, b := range h.b {
			if d := math.Abs(float64(tc.got.b[c] - b)); d > 1e-3*(1+math.Abs(float64(b))) {
				t.Fatalf("%s bias %d: %v, want %v", tc.name, c, tc.got.b[c], b)
			}
		}
	}
}

func findSite(t *testing.T, m *resnet.Model) classifierSite {
	t.Helper()
	s, err := findClassifier(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func maxAbs32(v []float32) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}

func TestExportIntoAnInt8ResNetMatchesTheHead(t *testing.T) {
	test := loadFashion(t, "t10k", 300)
	f, err := build.ResNet(build.Config{Depth: 8, Input: [3]int{28, 28, 1}, Classes: 4, Weights: build.RandomWeights(3)})
	if err != nil {
		t.Fatal(err)
	}
	q := quantizeModel(t, f, test.pixels[:8])
	base, err := FromModel(q)
	if err != nil {
		t.Fatal(err)
	}
	r := newRunner(t, q)
	var embs [][]float32
	for _, p := range test.pixels {
		_, e := r.run(t, p)
		embs = append(embs, e)
	}
	h, err := base.Imprint("new thing", embs[:5])
	if err != nil {
		t.Fatal(err)
	}
	out, err := Export(q, h, embs)
	if err != nil {
		t.Fatal(err)
	}
	out = roundTrip(t, out)
	if got := out.Tensors[findSite(t, out).weights].Shape; !reflect.DeepEqual(got, []int{5, 64}) {
		t.Fatalf("exported weights shape %v, want [5 64]", got)
	}
	er := newRunner(t, out)
	if got := er.it.Output(0).Shape; !reflect.DeepEqual(got, []int{1, 5}) {
		t.Fatalf("exported scores shape %v, want [1 5]", got)
	}
	agree := 0
	for i, p := range test.pixels {
		s, _ := er.run(t, p)
		hs, _ := h.Predict(embs[i])
		if argmax32(s) == argmax32(hs) {
			agree++
		}
	}
	t.Logf("int8 ResNet-8 with an imprinted fifth class agrees with the head on %d/%d", agree, len(test.pixels))
	if float64(agree) < 0.95*float64(len(test.pixels)) {
		t.Errorf("exported model agrees with the head on %d of %d images, want >= 95%%", agree, len(test.pixels))
	}
	if _, err := Export(q, h, nil); err == nil {
		t.Error("Export of an int8 model accepted no calibration embeddings")
	}
	narrow, _ := NewHead([]string{"a"}, 3, []float32{1, 2, 3}, []float32{0}, "")
	if _, err := Export(q, narrow, embs); err == nil || !strings.Contains(err.Error(), "64 inputs") {
		t.Errorf("Export of a 3-wide head into a 64-wide model: %v", err)
	}
	if _, err := FromModel(q); err != nil {
		t.Errorf("the input model changed: %v", err)
	} else if got := q.Tensors[findSite(t, q).weights].Shape; got[0] != 4 {
		t.Errorf("Export changed the input model's classifier shape to %v", got)
	}
}
