package interp

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

func TestConvModelMatchesReferenceKernelBitForBit(t *testing.T) {
	for _, opts := range []*resnet.Conv2DOptions{
		{Padding: resnet.PaddingSame, StrideW: 1, StrideH: 1, Activation: resnet.ActRelu},
		{Padding: resnet.PaddingSame, StrideW: 2, StrideH: 2, Activation: resnet.ActRelu6},
		{Padding: resnet.PaddingSame, StrideW: 1, StrideH: 1, DilationW: 2, DilationH: 2},
	} {
		r := rand.New(rand.NewPCG(31, 32))
		m := convModel(r, 7, 9, 3, 6, opts)
		it, err := New(m, Options{})
		if err != nil {
			t.Fatal(err)
		}
		in := randInt8s(r, 7*9*3)
		copy(it.Input(0).Int8(), in)
		if err := it.Invoke(); err != nil {
			t.Fatal(err)
		}

		// The same convolution through the reference kernel, prepared by hand.
		out := it.Output(0)
		dil := max(opts.DilationH, 1)
		p := ref.Conv{Batch: 1, InH: 7, InW: 9, InC: 3, OutH: out.Shape[1], OutW: out.Shape[2], OutC: 6,
			FilterH: 3, FilterW: 3, StrideH: opts.StrideH, StrideW: opts.StrideW, DilationH: dil, DilationW: dil,
			InputOffset: 3, OutputOffset: 5}
		p.PadH, _ = ref.PaddingBefore(opts.StrideH, dil, 7, 3, p.OutH)
		p.PadW, _ = ref.PaddingBefore(opts.StrideW, dil, 9, 3, p.OutW)
		fq := m.Tensors[1].Quant
		p.Multiplier, p.Shift = ref.PerChannelMultipliers(0.05, fq.Scale, 0.1, 6)
		p.ActMin, p.ActMax = ref.ActivationRangeInt8(opts.Activation, 0.1, 5)
		want := make([]int8, len(out.Int8()))
		ref.ConvInt8(&p, in, int8View(m.Tensors[1].Data), int32View(m.Tensors[2].Data), want)
		if !slices.Equal(out.Int8(), want) {
			t.Errorf("options %+v: interpreter output differs from ref.ConvInt8", *opts)
		}
	}
}

