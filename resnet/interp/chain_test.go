package interp

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
)

// chainWeights are the float weights of a small ResNet-like network that
// uses every supported operator.
type chainWeights struct {
	w1, b1, wd, bd, w2, b2, wf, bf []float32
}

func newChainWeights(r *rand.Rand) chainWeights {
	normal := func(n int, std float64) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(r.NormFloat64() * std)
		}
		return s
	}
	return chainWeights{
		w1: normal(4*3*3*3, 1/math.Sqrt(27)), b1: normal(4, 0.1),
		wd: normal(3*3*8, 1/3.0), bd: normal(8, 0.1),
		w2: normal(8*8, 1/math.Sqrt(8)), b2: normal(8, 0.1),
		wf: normal(5*8, 1/math.Sqrt(8)), bf: normal(5, 0.1),
	}
}

// calibration maps tensor names to the [min, max] seen in a float run.
type calibration map[string][2]float32

// activationQuant is the usual asymmetric int8 quantization of a range that
// is widened to include 0.
func (c calibration) quant(name string) *resnet.Quant {
	r := c[name]
	lo, hi := min(r[0], 0), max(r[1], 0)
	if hi-lo < 1e-6 {
		hi = lo + 1e-6
	}
	scale := (hi - lo) / 255
	zp := int64(math.Round(float64(-128 - lo/scale)))
	zp = min(max(zp, -128), 127)
	return quant(scale, zp)
}

