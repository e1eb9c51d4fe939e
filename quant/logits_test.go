package quant_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

// outlierLogits are the logits of n samples of a 10-class model whose two
// best classes are often close (gaps under 1), with one sample in fifty
// scaled up 40 times, as a half-trained ResNet-50 gives on a few images.
func outlierLogits(r *rand.Rand, n int) [][]float64 {
	out := make([][]float64, n)
	for i := range out {
		v := make([]float64, 10)
		for c := range v {
			v[c] = 2 * r.NormFloat64()
		}
		if i%50 == 7 {
			for c := range v {
				v[c] *= 40
			}
		}
		out[i] = v
	}
	return out
}

func TestChooseLogitsRangeKeepsTopOneThatMinMaxLoses(t *testing.T) {
	z := outlierLogits(rand.New(rand.NewPCG(3, 3)), 2000)
	lc, err := quant.ChooseLogitsRange(z, z)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range z {
		for _, x := range v {
			lo, hi = math.Min(lo, x), math.Max(hi, x)
		}
	}
	t.Logf("range %v of observed [%.1f, %.1f]: top-1 kept %.2f %% (min/max %.2f %%), score error %.4f (min/max %.4f)",
		lc.Range, lo, hi, 100*lc.Kept, 100*lc.KeptMinMax, lc.ScoreError, lc.ScoreErrorMinMax)
	if float64(lc.Range.Min) < lo || float64(lc.Range.Max) > hi || !(lc.Range.Max-lc.Range.Min < float32(hi-lo)/2) {
		t.Errorf("range %v: want a range inside the observed [%g, %g] and much narrower", lc.Range, lo, hi)
	}
	if !(lc.Kept > lc.KeptMinMax+0.02) || lc.Kept < 0.95 {
		t.Errorf("top-1 kept on %.4f of samples, min/max %.4f: want at least 0.95 and 2 points better", lc.Kept, lc.KeptMinMax)
	}
	if lc.ScoreError > lc.ScoreErrorMinMax {
		t.Errorf("score error %.4f, worse than min/max's %.4f", lc.ScoreError, lc.ScoreErrorMinMax)
	}
	// The simulation is what a real int8 SOFTMAX does: quantize a model
	// that is just the SOFTMAX (its input gets the same choice) and run it
	// in our runtime.
	g := build.New("softmax")
	x := g.Input("x", 1, 10)
	g.Output(g.Softmax("scores", x, 1))
	f, err := g.Finish()
	if err != nil {
		t.Fatal(err)
	}
	samples := make([]quant.Sample, len(z))
	for i, v := range z {
		s := make([]float32, 10)
		for c := range v {
			s[c] = float32(v[c])
		}
		samples[i] = quant.Sample{s}
	}
	res, err := quant.Run(f, samples, quant.Options{IO: quant.Int8IO})
	if err != nil {
		t.Fatal(err)
	}
	if in := rangeOf(t, res.Report, "x"); in.Logits == nil || in.Chosen != lc.Range {
		t.Fatalf("the SOFTMAX input got %v (%+v), want the choice %v", in.Chosen, in.Logits, lc.Range)
	}
	it, err := interp.New(res.Model, interp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	in := it.Input(0)
	sc, zp := float64(in.Quant.Scale[0]), float64(in.Quant.ZeroPoint[0])
	kept := 0
	for n, v := range z {
		for c, x := range v {
			in.Int8()[c] = int8(math.Max(-128, math.Min(127, math.Round(x/sc)+zp)))
		}
		if err := it.Invoke(); err != nil {
			t.Fatal(err)
		}
		scores := it.Output(0).Int8()
		best := 0
		for c := range scores {
			if scores[c] > scores[best] {
				best = c
			}
		}
		for c := range scores {
			if c != best && scores[c] == scores[best] {
				best = -1 // a tie: class order decides, not the image
				break
			}
		}
		ref := 0
		for c := range z[n] {
			if z[n][c] > z[n][ref] {
				ref = c
			}
		}
		if best == ref {
			kept++
		}
	}
	real := float64(kept) / float64(len(z))
	t.Logf("int8 SOFTMAX in our runtime keeps top-1 (untied) on %.2f %%, simulated %.2f %%", 100*real, 100*lc.Kept)
	if math.Abs(real-lc.Kept) > 0.005 {
		t.Errorf("our runtime keeps top-1 on %.4f of samples, the simulation says %.4f", real, lc.Kept)
	}
}

func TestChooseLogitsRangeRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name        string
		logits, ref [][]float64
		want        string
	}{
		{"none", nil, nil, "at least 1"},
		{"count", [][]float64{{1, 2}}, [][]float64{{1, 2}, {2, 1}}, "the same"},
		{"ragged", [][]float64{{1, 2}, {1}}, [][]float64{{1, 2}, {1, 2}}, "sample 1"},
		{"nan", [][]float64{{1, math.NaN()}}, [][]float64{{1, 2}}, "NaN"},
	} {
		if _, err := quant.ChooseLogitsRange(tc.logits, tc.ref); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}

