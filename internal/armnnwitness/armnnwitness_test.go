package armnnwitness

import (
	"context"
	"errors"
	"fmt"
	"github.com/shortcut-edge/shortcut/internal/compare"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/internal/npy"
	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

// A tcase is a float graph, and whether and how to quantize it.
type tcase struct {
	name  string
	build func(g *build.Graph, w *weights)
	model func() (*resnet.Model, error) // instead of build
	int8  bool
	io    quant.IO
	// lsb is the allowed distance per output, in LSB of the int8 tensor
	// behind it; missing entries mean 1.
	lsb []float64
	// edit changes the quantized model before it is written, to reach
	// schemes our quantizer does not produce.
	edit func(m *resnet.Model)
	// gap, when set, is part of the error Arm NN 20.08 gives for this case:
	// it refuses the model, and the test records that as a known gap.
	gap string
	// quirk, when set, maps our output to what Arm NN 20.08 gives instead,
	// for a known disagreement where we follow TFLite; known describes it.
	quirk func(m *resnet.Model, k int, ours any) any
	known string
}

type weights struct{ r *rand.Rand }

func (w *weights) normal(n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(w.r.NormFloat64() * std)
	}
	return v
}

func (w *weights) conv(out, kh, kw, in, stride int, p resnet.Padding, act resnet.Activation) build.ConvSpec {
	return build.ConvSpec{Out: out, KH: kh, KW: kw, StrideH: stride, StrideW: stride, Padding: p, Act: act,
		Weights: w.normal(out*kh*kw*in, math.Sqrt(2/float64(kh*kw*in))), Bias: w.normal(out, 0.1)}
}

func (w *weights) dw(k, c, mult int, act resnet.Activation) build.DepthwiseSpec {
	return build.DepthwiseSpec{KH: k, KW: k, Mult: mult, Padding: resnet.PaddingSame, Act: act,
		Weights: w.normal(k*k*c*mult, math.Sqrt(2/float64(k*k))), Bias: w.normal(c*mult, 0.1)}
}

func (w *weights) fc(g *build.Graph, x, out int, act resnet.Activation) int {
	in := 1
	for _, d := range g.Shape(x)[1:] {
		in *= d
	}
	return g.FullyConnected("fc", x, out, w.normal(out*in, math.Sqrt(1/float64(in))), w.normal(out, 0.1), act)
}

// smallChain is conv -> depthwise -> add -> mean -> fully connected ->
// softmax, with the pooled features as a second output.
func smallChain(g *build.Graph, w *weights) {
	same, relu := resnet.PaddingSame, resnet.ActRelu
	x := g.Input("x", 1, 12, 12, 4)
	c := g.Conv2D("conv", x, w.conv(8, 3, 3, 4, 1, same, relu))
	d := g.DepthwiseConv2D("dw", c, w.dw(3, 8, 1, relu))
	a := g.Add("add", c, d, resnet.ActNone)
	m := g.SpatialMean("mean", a, false)
	g.Output(g.Softmax("softmax", w.fc(g, m, 10, resnet.ActNone), 1))
	g.Output(m)
}

// padWithRawZero is Arm NN 20.08's int8 PAD: it fills the border with the
// raw value 0, where TFLite (and we) fill it with the output's zero point,
// i.e. real 0. Our output with the border rewritten that way must then agree.
func padWithRawZero(pads [][2]int) func(m *resnet.Model, k int, ours any) any {
	return func(m *resnet.Model, k int, ours any) any {
		shape := m.Tensors[m.Outputs[k]].Shape
		q := m.QuantBehind(m.Outputs[k])
		border := func(i int) bool {
			for d := len(shape) - 1; d >= 0; d-- {
				x := i % shape[d]
				i /= shape[d]
				if x < pads[d][0] || x >= shape[d]-pads[d][1] {
					return true
				}
			}
			return false
		}
		switch v := ours.(type) {
		case []int8:
			out := append([]int8(nil), v...)
			for i := range out {
				if border(i) {
					out[i] = 0
				}
			}
			return out
		case []float32:
			out := append([]float32(nil), v...)
			for i := range out {
				if border(i) {
					out[i] = q.Scale[0] * float32(0-q.ZeroPoint[0])
				}
			}
			return out
		}
		return ours
	}
}