// chainModel builds the network in float32 (cal == nil) or in int8 with
// float input and output, QUANTIZE and DEQUANTIZE inside (cal != nil).
// Tensor names are the same in both so that layers can be compared.
func chainModel(w chainWeights, cal calibration) *resnet.Model {
	var g graph
	q := cal != nil
	typ := resnet.Float32
	if q {
		typ = resnet.Int8
	}
	aq := func(name string) *resnet.Quant {
		if !q {
			return nil
		}
		return cal.quant(name)
	}
	// weights quantizes symmetric per output channel along dim, with the
	// int32 bias at input scale * weight scale.
	weights := func(name string, shape []int, dim int, wv, bv []float32, inQ *resnet.Quant) (int, int) {
		if !q {
			return g.constFloat(name, shape, wv), g.constFloat(name+"_bias", []int{len(bv)}, bv)
		}
		channels := shape[dim]
		wq := &resnet.Quant{Dim: dim, Scale: make([]float32, channels), ZeroPoint: make([]int64, channels)}
		// Channel of element i along dim.
		stride := 1
		for _, d := range shape[dim+1:] {
			stride *= d
		}
		for i, x := range wv {
			c := (i / stride) % channels
			wq.Scale[c] = max(wq.Scale[c], float32(math.Abs(float64(x)))/127)
		}
		qv := make([]int8, len(wv))
		for i, x := range wv {
			c := (i / stride) % channels
			qv[i] = int8(math.Round(float64(x / wq.Scale[c])))
		}
		bq := make([]int32, len(bv))
		for c, x := range bv {
			bq[c] = int32(math.Round(float64(x) / (float64(inQ.Scale[0]) * float64(wq.Scale[c]))))
		}
		return g.constInt8(name, shape, qv, wq), g.constInt32(name+"_bias", []int{len(bv)}, bq)
	}

	input := g.act("input", resnet.Float32, []int{1, 8, 8, 3}, nil)
	x := input
	if q {
		x = g.act("input_q", resnet.Int8, []int{1, 8, 8, 3}, cal.quant("input"))
		g.op(resnet.OpQuantize, nil, []int{input}, x)
	}
	xq := g.m.Tensors[x].Quant

	c1 := g.act("c1", typ, []int{1, 8, 8, 4}, aq("c1"))
	w1, b1 := weights("w1", []int{4, 3, 3, 3}, 0, w.w1, w.b1, xq)
	g.op(resnet.OpConv2D, &resnet.Conv2DOptions{Padding: resnet.PaddingSame, StrideW: 1, StrideH: 1, Activation: resnet.ActRelu}, []int{x, w1, b1}, c1)

	d1 := g.act("d1", typ, []int{1, 4, 4, 8}, aq("d1"))
	wd, bd := weights("wd", []int{1, 3, 3, 8}, 3, w.wd, w.bd, g.m.Tensors[c1].Quant)
	g.op(resnet.OpDepthwiseConv2D, &resnet.DepthwiseConv2DOptions{Padding: resnet.PaddingSame, StrideW: 2, StrideH: 2, DepthMultiplier: 2, Activation: resnet.ActRelu6}, []int{c1, wd, bd}, d1)

	c2 := g.act("c2", typ, []int{1, 4, 4, 8}, aq("c2"))
	w2, b2 := weights("w2", []int{8, 1, 1, 8}, 0, w.w2, w.b2, g.m.Tensors[d1].Quant)
	g.op(resnet.OpConv2D, &resnet.Conv2DOptions{Padding: resnet.PaddingValid, StrideW: 1, StrideH: 1}, []int{d1, w2, b2}, c2)

	a1 := g.act("a1", typ, []int{1, 4, 4, 8}, aq("a1"))
	g.op(resnet.OpAdd, &resnet.AddOptions{Activation: resnet.ActRelu}, []int{d1, c2}, a1)

	// PAD, pools and SQUEEZE keep their input's quantization.
	a1q := g.m.Tensors[a1].Quant
	p1 := g.act("p1", typ, []int{1, 6, 6, 8}, a1q)
	pads := g.constInt32("paddings", []int{4, 2}, []int32{0, 0, 1, 1, 1, 1, 0, 0})
	g.op(resnet.OpPad, nil, []int{a1, pads}, p1)

	m1 := g.act("m1", typ, []int{1, 3, 3, 8}, a1q)
	g.op(resnet.OpMaxPool2D, &resnet.Pool2DOptions{Padding: resnet.PaddingValid, StrideW: 2, StrideH: 2, FilterW: 2, FilterH: 2}, []int{p1}, m1)

	v1 := g.act("v1", typ, []int{1, 3, 3, 8}, a1q)
	g.op(resnet.OpAveragePool2D, &resnet.Pool2DOptions{Padding: resnet.PaddingSame, StrideW: 1, StrideH: 1, FilterW: 2, FilterH: 2}, []int{m1}, v1)

	g1 := g.act("g1", typ, []int{1, 1, 1, 8}, aq("g1"))
	axes := g.constInt32("axes", []int{2}, []int32{1, 2})
	g.op(resnet.OpMean, &resnet.ReducerOptions{KeepDims: true}, []int{v1, axes}, g1)

	s1 := g.act("s1", typ, []int{1, 8}, g.m.Tensors[g1].Quant)
	g.op(resnet.OpSqueeze, &resnet.SqueezeOptions{SqueezeDims: []int{1, 2}}, []int{g1}, s1)

	f1 := g.act("f1", typ, []int{1, 5}, aq("f1"))
	wf, bf := weights("wf", []int{5, 8}, 0, w.wf, w.bf, g.m.Tensors[s1].Quant)
	g.op(resnet.OpFullyConnected, &resnet.FullyConnectedOptions{}, []int{s1, wf, bf}, f1)

	r1 := g.act("r1", typ, []int{5}, g.m.Tensors[f1].Quant)
	g.op(resnet.OpReshape, &resnet.ReshapeOptions{NewShape: []int{-1}}, []int{f1}, r1)

	var probsQ *resnet.Quant
	if q {
		probsQ = quant(1.0/256, -128)
	}
	if !q {
		probs := g.act("probs", typ, []int{5}, nil)
		g.op(resnet.OpSoftmax, &resnet.SoftmaxOptions{Beta: 1}, []int{r1}, probs)
		return g.io([]int{input}, []int{probs})
	}
	pq := g.act("probs_q", typ, []int{5}, probsQ)
	g.op(resnet.OpSoftmax, &resnet.SoftmaxOptions{Beta: 1}, []int{r1}, pq)
	probs := g.act("probs", resnet.Float32, []int{5}, nil)
	g.op(resnet.OpDequantize, nil, []int{pq}, probs)
	return g.io([]int{input}, []int{probs})
}

