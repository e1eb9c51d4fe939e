package quant

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

func TestActParamsHoldZeroExactlyAndCoverTheRange(t *testing.T) {
	for _, r := range [][2]float64{{-1, 1}, {0, 6}, {-3.2, 0.4}, {0.5, 2}, {-2, -0.5}, {0, 0}, {-1e-9, 1e-9}} {
		s, z, err := ActParams(r[0], r[1])
		if err != nil {
			t.Fatalf("%v: %v", r, err)
		}
		if s <= 0 || z < -128 || z > 127 {
			t.Fatalf("%v: scale %v zero point %d", r, s, z)
		}
		// Zero is representable exactly: q = z.
		lo := float64(s) * float64(-128-z)
		hi := float64(s) * float64(127-z)
		if lo > math.Min(r[0], 0)+float64(s) || hi < math.Max(r[1], 0)-float64(s) {
			t.Errorf("%v: representable range [%g, %g] misses the calibrated one", r, lo, hi)
		}
	}
	if _, _, err := ActParams(math.NaN(), 1); err == nil {
		t.Error("a NaN range gave no error")
	}
	if _, _, err := ActParams(0, math.Inf(1)); err == nil {
		t.Error("an infinite range gave no error")
	}
}

func TestWeightsArePerChannelSymmetric(t *testing.T) {
	// Two output channels with very different magnitudes: each gets its own
	// scale, so the small channel keeps its precision.
	w := []float32{1, -2, 0.5, 4, 0.01, -0.02, 0.005, 0.04}
	tensor := &resnet.Tensor{Name: "w", Type: resnet.Float32, Shape: []int{2, 1, 1, 4}, Data: build.Float32Bytes(w)}
	q, scales, err := symmetricInt8(tensor, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(scales) != 2 || math.Abs(scales[0]-4.0/127) > 1e-7 || math.Abs(scales[1]-0.04/127) > 1e-9 {
		t.Fatalf("scales %v, want [4/127 0.04/127]", scales)
	}
	for i, b := range q.Data {
		got := float64(int8(b)) * scales[i/4]
		if math.Abs(got-float64(w[i])) > scales[i/4]/2+1e-9 {
			t.Errorf("weight %d: %v dequantizes to %v", i, w[i], got)
		}
		if int8(b) == -128 {
			t.Errorf("weight %d uses -128; symmetric weights stay in [-127, 127]", i)
		}
	}
	if q.Quant.Dim != 0 || len(q.Quant.ZeroPoint) != 2 || q.Quant.ZeroPoint[0] != 0 {
		t.Errorf("quantization %+v, want per-channel on dim 0 with zero points 0", q.Quant)
	}
}

func TestBrokenInputsGiveClearErrors(t *testing.T) {
	g := build.New("one conv")
	x := g.Input("x", 1, 4, 4, 2)
	nan := make([]float32, 3*3*3*2)
	nan[5] = float32(math.NaN())
	g.Output(g.Conv2D("c", x, build.ConvSpec{Out: 3, KH: 3, KW: 3, Padding: resnet.PaddingSame, Weights: nan}))
	m, err := g.Finish()
	if err != nil {
		t.Fatal(err)
	}
	ok := Sample{make([]float32, 32)}
	if _, err := Model(m, nil, Options{}); err == nil || !strings.Contains(err.Error(), "at least one sample") {
		t.Errorf("no calibration data: %v", err)
	}
	if _, err := Model(m, []Sample{{make([]float32, 31)}}, Options{}); err == nil || !strings.Contains(err.Error(), "has 31 values") {
		t.Errorf("wrong sample size: %v", err)
	}
	if _, err := Model(m, []Sample{{}}, Options{}); err == nil || !strings.Contains(err.Error(), "has 0 inputs") {
		t.Errorf("wrong input count: %v", err)
	}
	if _, err := Model(m, []Sample{ok}, Options{}); err == nil || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("NaN weights: %v", err)
	}
}

// TestQuantizedResNetTracksTheFloatModel quantizes a CIFAR ResNet-20 and
// checks that the int8 model's scores stay close to the float model's.
func TestQuantizedResNetTracksTheFloatModel(t *testing.T) {
	f, err := build.ResNet(build.Config{Depth: 20, Input: [3]int{16, 16, 3}, Classes: 10, Weights: build.RandomWeights(3)})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	sample := func() []float32 {
		v := make([]float32, 16*16*3)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	var calib []Sample
	for i := 0; i < 16; i++ {
		calib = append(calib, Sample{sample()})
	}
	q, err := Model(f, calib, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Marshal(); err != nil {
		t.Fatalf("the quantized model does not validate: %v", err)
	}
	fi, err := interp.New(f, interp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	qi, err := interp.New(q, interp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i := 0; i < 20; i++ {
		x := sample()
		copy(fi.Input(0).Float32(), x)
		copy(qi.Input(0).Float32(), x)
		if err := fi.Invoke(); err != nil {
			t.Fatal(err)
		}
		if err := qi.Invoke(); err != nil {
			t.Fatal(err)
		}
		a, b := fi.Output(1).Float32(), qi.Output(1).Float32() // embeddings
		var num, den float64
		for k := range a {
			d := float64(a[k] - b[k])
			num += d * d
			den += float64(a[k]) * float64(a[k])
		}
		worst = math.Max(worst, math.Sqrt(num/den))
	}
	t.Logf("worst relative L2 error of the int8 embedding: %.4f", worst)
	if worst > 0.05 {
		t.Errorf("int8 embedding is %.1f%% away from float; want under 5%%", 100*worst)
	}
}