// perChannelFC gives the FULLY_CONNECTED weights and bias one (equal) scale
// per output row: the same arithmetic, in the per-axis form some converters
// write.
func perChannelFC(m *resnet.Model) {
	for _, op := range m.Operators {
		if op.Op != resnet.OpFullyConnected {
			continue
		}
		for _, ti := range op.Inputs[1:] {
			t := &m.Tensors[ti]
			n := t.Shape[0]
			q := &resnet.Quant{Dim: 0}
			for range n {
				q.Scale = append(q.Scale, t.Quant.Scale[0])
				q.ZeroPoint = append(q.ZeroPoint, t.Quant.ZeroPoint[0])
			}
			t.Quant = q
		}
	}
}

func resnet20() (*resnet.Model, error) {
	return build.ResNet(build.Config{Depth: 20, Input: [3]int{32, 32, 3}, Classes: 10, Weights: build.RandomWeights(1)})
}

// Tolerances from NOTES.md: exact (<= 1 LSB) on single operators, 2 LSB on
// chains, 7 LSB after an int8 SOFTMAX (Arm NN's reference softmax works in
// float, TFLite's in fixed point).
const (
	lsbChain   = 2
	lsbSoftmax = 7
)

func cases() []tcase {
	same, valid, relu := resnet.PaddingSame, resnet.PaddingValid, resnet.ActRelu
	pad1 := [][2]int{{0, 0}, {1, 1}, {1, 1}, {0, 0}}
	single := func(name string, f func(g *build.Graph, w *weights)) tcase {
		return tcase{name: name, build: f, int8: true}
	}
	cs := []tcase{
		single("conv3x3_same_relu_9x11x5_to7", func(g *build.Graph, w *weights) {
			g.Output(g.Conv2D("c", g.Input("x", 1, 9, 11, 5), w.conv(7, 3, 3, 5, 1, same, relu)))
		}),
		single("conv3x3_valid_stride2_13x10x3_to6", func(g *build.Graph, w *weights) {
			g.Output(g.Conv2D("c", g.Input("x", 1, 13, 10, 3), w.conv(6, 3, 3, 3, 2, valid, resnet.ActNone)))
		}),
		single("conv1x1_stride2_same_9x9x12_to20", func(g *build.Graph, w *weights) {
			g.Output(g.Conv2D("c", g.Input("x", 1, 9, 9, 12), w.conv(20, 1, 1, 12, 2, same, resnet.ActNone)))
		}),
		single("depthwise3x3_relu_10x10x8", func(g *build.Graph, w *weights) {
			g.Output(g.DepthwiseConv2D("d", g.Input("x", 1, 10, 10, 8), w.dw(3, 8, 1, relu)))
		}),
		single("depthwise3x3_mult2_7x7x3", func(g *build.Graph, w *weights) {
			g.Output(g.DepthwiseConv2D("d", g.Input("x", 1, 7, 7, 3), w.dw(3, 3, 2, resnet.ActNone)))
		}),
		single("fully_connected_48_to_10", func(g *build.Graph, w *weights) {
			g.Output(w.fc(g, g.Input("x", 1, 48), 10, resnet.ActNone))
		}),
		single("add_two_inputs_relu_6x6x5", func(g *build.Graph, w *weights) {
			g.Output(g.Add("a", g.Input("x", 1, 6, 6, 5), g.Input("y", 1, 6, 6, 5), relu))
		}),
		single("max_pool3x3_stride2_same_9x9x4", func(g *build.Graph, w *weights) {
			g.Output(g.MaxPool2D("p", g.Input("x", 1, 9, 9, 4), 3, 2, same))
		}),
		single("average_pool2x2_valid_8x8x4", func(g *build.Graph, w *weights) {
			g.Output(g.AveragePool2D("p", g.Input("x", 1, 8, 8, 4), 2, 2, valid))
		}),
		single("mean_hw_7x7x16", func(g *build.Graph, w *weights) {
			g.Output(g.SpatialMean("m", g.Input("x", 1, 7, 7, 16), false))
		}),
		{name: "pad_1_each_side_5x5x3", int8: true, quirk: padWithRawZero(pad1), known: "int8 PAD fills with raw 0, not the zero point",
			build: func(g *build.Graph, w *weights) {
				g.Output(g.Pad("p", g.Input("x", 1, 5, 5, 3), pad1))
			}},
		single("reshape_4x4x2_to_32", func(g *build.Graph, w *weights) {
			g.Output(g.Reshape("r", g.Input("x", 1, 4, 4, 2), []int{1, 32}))
		}),
		single("squeeze_1x1x1x12", func(g *build.Graph, w *weights) {
			g.Output(g.Squeeze("s", g.Input("x", 1, 1, 1, 12), []int{1, 2}))
		}),
		{name: "softmax_10", int8: true, lsb: []float64{lsbSoftmax}, build: func(g *build.Graph, w *weights) {
			g.Output(g.Softmax("s", g.Input("x", 1, 10), 1))
		}},
		{name: "chain_conv_dw_add_mean_fc_softmax", int8: true, lsb: []float64{lsbSoftmax, lsbChain}, build: smallChain},
		{name: "resnet20_cifar_32x32", int8: true, lsb: []float64{lsbSoftmax, lsbChain}, model: resnet20},
		// Known gaps: valid TFLite that Arm NN 20.08 will not run.
		{name: "conv_relu_n1_to_1_6x6x3", int8: true, gap: "/RELU_N1_TO_1 in ParseConv2D", build: func(g *build.Graph, w *weights) {
			g.Output(g.Conv2D("c", g.Input("x", 1, 6, 6, 3), w.conv(4, 3, 3, 3, 1, same, resnet.ActReluN1To1)))
		}},
		{name: "fully_connected_per_channel_weights", int8: true, edit: perChannelFC, gap: "GetBiasTypeFromWeightsType",
			build: func(g *build.Graph, w *weights) {
				g.Output(w.fc(g, g.Input("x", 1, 12), 5, resnet.ActNone))
			}},
	}
	// The same int8 models with int8 inputs and outputs (no QUANTIZE or
	// DEQUANTIZE), for the operators and the chain.
	for _, c := range cs {
		switch c.name {
		case "conv3x3_same_relu_9x11x5_to7", "pad_1_each_side_5x5x3", "softmax_10", "chain_conv_dw_add_mean_fc_softmax":
			c.name += "/int8io"
			c.io = quant.Int8IO
			cs = append(cs, c)
		}
	}
	floats := []tcase{
		{name: "conv3x3_same_relu_9x11x5_to7", build: buildOf(cs, "conv3x3_same_relu_9x11x5_to7")},
		{name: "pad_1_each_side_5x5x3", build: buildOf(cs, "pad_1_each_side_5x5x3")},
		{name: "chain_conv_dw_add_mean_fc_softmax", build: smallChain},
		{name: "resnet20_cifar_32x32", model: resnet20},
		{name: "conv_relu_n1_to_1_6x6x3", gap: "/RELU_N1_TO_1 in ParseConv2D", build: buildOf(cs, "conv_relu_n1_to_1_6x6x3")},
	}
	for _, c := range floats {
		c.name += "/float"
		cs = append(cs, c)
	}
	return cs
}