// classifier is a model ending in FULLY_CONNECTED -> SOFTMAX, with an
// embedding in front whose scale grows 40 times on one input in fifty.
func classifier(t *testing.T, r *rand.Rand) (*resnet.Model, []quant.Sample) {
	t.Helper()
	const in, emb, classes = 16, 24, 10
	w1 := make([]float32, emb*in)
	for i := range w1 {
		w1[i] = float32(r.NormFloat64() / 4)
	}
	w2 := make([]float32, classes*emb)
	for i := range w2 {
		w2[i] = float32(r.NormFloat64() / 2)
	}
	g := build.New("classifier")
	x := g.Input("x", 1, in)
	e := g.FullyConnected("embedding", x, emb, w1, nil, resnet.ActRelu)
	logits := g.FullyConnected("logits", e, classes, w2, make([]float32, classes), resnet.ActNone)
	g.Output(g.Softmax("scores", logits, 1))
	m, err := g.Finish()
	if err != nil {
		t.Fatal(err)
	}
	samples := make([]quant.Sample, 600)
	for i := range samples {
		v := randomImage(r, in)
		if i%50 == 7 {
			for k := range v {
				v[k] *= 40
			}
		}
		samples[i] = quant.Sample{v}
	}
	return m, samples
}

func TestLogitsGetTheRangeThatKeepsTheScores(t *testing.T) {
	m, samples := classifier(t, rand.New(rand.NewPCG(5, 5)))
	for _, method := range []quant.Method{quant.MinMax, quant.MSE} {
		res, err := quant.Run(m, samples, quant.Options{Method: method})
		if err != nil {
			t.Fatal(err)
		}
		lg := rangeOf(t, res.Report, "logits")
		if lg.Logits == nil {
			t.Fatalf("%v: the logits range was not chosen for the scores: %+v", method, lg)
		}
		t.Logf("%v: logits range %v of observed %v, %.3f %% clipped: kept %.2f %% (min/max %.2f %%)", method, lg.Chosen, lg.Observed,
			100*lg.Clipped, 100*lg.Logits.Kept, 100*lg.Logits.KeptMinMax)
		if lg.Chosen != lg.Logits.Range || lg.Logits.Kept < lg.Logits.KeptMinMax {
			t.Errorf("%v: chosen %v, choice %+v", method, lg.Chosen, lg.Logits)
		}
		idx := tensorIndex(t, res.Model, "logits")
		s, z, _ := quant.ActParams(float64(lg.Chosen.Min), float64(lg.Chosen.Max))
		if q := res.Model.Tensors[idx].Quant; q.Scale[0] != s || q.ZeroPoint[0] != z {
			t.Errorf("%v: the int8 logits carry %v/%v, the chosen range gives %v/%v", method, q.Scale, q.ZeroPoint, s, z)
		}
	}
}

func TestHeadRefitFitsTheClassifierToTheInt8Embedding(t *testing.T) {
	m, samples := classifier(t, rand.New(rand.NewPCG(6, 6)))
	plain, err := quant.Run(m, samples, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if plain.Report.HeadRefit != nil {
		t.Errorf("refit without RefitHead: %+v", plain.Report.HeadRefit)
	}
	res, err := quant.Run(m, samples, quant.Options{RefitHead: true})
	if err != nil {
		t.Fatal(err)
	}
	h := res.Report.HeadRefit
	if h == nil {
		t.Fatal("no head refit report")
	}
	t.Logf("%+v", *h)
	if h.Layer != "logits" || h.Samples != len(samples) || h.Features != 24 || h.Ridge != quant.DefaultHeadRidge {
		t.Errorf("report %+v", *h)
	}
	// Ridge regression cannot do worse on its own objective than the
	// weights it is pulled towards.
	if !(h.FitRMSEAfter < h.FitRMSEBefore) {
		t.Errorf("fit RMSE %.5f -> %.5f; the refit must lower it", h.FitRMSEBefore, h.FitRMSEAfter)
	}
	// The outliers coarsen the int8 embedding, so agreement is well below
	// 1 here; it must still be a share that a working model gives.
	for _, v := range []float64{h.AgreementBefore, h.AgreementAfter} {
		if v < 0.6 || v > 1 {
			t.Errorf("agreement %v, want a share in [0.6, 1]", v)
		}
	}
	wi := tensorIndex(t, res.Model, "logits/weights")
	if string(res.Model.Tensors[wi].Data) == string(plain.Model.Tensors[tensorIndex(t, plain.Model, "logits/weights")].Data) {
		t.Error("the refit left the int8 classifier weights as they were")
	}
	if _, err := res.Model.Marshal(); err != nil {
		t.Errorf("the refit model does not validate: %v", err)
	}
	if _, err := quant.Run(m, samples, quant.Options{RefitHead: true, HeadRidge: -1}); err == nil || !strings.Contains(err.Error(), "ridge") {
		t.Errorf("negative ridge: %v", err)
	}

	// A model whose classifier is not followed by a SOFTMAX is left alone,
	// with a warning.
	g := build.New("no softmax")
	x := g.Input("x", 1, 4)
	g.Output(g.FullyConnected("fc", x, 3, make([]float32, 12), nil, resnet.ActNone))
	bare, err := g.Finish()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	var small []quant.Sample
	for range 8 {
		small = append(small, quant.Sample{randomImage(r, 4)})
	}
	res, err = quant.Run(bare, small, quant.Options{RefitHead: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Report.HeadRefit != nil || !strings.Contains(strings.Join(res.Report.Warnings, "\n"), "no FULLY_CONNECTED layer feeds a SOFTMAX") {
		t.Errorf("refit %+v, warnings %q", res.Report.HeadRefit, res.Report.Warnings)
	}
}
