package modelio_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/interp"
	"github.com/shortcut-edge/shortcut/resnet/modelio"
)

func tinyModel(t *testing.T, meta resnet.Metadata) *resnet.Model {
	t.Helper()
	m, err := build.ResNet(build.Config{Depth: 8, Input: [3]int{12, 10, 3}, Classes: 4, Weights: build.RandomWeights(5), Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDescribeReadsShapeNormalizationLabelsAndEmbedding(t *testing.T) {
	m := tinyModel(t, resnet.Metadata{Labels: []string{"cat", "", "T-shirt/top"},
		Mean: []float32{0.5}, Std: []float32{0.25}})
	io, err := modelio.Describe(m)
	if err != nil {
		t.Fatal(err)
	}
	in := io.Input
	if in.Height != 12 || in.Width != 10 || in.Channels != 3 || in.Type != resnet.Float32 || in.Elements() != 360 {
		t.Errorf("input = %+v, want float 12x10x3", in)
	}
	if !in.Normalized() || in.ContentHeight != 0 {
		t.Errorf("input normalization = %+v", in)
	}
	if io.Scores.Len != 4 || io.Scores.Index != 0 {
		t.Errorf("scores = %+v, want 4 values at output 0", io.Scores)
	}
	want := []string{"cat", "class_1", "T-shirt/top", "class_3"}
	if !slices.Equal(io.Labels, want) {
		t.Errorf("labels = %q, want %q", io.Labels, want)
	}
	if len(m.Outputs) > 1 {
		if io.Embedding == nil || io.Embedding.Index != 1 || io.Embedding.Len < 2 {
			t.Errorf("embedding = %+v, want output 1", io.Embedding)
		}
	} else if io.Embedding != nil {
		t.Errorf("embedding = %+v for a model with one output", io.Embedding)
	}
}

func TestDescribeRefusesWhatBreaksTheContract(t *testing.T) {
	cases := []struct {
		name   string
		change func(m *resnet.Model)
		want   string
	}{
		{"two inputs", func(m *resnet.Model) { m.Inputs = append(m.Inputs, m.Inputs[0]) }, "2 inputs"},
		{"no outputs", func(m *resnet.Model) { m.Outputs = nil }, "no outputs"},
		{"3-d input", func(m *resnet.Model) { m.Tensors[m.Inputs[0]].Shape = []int{12, 10, 3} }, "[1,H,W,C]"},
		{"int32 input", func(m *resnet.Model) { m.Tensors[m.Inputs[0]].Type = resnet.Int32 }, "FLOAT32 or INT8"},
		{"int8 input without parameters", func(m *resnet.Model) { m.Tensors[m.Inputs[0]].Type = resnet.Int8 }, "per-tensor"},
		{"two means for three channels", func(m *resnet.Model) { m.Meta.Mean = []float32{1, 2} }, "2 values for 3 channels"},
		{"zero std", func(m *resnet.Model) { m.Meta.Std = []float32{0} }, "non-zero"},
		{"int32 scores", func(m *resnet.Model) { m.Tensors[m.Outputs[0]].Type = resnet.Int32 }, "output 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := tinyModel(t, resnet.Metadata{})
			c.change(m)
			_, err := modelio.Describe(m)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Describe = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestArgmaxTakesTheFirstOfTiesAndNeverNaN(t *testing.T) {
	nan := float32(math.NaN())
	for _, c := range []struct {
		v    []float32
		want int
	}{
		{nil, -1}, {[]float32{3}, 0}, {[]float32{1, 5, 5, 2}, 1}, {[]float32{nan, 1, 0}, 1}, {[]float32{-1, nan, -2}, 0},
	} {
		if got := modelio.Argmax(c.v); got != c.want {
			t.Errorf("Argmax(%v) = %d, want %d", c.v, got, c.want)
		}
	}
}

func TestTopKAgreesWithAStableSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]int, 0, 8)
	for trial := range 500 {
		n := r.IntN(12)
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.IntN(5)) // many ties
		}
		k := r.IntN(8)
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] > v[idx[b]] })
		want := idx[:min(k, n)]
		got := modelio.TopK(buf, v, k)
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d: TopK(%v, %d) = %v, want %v", trial, v, k, got, want)
		}
	}
	if a := testing.AllocsPerRun(100, func() { modelio.TopK(buf, []float32{1, 3, 2, 5, 4}, 3) }); a != 0 {
		t.Errorf("TopK allocates %v times with room in dst", a)
	}
}