func buildOf(cs []tcase, name string) func(g *build.Graph, w *weights) {
	for _, c := range cs {
		if c.name == name {
			return c.build
		}
	}
	panic("no case " + name)
}

// prepared is one case written to disk and run by our interpreter.
type prepared struct {
	m      *resnet.Model
	path   string
	inputs []string
	ours   []any
	quant  []*resnet.Quant // per output: the int8 quantization behind it
}

func randomInput(r *rand.Rand, t *resnet.Tensor) any {
	n := t.NumElements()
	if t.Type == resnet.Int8 {
		v := make([]int8, n)
		q := t.Quant
		for i := range v {
			// A standard normal quantized with the input's own parameters,
			// like what the float model saw during calibration.
			x := math.Round(r.NormFloat64()/float64(q.Scale[0])) + float64(q.ZeroPoint[0])
			v[i] = int8(math.Max(-128, math.Min(127, x)))
		}
		return v
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func prepare(dir string, idx int, c tcase) (*prepared, error) {
	var (
		m   *resnet.Model
		err error
	)
	if c.model != nil {
		m, err = c.model()
	} else {
		g := build.New(c.name)
		c.build(g, &weights{r: rand.New(rand.NewPCG(uint64(idx)+7, 3))})
		m, err = g.Finish()
	}
	if err != nil {
		return nil, err
	}
	if c.int8 {
		r := rand.New(rand.NewPCG(uint64(idx), 11))
		samples := make([]quant.Sample, 4)
		for s := range samples {
			for _, in := range m.Inputs {
				samples[s] = append(samples[s], randomInput(r, &m.Tensors[in]).([]float32))
			}
		}
		if m, err = quant.Model(m, samples, quant.Options{IO: c.io}); err != nil {
			return nil, err
		}
	}
	if c.edit != nil {
		c.edit(m)
	}
	b, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	p := &prepared{path: filepath.Join(dir, fmt.Sprintf("case%02d.tflite", idx))}
	if err := os.WriteFile(p.path, b, 0o644); err != nil {
		return nil, err
	}
	// Run what the file says, not what we built: load it back.
	if p.m, err = resnet.Load(b); err != nil {
		return nil, fmt.Errorf("loading our own file back: %w", err)
	}
	it, err := interp.New(p.m, interp.Options{})
	if err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(uint64(idx), 99))
	for k, ti := range p.m.Inputs {
		data := randomInput(r, &p.m.Tensors[ti])
		path := filepath.Join(dir, fmt.Sprintf("case%02d.in%d.npy", idx, k))
		if err := npy.Write(path, p.m.Tensors[ti].Shape, data); err != nil {
			return nil, err
		}
		p.inputs = append(p.inputs, path)
		switch v := data.(type) {
		case []float32:
			copy(it.Input(k).Float32(), v)
		case []int8:
			copy(it.Input(k).Int8(), v)
		}
	}
	if err := it.Invoke(); err != nil {
		return nil, err
	}
	for k, ti := range p.m.Outputs {
		o := it.Output(k)
		switch o.Type {
		case resnet.Float32:
			p.ours = append(p.ours, append([]float32(nil), o.Float32()...))
		case resnet.Int8:
			p.ours = append(p.ours, append([]int8(nil), o.Int8()...))
		default:
			return nil, fmt.Errorf("output %d has type %v", k, o.Type)
		}
		p.quant = append(p.quant, p.m.QuantBehind(ti))
	}
	return p, nil
}

// distance is the largest element difference between two outputs: in LSB of
// q's int8 tensor when q is set (raw for int8 data, divided by the scale for
// dequantized floats), else absolute.
func distance(ours, theirs any, q *resnet.Quant) (float64, error) {
	if fmt.Sprintf("%T", ours) != fmt.Sprintf("%T", theirs) {
		return 0, fmt.Errorf("we give %T, Arm NN gives %T", ours, theirs)
	}
	a, b := compare.Floats(ours), compare.Floats(theirs)
	if len(a) != len(b) {
		return 0, fmt.Errorf("%d elements from us, %d from Arm NN", len(a), len(b))
	}
	scale := 1.0
	if _, isInt := ours.([]int8); q != nil && !isInt {
		scale = float64(q.Scale[0])
	}
	worst := 0.0
	for i := range a {
		d := math.Abs(a[i]-b[i]) / scale
		if math.IsNaN(d) {
			return 0, fmt.Errorf("element %d is NaN (ours %v, Arm NN %v)", i, a[i], b[i])
		}
		worst = math.Max(worst, d)
	}
	return worst, nil
}

func opsOf(m *resnet.Model) string {
	seen := map[resnet.OpCode]bool{}
	var names []string
	for _, op := range m.Operators {
		if !seen[op.Op] {
			seen[op.Op] = true
			names = append(names, op.Op.String())
		}
	}
	return strings.Join(names, ",")
}

// TestArmNNAgreesWithOurInterpreter runs every case in our interpreter and in
// Arm NN and requires int8 outputs within each case's LSB tolerance and float
// outputs within 1e-4 relative to their magnitude. Cases Arm NN 20.08 refuses
// are recorded as known gaps with Arm NN's error; a refusal that is not a
// known gap, or a known gap that Arm NN now accepts, fails.
func TestArmNNAgreesWithOurInterpreter(t *testing.T) {
	if err := Available(); err != nil {
		t.Fatalf("the Arm NN witness is not installed: %v", err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var agree, gaps, known []string
	for i, c := range cases() {
		p, err := prepare(dir, i, c)
		if err != nil {
			t.Errorf("%s: preparing: %v", c.name, err)
			continue
		}
		outDir := filepath.Join(dir, fmt.Sprintf("case%02d.out", i))
		start := time.Now()
		err = Run(ctx, p.path, p.inputs, outDir)
		took := time.Since(start)
		var refused *RefusedError
		switch {
		case errors.As(err, &refused):
			how := "refused"
			if refused.Aborted {
				how = "assert() failed, SIGABRT"
			}
			gaps = append(gaps, fmt.Sprintf("| %-44s | %-36s | %s | %s |", c.name, opsOf(p.m), how, refused.Msg))
			if c.gap == "" || !strings.Contains(refused.Msg, c.gap) {
				t.Errorf("%s: Arm NN refused a model it is expected to run: %s", c.name, refused.Msg)
			}
			continue
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
			continue
		case c.gap != "":
			t.Errorf("%s: Arm NN now runs a model listed as a known gap (%q): update the case", c.name, c.gap)
		}
		worst, limitText := 0.0, ""
		for k, ours := range p.ours {
			shape, theirs, err := npy.Read(filepath.Join(outDir, fmt.Sprintf("output_%d.npy", k)))
			if err != nil {
				t.Errorf("%s: reading Arm NN output %d: %v", c.name, k, err)
				continue
			}
			if want := p.m.Tensors[p.m.Outputs[k]].Shape; fmt.Sprint(shape) != fmt.Sprint(want) {
				t.Errorf("%s output %d: Arm NN wrote shape %v, the model declares %v", c.name, k, shape, want)
				continue
			}
			var q *resnet.Quant
			limit := 1e-4 * (1 + compare.MaxAbs(compare.Floats(theirs)))
			if c.int8 {
				q = p.quant[k]
				limit = 1
				if k < len(c.lsb) {
					limit = c.lsb[k]
				}
			}
			if c.quirk != nil {
				raw, err := distance(ours, theirs, q)
				if err == nil {
					known = append(known, fmt.Sprintf("| %-44s | %s | %.4g %s |", c.name, c.known, raw, "LSB"))
				}
				ours = c.quirk(p.m, k, ours)
			}
			d, err := distance(ours, theirs, q)
			if err != nil {
				t.Errorf("%s output %d: %v", c.name, k, err)
				continue
			}
			// Dequantized outputs carry float32 rounding on top of whole LSB.
			if d > limit+1e-4 {
				t.Errorf("%s output %d: max difference %.4g exceeds %.3g", c.name, k, d, limit)
			}
			worst = math.Max(worst, d)
			limitText += fmt.Sprintf("%s%.3g", map[bool]string{true: "/", false: ""}[k > 0], limit)
		}
		unit := "abs"
		if c.int8 {
			unit = "LSB"
		}
		agree = append(agree, fmt.Sprintf("| %-44s | %9.4g %s | %-7s | %6.0f |", c.name, worst, unit, limitText, float64(took.Milliseconds())))
	}
	t.Logf("Arm NN (%s) against our interpreter:\n| case | max diff | limit | ms |\n%s",
		backendNote(), strings.Join(agree, "\n"))
	if len(known) > 0 {
		t.Logf("known disagreements (we follow TFLite; compared above after applying Arm NN's behaviour):\n| case | Arm NN 20.08 | raw max diff |\n%s",
			strings.Join(known, "\n"))
	}
	if len(gaps) > 0 {
		t.Logf("known gaps, models Arm NN 20.08 refuses:\n| case | ops | how | Arm NN error |\n%s", strings.Join(gaps, "\n"))
	}
}

func backendNote() string {
	if b := os.Getenv(BackendsEnv); b != "" {
		return b
	}
	return "default backends: CpuAcc if installed, then CpuRef"
}

// TestRunExplainsBadInputs feeds a float conv (input [1,9,11,5]) wrong input
// files: each must give an error that names the problem, never a refusal or
// a crash.
func TestRunExplainsBadInputs(t *testing.T) {
	if err := Available(); err != nil {
		t.Fatalf("the Arm NN witness is not installed: %v", err)
	}
	dir := t.TempDir()
	c := cases()[0]
	c.int8 = false
	p, err := prepare(dir, 0, c)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, shape []int, data any) string {
		path := filepath.Join(dir, name)
		if err := npy.Write(path, shape, data); err != nil {
			t.Fatal(err)
		}
		return path
	}
	notNpy := filepath.Join(dir, "text.npy")
	if err := os.WriteFile(notNpy, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		model  string
		inputs []string
		want   string
	}{
		{"wrong shape", p.path, []string{write("shape.npy", []int{1, 9, 11, 4}, make([]float32, 396))},
			"wants float32 [1,9,11,5], " + dir + "/shape.npy holds float32 [1,9,11,4]"},
		{"wrong dtype", p.path, []string{write("dtype.npy", []int{1, 9, 11, 5}, make([]int8, 495))}, "holds int8 [1,9,11,5]"},
		{"too few inputs", p.path, nil, "model has 1 inputs, 0 .npy files given"},
		{"too many inputs", p.path, []string{p.inputs[0], p.inputs[0]}, "model has 1 inputs, 2 .npy files given"},
		{"missing input", p.path, []string{filepath.Join(dir, "none.npy")}, "cannot open input"},
		{"not a .npy", p.path, []string{notNpy}, "not a .npy file"},
		{"missing model", filepath.Join(dir, "none.tflite"), p.inputs, "none.tflite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Run(context.Background(), tc.model, tc.inputs, filepath.Join(dir, "out"))
			var refused *RefusedError
			switch {
			case err == nil:
				t.Fatalf("Run succeeded, want an error containing %q", tc.want)
			case errors.As(err, &refused):
				t.Fatalf("Run reported a refusal for a bad input: %v", err)
			case !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// TestRunRefusesAFileThatIsNotTFLite: Arm NN's parser rejects the file and
// Run reports it as a refusal with the parser's message.
func TestRunRefusesAFileThatIsNotTFLite(t *testing.T) {
	if err := Available(); err != nil {
		t.Fatalf("the Arm NN witness is not installed: %v", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "junk.tflite")
	junk := make([]byte, 256)
	for i := range junk {
		junk[i] = byte(i * 37)
	}
	if err := os.WriteFile(path, junk, 0o644); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), path, nil, filepath.Join(dir, "out"))
	var refused *RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("Run(junk) = %v, want a *RefusedError", err)
	}
	if !strings.Contains(refused.Msg, "TfLite parser") {
		t.Fatalf("refusal %q does not come from the TfLite parser", refused.Msg)
	}
}