// dequantized returns a tensor's values as float64, whatever its type.
func dequantized(t *Tensor) []float64 {
	var out []float64
	if f := t.Float32(); f != nil {
		for _, v := range f {
			out = append(out, float64(v))
		}
		return out
	}
	s, zp := float64(t.Quant.Scale[0]), t.Quant.ZeroPoint[0]
	for _, v := range t.Int8() {
		out = append(out, s*float64(int64(v)-zp))
	}
	return out
}

func tensorByName(t *testing.T, it *Interpreter, name string) *Tensor {
	t.Helper()
	for i := range it.NumTensors() {
		if tt := it.TensorByIndex(i); tt.Name == name {
			return tt
		}
	}
	t.Fatalf("no tensor named %q", name)
	return nil
}

func TestInt8ChainTracksFloatChainLayerByLayer(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	w := newChainWeights(r)
	input := make([]float32, 8*8*3)
	for i := range input {
		input[i] = float32(r.NormFloat64())
	}

	fit, err := New(chainModel(w, nil), Options{KeepAll: true})
	if err != nil {
		t.Fatalf("float model: %v", err)
	}
	copy(fit.Input(0).Float32(), input)
	if err := fit.Invoke(); err != nil {
		t.Fatal(err)
	}
	cal := calibration{}
	for i := range fit.NumTensors() {
		tt := fit.TensorByIndex(i)
		if f := tt.Float32(); f != nil {
			lo, hi := f[0], f[0]
			for _, v := range f {
				lo, hi = min(lo, v), max(hi, v)
			}
			cal[tt.Name] = [2]float32{lo, hi}
		}
	}

	qit, err := New(chainModel(w, cal), Options{KeepAll: true})
	if err != nil {
		t.Fatalf("int8 model: %v", err)
	}
	copy(qit.Input(0).Float32(), input)
	if err := qit.Invoke(); err != nil {
		t.Fatal(err)
	}

	// Each int8 layer, dequantized, must stay near the float layer. The
	// bound grows along the chain as rounding errors accumulate; a wiring
	// mistake (wrong layout, wrong tensor, wrong multiplier) is far
	// outside it.
	for _, name := range []string{"c1", "d1", "c2", "a1", "p1", "m1", "v1", "g1", "s1", "f1", "r1", "probs"} {
		want := dequantized(tensorByName(t, fit, name))
		got := dequantized(tensorByName(t, qit, name))
		if len(got) != len(want) {
			t.Fatalf("%s: %d values in int8 model, %d in float", name, len(got), len(want))
		}
		rng := float64(cal[name][1] - cal[name][0])
		var worst float64
		for i := range want {
			worst = max(worst, math.Abs(got[i]-want[i]))
		}
		t.Logf("%-5s range %.3f  max |int8 - float| %.4f", name, rng, worst)
		if worst > 0.03*rng+0.005 {
			t.Errorf("%s: int8 differs from float by %.4f (range %.3f)", name, worst, rng)
		}
	}
	var sum float64
	for _, p := range qit.Output(0).Float32() {
		sum += float64(p)
	}
	if math.Abs(sum-1) > 0.03 {
		t.Errorf("int8 softmax probabilities sum to %g, want about 1", sum)
	}
}

func TestArenaReuseGivesTheSameOutputsAsKeepAll(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	w := newChainWeights(r)
	m := chainModel(w, nil)
	keep, err := New(m, Options{KeepAll: true})
	if err != nil {
		t.Fatal(err)
	}
	reuse, err := New(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if reuse.ArenaBytes() >= keep.ArenaBytes() {
		t.Errorf("arena with reuse is %d bytes, not smaller than KeepAll's %d", reuse.ArenaBytes(), keep.ArenaBytes())
	}
	for i := range keep.Input(0).Float32() {
		v := float32(r.NormFloat64())
		keep.Input(0).Float32()[i] = v
		reuse.Input(0).Float32()[i] = v
	}
	if err := keep.Invoke(); err != nil {
		t.Fatal(err)
	}
	if err := reuse.Invoke(); err != nil {
		t.Fatal(err)
	}
	a, b := keep.Output(0).Float32(), reuse.Output(0).Float32()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("output %d: KeepAll %g, reuse %g", i, a[i], b[i])
		}
	}
}