// A float model and its int8 input take the same real values: SetFloat32
// quantizes as TFLite's QUANTIZE does, and ReadFloat32 gives back the
// nearest representable value.
func TestTensorFloatAccessorsQuantizeAndDequantize(t *testing.T) {
	m := tinyModel(t, resnet.Metadata{})
	it, err := interp.New(m, interp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	in := it.Input(0)
	x := make([]float32, in.NumElements())
	for i := range x {
		x[i] = float32(i%17)/8 - 1
	}
	if err := in.SetFloat32(x); err != nil {
		t.Fatal(err)
	}
	got, err := in.Floats()
	if err != nil || !slices.Equal(got, x) {
		t.Fatalf("float round trip: %v", err)
	}
	if err := in.SetFloat32(x[:3]); err == nil || !strings.Contains(err.Error(), "takes 360 values, got 3") {
		t.Errorf("SetFloat32 of a short slice = %v", err)
	}
	if _, err := in.ReadFloat32(make([]float32, 2)); err == nil {
		t.Errorf("ReadFloat32 into a short buffer gave no error")
	}

	q := &resnet.Quant{Scale: []float32{0.5}, ZeroPoint: []int64{-3}}
	dst := make([]int8, 5)
	if !q.QuantizeInt8(dst, []float32{0, 0.25, -0.25, 100, -100}) {
		t.Fatal("QuantizeInt8 refused per-tensor parameters")
	}
	// round half away from zero: 0.5 -> 1, -0.5 -> -1; then clamped.
	if want := []int8{-3, -2, -4, 127, -128}; !slices.Equal(dst, want) {
		t.Errorf("QuantizeInt8 = %v, want %v", dst, want)
	}
	back := make([]float32, 5)
	q.DequantizeInt8(back, dst)
	if want := []float32{0, 0.5, -0.5, 65, -62.5}; !closeAll(back, want) {
		t.Errorf("DequantizeInt8 = %v, want %v", back, want)
	}
	pc := &resnet.Quant{Scale: []float32{1, 2}, ZeroPoint: []int64{0, 0}}
	if pc.QuantizeInt8(dst, []float32{1}) || pc.DequantizeInt8(back, dst) {
		t.Error("per-channel parameters were accepted for a per-tensor conversion")
	}
}

func closeAll(a, b []float32) bool {
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-6 {
			return false
		}
	}
	return len(a) == len(b)
}

// A classifier from elsewhere has only its scores as output: the tensor its
// last FULLY_CONNECTED reads becomes the embedding, and an interpreter gives
// the same values there as the model's own output 1 would.
func TestExposeEmbeddingUsesTheLastFullyConnectedsInput(t *testing.T) {
	m := tinyModel(t, resnet.Metadata{})
	if len(m.Outputs) < 2 {
		t.Fatalf("the builder's model has %d outputs; want scores and embedding", len(m.Outputs))
	}
	want := m.Outputs[1]
	one := *m
	one.Outputs = m.Outputs[:1:1]
	how, err := modelio.ExposeEmbedding(&one)
	if err != nil {
		t.Fatal(err)
	}
	if len(one.Outputs) != 2 || one.Outputs[1] != want || !strings.Contains(how, "FULLY_CONNECTED") {
		t.Fatalf("exposed %v (%s), want output 1 = tensor %d", one.Outputs, how, want)
	}
	io, err := modelio.Describe(&one)
	if err != nil || io.Embedding == nil {
		t.Fatalf("Describe after exposing: %+v, %v", io.Embedding, err)
	}
	if _, err := modelio.ExposeEmbedding(&one); err == nil {
		t.Error("exposing twice was accepted")
	}
	noFC := *m
	noFC.Outputs = m.Outputs[:1:1]
	noFC.Operators = nil
	if _, err := modelio.ExposeEmbedding(&noFC); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("a model without FULLY_CONNECTED: %v", err)
	}
}
