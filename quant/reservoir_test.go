package quant

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

// TestCalibrationKeepsTheLogitsOfABoundedReservoir: past maxLogitsSamples
// samples, the logits ChooseLogitsRange reads stay at that many, drawn
// uniformly and the same way on every run.
func TestCalibrationKeepsTheLogitsOfABoundedReservoir(t *testing.T) {
	const in, classes, n = 8, 5, maxLogitsSamples + 1500
	r := rand.New(rand.NewPCG(3, 3))
	w := make([]float32, classes*in)
	for i := range w {
		w[i] = float32(r.NormFloat64())
	}
	g := build.New("softmax classifier")
	x := g.Input("x", 1, in)
	g.Output(g.Softmax("scores", g.FullyConnected("logits", x, classes, w, make([]float32, classes), resnet.ActNone), 1))
	m, err := g.Finish()
	if err != nil {
		t.Fatal(err)
	}
	// Sample i's first input is i: which samples were kept shows in the logits.
	src := SampleFunc{N: n, Make: func(i int) (Sample, error) {
		v := make([]float32, in)
		v[0] = float32(i)
		return Sample{v}, nil
	}}
	it, err := interp.New(m, interp.Options{KeepAll: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	lt := -1
	for ti := range logitsTensors(m) {
		lt = ti
	}
	logits := map[int][][]float64{lt: nil}
	if err := pass(m, it, src, map[int]*stats{}, false, logits); err != nil {
		t.Fatal(err)
	}
	kept := logits[lt]
	late := 0
	for _, v := range kept {
		if v[0]/float64(w[0]) >= maxLogitsSamples-0.5 {
			late++
		}
	}
	if len(kept) != maxLogitsSamples {
		t.Fatalf("kept the logits of %d samples, want %d", len(kept), maxLogitsSamples)
	}
	// Uniform over n: about maxLogitsSamples * 1500/n of the kept ones come from past the first fill.
	want := float64(maxLogitsSamples) * 1500 / n
	if float64(late) < want*0.8 || float64(late) > want*1.2 {
		t.Errorf("%d of the kept logits come from samples past the first %d, want about %.0f", late, maxLogitsSamples, want)
	}
	one, err := RunSamples(m, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	two, err := RunSamples(m, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := one.Model.Marshal()
	b2, _ := two.Model.Marshal()
	if !bytes.Equal(b1, b2) {
		t.Error("two calibrations on the same data gave different models")
	}
}