func TestInvokeDoesNotAllocate(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	it, err := New(convModel(r, 8, 8, 4, 8, &resnet.Conv2DOptions{Padding: resnet.PaddingSame, StrideW: 1, StrideH: 1}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() { _ = it.Invoke() }); n != 0 {
		t.Errorf("Invoke on a conv model allocates %v times per run, want 0", n)
	}
	// The whole chain too: every kernel type.
	cit, err := New(chainModel(newChainWeights(r), nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() { _ = cit.Invoke() }); n != 0 {
		t.Errorf("Invoke on the float chain allocates %v times per run, want 0", n)
	}
	cal := calibration{"input": {-2, 2}, "c1": {0, 3}, "d1": {0, 3}, "c2": {-3, 3}, "a1": {0, 2}, "g1": {0, 1}, "f1": {-1, 1}}
	qit, err := New(chainModel(newChainWeights(r), cal), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() { _ = qit.Invoke() }); n != 0 {
		t.Errorf("Invoke on the int8 chain allocates %v times per run, want 0", n)
	}
}

func TestCloneIsIdenticalAndIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(35, 36))
	it, err := New(convModel(r, 6, 6, 3, 4, &resnet.Conv2DOptions{Padding: resnet.PaddingSame, StrideW: 1, StrideH: 1}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := randInt8s(r, 6*6*3), randInt8s(r, 6*6*3)
	cl := it.Clone()
	copy(it.Input(0).Int8(), a)
	copy(cl.Input(0).Int8(), b)
	if err := it.Invoke(); err != nil {
		t.Fatal(err)
	}
	outA := slices.Clone(it.Output(0).Int8())
	if err := cl.Invoke(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(it.Output(0).Int8(), outA) {
		t.Fatal("running the clone changed the original's output")
	}
	if slices.Equal(cl.Output(0).Int8(), outA) {
		t.Fatal("clone with different input gave the original's output")
	}
	copy(cl.Input(0).Int8(), a)
	if err := cl.Invoke(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cl.Output(0).Int8(), outA) {
		t.Error("clone with the same input gives a different output")
	}
	if &cl.Input(0).Int8()[0] == &it.Input(0).Int8()[0] {
		t.Error("clone shares the original's arena")
	}
}

func TestTensorViewsAndAccessors(t *testing.T) {
	r := rand.New(rand.NewPCG(37, 38))
	it, err := New(convModel(r, 4, 4, 2, 3, &resnet.Conv2DOptions{Padding: resnet.PaddingSame, StrideW: 1, StrideH: 1}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if it.NumInputs() != 1 || it.NumOutputs() != 1 || it.NumTensors() != 4 {
		t.Errorf("NumInputs, NumOutputs, NumTensors = %d, %d, %d; want 1, 1, 4", it.NumInputs(), it.NumOutputs(), it.NumTensors())
	}
	if it.Input(1) != nil || it.Output(-1) != nil || it.TensorByIndex(4) != nil {
		t.Error("out-of-range accessors return a tensor; want nil")
	}
	in := it.Input(0)
	if in.Name != "input" || in.Type != resnet.Int8 || !slices.Equal(in.Shape, []int{1, 4, 4, 2}) || in.Quant.Scale[0] != 0.05 {
		t.Errorf("input tensor = %q %v %v, want \"input\" INT8 [1 4 4 2] with scale 0.05", in.Name, in.Type, in.Shape)
	}
	if len(in.Int8()) != 32 || len(in.Bytes()) != 32 || in.Float32() != nil {
		t.Errorf("input views: Int8 %d, Bytes %d, Float32 nil=%v; want 32, 32, true", len(in.Int8()), len(in.Bytes()), in.Float32() == nil)
	}
	if it.arenaBase()%alignment != 0 {
		t.Errorf("arena starts at %#x, not %d-byte aligned", it.arenaBase(), alignment)
	}
	if b := it.TensorByIndex(2).Int32(); len(b) != 0 {
		t.Errorf("bias of a packed convolution has a view of %d int32s; want none (the fast kernels keep their own copy)", len(b))
	}
	kept, err := New(convModel(r, 4, 4, 2, 3, &resnet.Conv2DOptions{Padding: resnet.PaddingSame, StrideW: 1, StrideH: 1}), Options{KeepAll: true})
	if err != nil {
		t.Fatal(err)
	}
	if b := kept.TensorByIndex(2).Int32(); len(b) != 3 {
		t.Errorf("with KeepAll, bias view has %d int32s, want 3", len(b))
	}
}

func TestReleaseArena(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	it, err := New(convModel(r, 5, 5, 2, 3, &resnet.Conv2DOptions{Padding: resnet.PaddingSame, StrideW: 1, StrideH: 1}), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	in := randInt8s(r, 5*5*2)
	copy(it.Input(0).Int8(), in)
	if err := it.Invoke(); err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(it.Output(0).Int8())
	it.ReleaseArena()
	if it.arena != nil || it.tensors[it.prog.outputs[0]].data != nil {
		t.Fatal("ReleaseArena kept the arena")
	}
	c := it.Clone()
	copy(c.Input(0).Int8(), in)
	if err := c.Invoke(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Output(0).Int8(), want) {
		t.Error("a clone of a released interpreter computes another output")
	}
	copy(it.Input(0).Int8(), in) // Input binds a new arena
	if err := it.Invoke(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(it.Output(0).Int8(), want) {
		t.Error("after ReleaseArena, Invoke computes another output")
	}
}

func TestPlanArenaNeverOverlapsLiveTensors(t *testing.T) {
	r := rand.New(rand.NewPCG(39, 40))
	for trial := range 200 {
		n := 1 + r.IntN(30)
		lives := make([]lifetime, n)
		for i := range lives {
			first := r.IntN(20)
			lives[i] = lifetime{tensor: i, size: roundUp(int64(1 + r.IntN(5000))), first: first, last: first + r.IntN(6)}
		}
		offsets, total := planArena(lives, false)
		var sum int64
		for i, a := range lives {
			sum += a.size
			if offsets[i]%alignment != 0 || offsets[i]+a.size > total {
				t.Fatalf("trial %d: tensor %d at %d size %d, arena %d", trial, i, offsets[i], a.size, total)
			}
			for j := range i {
				b := lives[j]
				if a.overlaps(b) && offsets[i] < offsets[j]+b.size && offsets[j] < offsets[i]+a.size {
					t.Fatalf("trial %d: live tensors %d [%d,%d] and %d [%d,%d] share bytes", trial, i, a.first, a.last, j, b.first, b.last)
				}
			}
		}
		if total > sum {
			t.Fatalf("trial %d: arena %d larger than all tensors together %d", trial, total, sum)
		}
	}
}

func TestRequantizeDequantizeAndFullyConnectedKeepNumDims(t *testing.T) {
	var g graph
	in := g.act("x", resnet.Int8, []int{2, 3, 4}, quant(0.1, 0))
	rq := g.act("x2", resnet.Int8, []int{2, 3, 4}, quant(0.05, 10))
	g.op(resnet.OpQuantize, nil, []int{in}, rq)
	w := g.constInt8("w", []int{2, 4}, []int8{1, 0, 0, 0, 0, 0, 0, -1}, quant(0.5, 0))
	fc := g.act("fc", resnet.Int8, []int{2, 3, 2}, quant(0.1, 0))
	g.op(resnet.OpFullyConnected, &resnet.FullyConnectedOptions{KeepNumDims: true}, []int{rq, w, -1}, fc)
	out := g.act("y", resnet.Float32, []int{2, 3, 2}, nil)
	g.op(resnet.OpDequantize, nil, []int{fc}, out)
	it, err := New(g.io([]int{in}, []int{out}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	x := it.Input(0).Int8()
	for i := range x {
		x[i] = int8(i - 12)
	}
	if err := it.Invoke(); err != nil {
		t.Fatal(err)
	}
	y := it.Output(0).Float32()
	for row := range 6 {
		// fc = 0.5*x[0] and -0.5*x[3], with x exact in both int8 scales.
		first, last := 0.1*float64(row*4-12), 0.1*float64(row*4+3-12)
		want := []float64{0.5 * first, -0.5 * last}
		for k := range 2 {
			if d := float64(y[row*2+k]) - want[k]; d > 0.051 || d < -0.051 {
				t.Errorf("row %d output %d = %g, want %g", row, k, y[row*2+k], want[k])
			}
		}
	}
}

// badModel returns a fresh copy of a valid int8 conv model, changed by f.
func badModel(f func(m *resnet.Model)) *resnet.Model {
	m := convModel(rand.New(rand.NewPCG(41, 42)), 4, 4, 2, 3, &resnet.Conv2DOptions{Padding: resnet.PaddingSame, StrideW: 1, StrideH: 1})
	f(m)
	return m
}

func TestNewRejectsBadModelsWithErrors(t *testing.T) {
	tests := []struct {
		name  string
		model *resnet.Model
		opts  Options
		want  []string // every one of these must appear in the error
	}{
		{"nil model", nil, Options{}, []string{"nil model"}},
		{"unsupported input type names op, tensor and supported types", badModel(func(m *resnet.Model) {
			m.Tensors[0].Type = resnet.Int16
		}), Options{}, []string{"operator 0 (CONV_2D)", `tensor 0 "input"`, "INT16", "INT8, FLOAT32"}},
		{"declared output shape disagrees", badModel(func(m *resnet.Model) {
			m.Tensors[3].Shape = []int{1, 4, 4, 5}
		}), Options{}, []string{"operator 0 (CONV_2D)", "[1 4 4 5]", "[1 4 4 3]"}},
		{"arena above the limit", badModel(func(*resnet.Model) {}), Options{MaxArenaBytes: 40}, []string{"MaxArenaBytes"}},
		{"arena total above the limit though each tensor fits", badModel(func(*resnet.Model) {}), Options{MaxArenaBytes: 100}, []string{"arena of 128 bytes", "MaxArenaBytes"}},
		{"huge activation shape", badModel(func(m *resnet.Model) {
			m.Tensors[0].Shape = []int{1 << 20, 1 << 20, 1 << 20, 2}
		}), Options{}, []string{}},
		{"non-constant filter", badModel(func(m *resnet.Model) {
			m.Tensors[1].Data = nil
		}), Options{}, []string{}},
		{"grouped convolution", badModel(func(m *resnet.Model) {
			m.Tensors[0].Shape = []int{1, 4, 4, 4}
		}), Options{}, []string{"input channels"}},
		{"bias of the wrong length", badModel(func(m *resnet.Model) {
			m.Tensors[2].Shape = []int{2}
			m.Tensors[2].Data = m.Tensors[2].Data[:8]
		}), Options{}, []string{"bias"}},
		{"constant data of the wrong length", badModel(func(m *resnet.Model) {
			m.Tensors[1].Data = m.Tensors[1].Data[:5]
		}), Options{}, []string{"bytes"}},
		{"operators out of order", badModel(func(m *resnet.Model) {
			m.Operators[0].Inputs[0] = 3
			m.Inputs = []int{0}
		}), Options{}, []string{}},
		{"unsupported operator", badModel(func(m *resnet.Model) {
			m.Operators[0].Op = 99
		}), Options{}, []string{"not supported"}},
		{"zero stride", badModel(func(m *resnet.Model) {
			m.Operators[0].Options = &resnet.Conv2DOptions{Padding: resnet.PaddingSame}
		}), Options{}, []string{"stride"}},
		{"int8 without quantization", badModel(func(m *resnet.Model) {
			m.Tensors[3].Quant = nil
		}), Options{}, []string{}},
		{"negative arena limit", badModel(func(*resnet.Model) {}), Options{MaxArenaBytes: -1}, []string{"MaxArenaBytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it, err := New(tt.model, tt.opts)
			if err == nil {
				t.Fatalf("New succeeded (arena %d bytes); want an error", it.ArenaBytes())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestNewRejectsBadOperatorSetups(t *testing.T) {
	tests := []struct {
		name  string
		build func(g *graph) *resnet.Model
		want  string
	}{
		{"add with broadcasting", func(g *graph) *resnet.Model {
			a := g.act("a", resnet.Float32, []int{1, 2, 2, 3}, nil)
			b := g.act("b", resnet.Float32, []int{1, 1, 1, 3}, nil)
			o := g.act("o", resnet.Float32, []int{1, 2, 2, 3}, nil)
			g.op(resnet.OpAdd, &resnet.AddOptions{}, []int{a, b}, o)
			return g.io([]int{a, b}, []int{o})
		}, "broadcasting"},
		{"int8 softmax with the wrong output quantization", func(g *graph) *resnet.Model {
			a := g.act("a", resnet.Int8, []int{1, 10}, quant(0.1, 0))
			o := g.act("o", resnet.Int8, []int{1, 10}, quant(0.1, 0))
			g.op(resnet.OpSoftmax, &resnet.SoftmaxOptions{Beta: 1}, []int{a}, o)
			return g.io([]int{a}, []int{o})
		}, "1/256"},
		{"max pool changing quantization", func(g *graph) *resnet.Model {
			a := g.act("a", resnet.Int8, []int{1, 4, 4, 1}, quant(0.1, 0))
			o := g.act("o", resnet.Int8, []int{1, 2, 2, 1}, quant(0.2, 0))
			g.op(resnet.OpMaxPool2D, &resnet.Pool2DOptions{Padding: resnet.PaddingValid, StrideW: 2, StrideH: 2, FilterW: 2, FilterH: 2}, []int{a}, o)
			return g.io([]int{a}, []int{o})
		}, "same quantization"},
		{"mean over the channel axis", func(g *graph) *resnet.Model {
			a := g.act("a", resnet.Float32, []int{1, 2, 2, 3}, nil)
			ax := g.constInt32("axes", []int{1}, []int32{3})
			o := g.act("o", resnet.Float32, []int{1, 2, 2}, nil)
			g.op(resnet.OpMean, &resnet.ReducerOptions{}, []int{a, ax}, o)
			return g.io([]int{a}, []int{o})
		}, "spatial axes"},
		{"reshape to a different element count", func(g *graph) *resnet.Model {
			a := g.act("a", resnet.Float32, []int{2, 3}, nil)
			o := g.act("o", resnet.Float32, []int{7}, nil)
			g.op(resnet.OpReshape, &resnet.ReshapeOptions{NewShape: []int{7}}, []int{a}, o)
			return g.io([]int{a}, []int{o})
		}, "elements"},
		{"hybrid float input with int8 weights", func(g *graph) *resnet.Model {
			a := g.act("a", resnet.Float32, []int{1, 4}, nil)
			w := g.constInt8("w", []int{2, 4}, make([]int8, 8), quant(0.1, 0))
			o := g.act("o", resnet.Float32, []int{1, 2}, nil)
			g.op(resnet.OpFullyConnected, &resnet.FullyConnectedOptions{}, []int{a, w, -1}, o)
			return g.io([]int{a}, []int{o})
		}, "weights"},
		{"pad with negative padding", func(g *graph) *resnet.Model {
			a := g.act("a", resnet.Float32, []int{1, 2, 2, 1}, nil)
			p := g.constInt32("p", []int{4, 2}, []int32{0, 0, -1, 0, 0, 0, 0, 0})
			o := g.act("o", resnet.Float32, []int{1, 1, 2, 1}, nil)
			g.op(resnet.OpPad, nil, []int{a, p}, o)
			return g.io([]int{a}, []int{o})
		}, "padding"},
		{"dequantize from float", func(g *graph) *resnet.Model {
			a := g.act("a", resnet.Float32, []int{3}, nil)
			o := g.act("o", resnet.Float32, []int{3}, nil)
			g.op(resnet.OpDequantize, nil, []int{a}, o)
			return g.io([]int{a}, []int{o})
		}, "FLOAT32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g graph
			m := tt.build(&g)
			if _, err := prepare(m, Options{}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("prepare without Validate: error %v; want one mentioning %q", err, tt.want)
			}
			_, err := New(m, Options{})
			if err == nil {
				t.Fatal("New succeeded; want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// TestMutatedModelsNeverPanic changes one thing at random in a valid model,
// many times: New must return an error or an interpreter, and an accepted
// model must run without going out of bounds.
func TestMutatedModelsNeverPanic(t *testing.T) {
	r := rand.New(rand.NewPCG(43, 44))
	w := newChainWeights(r)
	types := []resnet.DType{resnet.Float32, resnet.Int8, resnet.Int32, resnet.Int16, resnet.Int64}
	accepted, rejected := 0, 0
	for trial := range 3000 {
		m := chainModel(w, nil)
		if trial%2 == 1 {
			m = chainModel(w, calibration{"input": {-2, 2}, "c1": {0, 3}, "d1": {0, 3}, "c2": {-3, 3}, "a1": {0, 2}, "g1": {0, 1}, "f1": {-1, 1}})
		}
		ti := r.IntN(len(m.Tensors))
		oi := r.IntN(len(m.Operators))
		op := &m.Operators[oi]
		switch r.IntN(7) {
		case 0: // reshape a tensor
			s := slices.Clone(m.Tensors[ti].Shape)
			if len(s) > 0 {
				s[r.IntN(len(s))] = r.IntN(12) - 1
			}
			m.Tensors[ti].Shape = s
		case 1: // drop or add a dimension
			if r.IntN(2) == 0 && len(m.Tensors[ti].Shape) > 0 {
				m.Tensors[ti].Shape = m.Tensors[ti].Shape[1:]
			} else {
				m.Tensors[ti].Shape = append([]int{1 + r.IntN(3)}, m.Tensors[ti].Shape...)
			}
		case 2:
			m.Tensors[ti].Type = types[r.IntN(len(types))]
		case 3:
			m.Tensors[ti].Quant = nil
		case 4:
			if len(op.Inputs) > 0 {
				op.Inputs[r.IntN(len(op.Inputs))] = r.IntN(len(m.Tensors)+2) - 1
			}
		case 5:
			op.Op = []resnet.OpCode{resnet.OpAdd, resnet.OpConv2D, resnet.OpMean, resnet.OpPad, resnet.OpReshape, resnet.OpSoftmax, resnet.OpFullyConnected}[r.IntN(7)]
		case 6:
			switch o := op.Options.(type) {
			case *resnet.Conv2DOptions:
				o.StrideW, o.DilationH = r.IntN(4), r.IntN(4)
			case *resnet.DepthwiseConv2DOptions:
				o.DepthMultiplier = r.IntN(4)
			case *resnet.Pool2DOptions:
				o.FilterW, o.StrideH = r.IntN(5), r.IntN(4)
			case *resnet.ReshapeOptions:
				o.NewShape = []int{r.IntN(8) - 1, r.IntN(8) - 1}
			case *resnet.SqueezeOptions:
				o.SqueezeDims = []int{r.IntN(6) - 3}
			}
		}
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("trial %d: panic %v", trial, p)
				}
			}()
			for _, build := range []func(*resnet.Model, Options) (*Interpreter, error){New} {
				it, err := build(m, Options{})
				if err != nil {
					rejected++
					continue
				}
				accepted++
				if err := it.Invoke(); err != nil {
					t.Fatalf("trial %d: Invoke: %v", trial, err)
				}
			}
		}()
	}
	t.Logf("%d mutated models accepted and run, %d rejected", accepted, rejected)
	if accepted == 0 || rejected == 0 {
		t.Errorf("mutations gave %d accepted and %d rejected models; the test needs both to mean anything", accepted, rejected)
	}
}

// The format layer's operator registry and the kernels must list the same
// operators: adding one to resnet's registry without its op_*.go file here
// (or the other way round) fails this test.
func TestEveryRegisteredOperatorHasAKernel(t *testing.T) {
	for _, code := range resnet.Ops() {
		if _, ok := preparers[code]; !ok {
			t.Errorf("%v is in resnet's operator registry but has no kernel (an op_*.go file registering it)", code)
		}
	}
	if len(preparers) != len(resnet.Ops()) {
		t.Errorf("%d kernels registered for %d operators", len(preparers), len(resnet.Ops()))
	}
}
