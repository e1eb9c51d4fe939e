package quant_test

import (
	"bytes"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
)

func rangeOf(t *testing.T, rep *quant.Report, name string) quant.TensorRange {
	t.Helper()
	for _, r := range rep.Ranges {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("report has no range for %q", name)
	return quant.TensorRange{}
}

// quantMSE is the mean squared error of quantizing every value of every
// sample to int8 with the range r.
func quantMSE(samples []quant.Sample, r quant.Range) float64 {
	s, z, _ := quant.ActParams(float64(r.Min), float64(r.Max))
	sc := float64(s)
	var e float64
	n := 0
	for _, smp := range samples {
		for _, x := range smp[0] {
			q := math.Max(-128, math.Min(127, math.Round(float64(x)/sc)+float64(z)))
			d := float64(x) - sc*(q-float64(z))
			e += d * d
			n++
		}
	}
	return e / float64(n)
}

// TestHistogramMethodsChooseTheirRanges calibrates one tensor on normal
// values with one huge outlier and on heavy-tailed (Laplace) values:
// min/max spends the int8 grid on the extremes, percentile clips at the
// 99.99th percentile of |x|, MSE picks the range with the least actual
// quantization error, and the graph output keeps its full range.
func TestHistogramMethodsChooseTheirRanges(t *testing.T) {
	g := build.New("add")
	x := g.Input("x", 1, 1000)
	g.Output(g.Add("y", x, x, resnet.ActNone))
	m, err := g.Finish()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	outlier := make([]quant.Sample, 40)
	laplace := make([]quant.Sample, 40)
	for i := range outlier {
		outlier[i] = quant.Sample{randomImage(r, 1000)}
		v := make([]float32, 1000)
		for k := range v {
			v[k] = float32(r.ExpFloat64())
			if r.IntN(2) == 0 {
				v[k] = -v[k]
			}
		}
		laplace[i] = quant.Sample{v}
	}
	outlier[7][0][3] = 100
	for _, data := range []struct {
		name    string
		samples []quant.Sample
		pctLo   float64 // bounds on percentile's maximum
		pctHi   float64
	}{
		{"normal with an outlier of 100", outlier, 3.5, 4.5}, // 99.99 % of |N(0,1)| lies within 3.9
		{"laplace", laplace, 8, 10},                          // 99.99 % of |Laplace(1)| lies within 9.2
	} {
		mse := map[quant.Method]float64{}
		for _, method := range []quant.Method{quant.MinMax, quant.Percentile, quant.MSE} {
			_, rep, err := quant.CalibrateWith(m, data.samples, quant.Options{Method: method})
			if err != nil {
				t.Fatal(err)
			}
			in := rangeOf(t, rep, "x")
			mse[method] = quantMSE(data.samples, in.Chosen)
			t.Logf("%s, %v: range %v (observed %v), %.4f%% clipped, quantization MSE %.3g", data.name, method, in.Chosen, in.Observed, 100*in.Clipped, mse[method])
			switch method {
			case quant.MinMax:
				if in.Chosen != in.Observed || in.Clipped != 0 {
					t.Errorf("%s: min/max chose %v, clipped %g; want the observed %v", data.name, in.Chosen, in.Clipped, in.Observed)
				}
			case quant.Percentile:
				if float64(in.Chosen.Max) < data.pctLo || float64(in.Chosen.Max) > data.pctHi || in.Clipped <= 0 || in.Clipped > 2e-4 {
					t.Errorf("%s: percentile chose %v clipping %g; want a maximum in [%g, %g] and about 0.01 %% clipped",
						data.name, in.Chosen, in.Clipped, data.pctLo, data.pctHi)
				}
			}
			out := rangeOf(t, rep, "y")
			if out.Chosen != out.Observed || (method != quant.MinMax && out.MinMaxBecause == "") {
				t.Errorf("%s, %v: graph output range %v (observed %v, reason %q); outputs keep min/max", data.name, method, out.Chosen, out.Observed, out.MinMaxBecause)
			}
		}
		if best := math.Min(mse[quant.MinMax], mse[quant.Percentile]); mse[quant.MSE] > 1.02*best {
			t.Errorf("%s: the MSE range has quantization error %.3g, worse than another method's %.3g", data.name, mse[quant.MSE], best)
		}
	}
}

func TestParseMethodAcceptsTheDocumentedNames(t *testing.T) {
	for i, n := range quant.Methods {
		m, err := quant.ParseMethod(strings.ToUpper(n))
		if err != nil || int(m) != i || m.String() != n {
			t.Errorf("%q: %v, %v", n, m, err)
		}
	}
	if _, err := quant.ParseMethod("kl"); err == nil || !strings.Contains(err.Error(), "minmax, percentile, mse") {
		t.Errorf("unknown method: %v", err)
	}
}

func TestBadCalibrationInputGivesClearErrors(t *testing.T) {
	g := build.New("conv")
	x := g.Input("x", 1, 4, 4, 2)
	g.Output(g.Conv2D("c", x, build.ConvSpec{Out: 3, KH: 3, KW: 3, Padding: resnet.PaddingSame, Weights: make([]float32, 54)}))
	m, err := g.Finish()
	if err != nil {
		t.Fatal(err)
	}
	few := make([]quant.Sample, 10)
	for i := range few {
		few[i] = quant.Sample{make([]float32, 32)}
	}
	cases := []struct {
		name    string
		samples []quant.Sample
		o       quant.Options
		want    string
	}{
		{"no samples", nil, quant.Options{}, "at least one sample"},
		{"fewer samples than the minimum", few, quant.Options{MinSamples: 32}, "10 calibration samples, at least 32"},
		{"a sample of the wrong size", []quant.Sample{{make([]float32, 48)}}, quant.Options{}, "has 48 values"},
		{"a percentile outside (50, 100]", few, quant.Options{Method: quant.Percentile, Percentile: 101}, "percentile 101"},
	}
	for _, tc := range cases {
		if _, err := quant.Run(m, tc.samples, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// TestACollapsedRangeIsAWarningNotAFailure quantizes a ReLU layer that is 0
// on every input: the model still works (the layer stays 0) and the report
// and the log name the tensor.
func TestACollapsedRangeIsAWarningNotAFailure(t *testing.T) {
	g := build.New("dead")
	x := g.Input("x", 1, 4, 4, 2)
	bias := []float32{-5, -5, -5}
	dead := g.Conv2D("dead", x, build.ConvSpec{Out: 3, KH: 1, KW: 1, Padding: resnet.PaddingSame, Act: resnet.ActRelu,
		Weights: []float32{0.1, 0.1, 0.1, 0.1, 0.1, 0.1}, Bias: bias})
	g.Output(g.Conv2D("next", dead, build.ConvSpec{Out: 2, KH: 1, KW: 1, Padding: resnet.PaddingSame,
		Weights: []float32{1, 1, 1, 1, 1, 1}, Bias: []float32{0.5, -0.5}}))
	m, err := g.Finish()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(2, 2))
	var samples []quant.Sample
	for range 4 {
		samples = append(samples, quant.Sample{randomImage(r, 32)})
	}
	var logs bytes.Buffer
	res, err := quant.Run(m, samples, quant.Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Report.Warnings) != 1 || !strings.Contains(res.Report.Warnings[0], `"dead"`) {
		t.Fatalf("warnings %q, want one naming the dead layer", res.Report.Warnings)
	}
	if !strings.Contains(logs.String(), "dead") || !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("log %q lacks the warning", logs.String())
	}
	for _, tt := range res.Model.Tensors {
		if tt.Name == "dead" && (tt.Quant.Scale[0] <= 0 || math.Abs(float64(tt.Quant.Scale[0])*255-1e-3) > 1e-9) {
			t.Errorf("dead layer scale %v, want the documented [0, 1e-3] range", tt.Quant.Scale)
		}
	}
}

// TestBiasCorrectionShrinksTheMeanErrorOfTheLayers quantizes the tiny
// ResNet with and without bias correction and compares the mean per-channel
// error the report measures before and after each layer's correction.
func TestBiasCorrectionShrinksTheMeanErrorOfTheLayers(t *testing.T) {
	dir := tinyResNet(4).write(t, t.TempDir())
	f, err := quant.FromExport(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 7))
	var calib []quant.Sample
	for range 64 {
		calib = append(calib, quant.Sample{randomImage(r, 14*14)})
	}
	res, err := quant.Run(f, calib, quant.Options{BiasCorrection: true})
	if err != nil {
		t.Fatal(err)
	}
	bc := res.Report.BiasCorrection
	// 7 convolutions: not the 2 exact shortcuts, and not the classifier,
	// whose logits range clips extremes on purpose.
	if len(bc) != 7 {
		t.Fatalf("%d corrected layers, want 7: %+v", len(bc), bc)
	}
	for _, l := range bc {
		if l.Name == "fc" {
			t.Errorf("the logits were bias-corrected: %+v", l)
		}
	}
	var before, after float64
	for _, l := range bc {
		t.Logf("%-12s before %.5f after %.5f (step %.5f, %d channels skipped)", l.Name, l.Before, l.After, l.Step, l.Skipped)
		before += l.Before / l.Step
		after += l.After / l.Step
	}
	if !(after < 0.5*before) {
		t.Errorf("mean per-channel error summed over layers: %.3f LSB before, %.3f after; want at least halved", before, after)
	}
	if _, err := res.Model.Marshal(); err != nil {
		t.Errorf("the corrected model does not validate: %v", err)
	}
}
