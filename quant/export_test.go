package quant_test

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
	"github.com/shortcut-edge/shortcut/train"
)

// exportWriter writes a shortcut-float-v1 export by hand, with the layout
// train.Export uses, so that FromExport can be held to train's reference
// interpreter without training anything.
type exportWriter struct {
	m    train.Manifest
	blob []byte
	r    *rand.Rand
	ch   map[string]int // channels of each activation
}

func newExportWriter(seed uint64, h, w, c int) *exportWriter {
	e := &exportWriter{r: rand.New(rand.NewPCG(seed, 5)), ch: map[string]int{"input": c}}
	e.m = train.Manifest{Format: train.ExportFormat, Arch: "test-resnet", Weights: "weights.bin",
		Tensors: map[string]train.Tensor{}, BNEpsilon: 1e-3,
		Input: train.ExportInput{Name: "input", Shape: []int{1, h, w, c}, ImageH: h, ImageW: w}}
	for range c {
		e.m.Input.Mean = append(e.m.Input.Mean, 0.3)
		e.m.Input.Std = append(e.m.Input.Std, 0.25)
	}
	for i := range 10 {
		e.m.Classes = append(e.m.Classes, string(rune('a'+i)))
	}
	return e
}

func (e *exportWriter) tensor(name string, shape []int, v []float32) {
	e.m.Tensors[name] = train.Tensor{Shape: shape, Offset: int64(len(e.blob))}
	for _, f := range v {
		e.blob = binary.LittleEndian.AppendUint32(e.blob, math.Float32bits(f))
	}
}

func (e *exportWriter) normal(n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(e.r.NormFloat64() * std)
	}
	return v
}

func (e *exportWriter) conv(name, in string, out, k, stride, pad int, relu bool) string {
	cin := e.ch[in]
	e.tensor(name+".weights", []int{out, k, k, cin}, e.normal(out*k*k*cin, math.Sqrt(2/float64(k*k*cin))))
	e.tensor(name+".bias", []int{out}, e.normal(out, 0.1))
	act := "none"
	if relu {
		act = "relu"
	}
	e.m.Ops = append(e.m.Ops, train.ExportOp{Op: "conv2d", Name: name, Inputs: []string{in}, Output: name,
		Weights: name + ".weights", Bias: name + ".bias", Stride: []int{stride, stride},
		Padding: []int{pad, pad, pad, pad}, Activation: act})
	e.ch[name] = out
	return name
}

// shortcutA is the option-A shortcut as train.Export writes it: a 1x1
// stride-2 convolution with 0/1 weights and zero bias.
func (e *exportWriter) shortcutA(name, in string, out int) string {
	cin := e.ch[in]
	w := make([]float32, out*cin)
	for c := range cin {
		w[c*cin+c] = 1
	}
	e.tensor(name+".weights", []int{out, 1, 1, cin}, w)
	e.tensor(name+".bias", []int{out}, make([]float32, out))
	e.m.Ops = append(e.m.Ops, train.ExportOp{Op: "conv2d", Name: name, Inputs: []string{in}, Output: name,
		Weights: name + ".weights", Bias: name + ".bias", Stride: []int{2, 2}, Padding: []int{0, 0, 0, 0},
		Activation: "none", Synthesized: true})
	e.ch[name] = out
	return name
}

func (e *exportWriter) add(name, a, b string) string {
	e.m.Ops = append(e.m.Ops, train.ExportOp{Op: "add", Name: name, Inputs: []string{a, b}, Output: name, Activation: "relu"})
	e.ch[name] = e.ch[a]
	return name
}

func (e *exportWriter) maxPool(name, in string, k, stride, pad int) string {
	e.m.Ops = append(e.m.Ops, train.ExportOp{Op: "max_pool", Name: name, Inputs: []string{in}, Output: name,
		Kernel: []int{k, k}, Stride: []int{stride, stride}, Padding: []int{pad, pad, pad, pad}, Activation: "none"})
	e.ch[name] = e.ch[in]
	return name
}

func (e *exportWriter) head(in string) {
	e.m.Ops = append(e.m.Ops, train.ExportOp{Op: "mean", Name: "avgpool", Inputs: []string{in}, Output: "avgpool", Activation: "none"})
	c := e.ch[in]
	e.tensor("fc.weights", []int{10, c}, e.normal(10*c, math.Sqrt(1/float64(c))))
	e.tensor("fc.bias", []int{10}, e.normal(10, 0.1))
	e.m.Ops = append(e.m.Ops, train.ExportOp{Op: "fully_connected", Name: "fc", Inputs: []string{"avgpool"}, Output: "fc",
		Weights: "fc.weights", Bias: "fc.bias", Activation: "none"})
	e.m.Output = "fc"
}

func (e *exportWriter) write(t *testing.T, dir string) string {
	t.Helper()
	js, err := json.MarshalIndent(e.m, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "weights.bin"), e.blob, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tinyResNet is a ResNet-8-shaped export on 14x14x1: a stem with a padded
// max pool, an identity block, and two downsampling blocks with option-A
// shortcuts, one on an odd size (7 -> 4, where the explicit padding equals
// TFLite's SAME) and one on an even size (4 -> 2, where it does not).
func tinyResNet(seed uint64) *exportWriter {
	e := newExportWriter(seed, 14, 14, 1)
	x := e.conv("conv1", "input", 8, 3, 1, 1, true)
	x = e.maxPool("pool", x, 3, 2, 1) // 14 -> 7: PAD + VALID (zero padding after a ReLU)
	y := e.conv("b1.conv1", x, 8, 3, 1, 1, true)
	y = e.conv("b1.conv2", y, 8, 3, 1, 1, false)
	x = e.add("b1.add", y, x)
	y = e.conv("b2.conv1", x, 16, 3, 2, 1, true) // 7 -> 4: SAME
	y = e.conv("b2.conv2", y, 16, 3, 1, 1, false)
	x = e.add("b2.add", y, e.shortcutA("b2.shortcut", x, 16))
	y = e.conv("b3.conv1", x, 32, 3, 2, 1, true) // 4 -> 2: PAD + VALID
	y = e.conv("b3.conv2", y, 32, 3, 1, 1, false)
	x = e.add("b3.add", y, e.shortcutA("b3.shortcut", x, 32))
	e.head(x)
	return e
}

func randomImage(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func tensorIndex(t *testing.T, m *resnet.Model, name string) int {
	t.Helper()
	for i := range m.Tensors {
		if m.Tensors[i].Name == name {
			return i
		}
	}
	t.Fatalf("model has no tensor %q", name)
	return -1
}

func TestFromExportReproducesTheReferenceInterpreter(t *testing.T) {
	dir := tinyResNet(1).write(t, t.TempDir())
	ref, err := train.LoadExported(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := quant.ReadExport(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := e.Model
	if len(m.Outputs) != 2 || m.Tensors[m.Outputs[1]].Name != "avgpool" || m.Tensors[m.Outputs[0]].Name != "scores" {
		t.Fatalf("outputs %v, want [scores, avgpool (the embedding)]", m.Outputs)
	}
	if len(m.Meta.Labels) != 10 || m.Meta.Mean[0] != 0.3 || m.Meta.Std[0] != 0.25 || m.Meta.OutputNames[1] != "embedding" {
		t.Errorf("metadata %+v does not carry the export's classes and normalization", m.Meta)
	}
	// How each padded window was expressed.
	var pads []string
	for _, op := range m.Operators {
		switch o := op.Options.(type) {
		case *resnet.Conv2DOptions:
			pads = append(pads, map[resnet.Padding]string{resnet.PaddingSame: "S", resnet.PaddingValid: "V"}[o.Padding])
		case *resnet.Pool2DOptions:
			pads = append(pads, "pool"+map[resnet.Padding]string{resnet.PaddingSame: "S", resnet.PaddingValid: "V"}[o.Padding])
		case nil:
			if op.Op == resnet.OpPad {
				pads = append(pads, "PAD")
			}
		}
	}
	want := "S PAD poolV S S S S V PAD V S V"
	if got := strings.Join(pads, " "); got != want {
		t.Errorf("padding per window op: %s, want %s", got, want)
	}

	it, err := interp.New(m, interp.Options{KeepAll: true})
	if err != nil {
		t.Fatal(err)
	}
	logits := tensorIndex(t, m, "fc")
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 8 {
		x := randomImage(r, 14*14)
		want, err := ref.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		copy(it.Input(0).Float32(), x)
		if err := it.Invoke(); err != nil {
			t.Fatal(err)
		}
		got := it.TensorByIndex(logits).Float32()
		for j := range want {
			if math.Abs(float64(got[j]-want[j])) > 1e-4*(1+math.Abs(float64(want[j]))) {
				t.Fatalf("image %d logit %d: our float model gives %g, the reference %g", i, j, got[j], want[j])
			}
		}
		var sum float64
		for _, p := range it.Output(0).Float32() {
			sum += float64(p)
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Errorf("image %d: scores sum to %g, want a softmax", i, sum)
		}
	}
}

func TestOptionAShortcutsQuantizeExactly(t *testing.T) {
	dir := tinyResNet(2).write(t, t.TempDir())
	f, err := quant.FromExport(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	var calib []quant.Sample
	for range 8 {
		calib = append(calib, quant.Sample{randomImage(r, 14*14)})
	}
	res, err := quant.Run(f, calib, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(res.Report.Exact, " "); got != "b2.shortcut b3.shortcut" {
		t.Errorf("exact layers %q, want the two shortcuts", got)
	}
	q := res.Model
	it, err := interp.New(q, interp.Options{KeepAll: true})
	if err != nil {
		t.Fatal(err)
	}
	copy(it.Input(0).Float32(), randomImage(r, 14*14))
	if err := it.Invoke(); err != nil {
		t.Fatal(err)
	}
	for _, sc := range []struct{ in, out string }{{"b1.add", "b2.shortcut"}, {"b2.add", "b3.shortcut"}} {
		in := it.TensorByIndex(tensorIndex(t, q, sc.in))
		out := it.TensorByIndex(tensorIndex(t, q, sc.out))
		if in.Quant.Scale[0] != out.Quant.Scale[0] || in.Quant.ZeroPoint[0] != out.Quant.ZeroPoint[0] {
			t.Fatalf("%s: output quantization %v/%v differs from its input's %v/%v", sc.out, out.Quant.Scale, out.Quant.ZeroPoint, in.Quant.Scale, in.Quant.ZeroPoint)
		}
		h, w, c := in.Shape[1], in.Shape[2], in.Shape[3]
		oh, ow, oc := out.Shape[1], out.Shape[2], out.Shape[3]
		zp := int8(out.Quant.ZeroPoint[0])
		for y := range oh {
			for x := range ow {
				for k := range oc {
					want := zp
					if k < c && 2*y < h && 2*x < w {
						want = in.Int8()[((2*y)*w+2*x)*c+k]
					}
					if got := out.Int8()[(y*ow+x)*oc+k]; got != want {
						t.Fatalf("%s at (%d,%d,%d): int8 %d, want the input's %d exactly", sc.out, y, x, k, got, want)
					}
				}
			}
		}
	}
}

// corrupt lets f damage the tiny export, writes it, and returns the directory.
func corrupt(t *testing.T, f func(e *exportWriter, dir string)) string {
	e := tinyResNet(9)
	dir := t.TempDir()
	f(e, dir)
	e.write(t, dir)
	return dir
}

func TestBrokenExportsGiveClearErrors(t *testing.T) {
	cases := []struct {
		name string
		make func(e *exportWriter, dir string)
		want []string
	}{
		{"unknown format version", func(e *exportWriter, dir string) { e.m.Format = "shortcut-float-v2" },
			[]string{"unknown format version", "shortcut-float-v2", "shortcut-float-v1"}},
		{"no model.json", func(e *exportWriter, dir string) {}, []string{"model.json", "shortcut-train export"}},
		{"NaN weight", func(e *exportWriter, dir string) {
			off := e.m.Tensors["b2.conv1.weights"].Offset + 4*7
			binary.LittleEndian.PutUint32(e.blob[off:], math.Float32bits(float32(math.NaN())))
		}, []string{"b2.conv1.weights", "NaN", "element 7"}},
		{"Inf bias", func(e *exportWriter, dir string) {
			off := e.m.Tensors["fc.bias"].Offset
			binary.LittleEndian.PutUint32(e.blob[off:], math.Float32bits(float32(math.Inf(-1))))
		}, []string{"fc.bias", "-Inf"}},
		{"truncated weights", func(e *exportWriter, dir string) { e.blob = e.blob[:len(e.blob)-8] },
			[]string{"fc.bias", "runs past the end"}},
		{"offset past the file", func(e *exportWriter, dir string) {
			tt := e.m.Tensors["conv1.bias"]
			tt.Offset = 1 << 40
			e.m.Tensors["conv1.bias"] = tt
		}, []string{"conv1.bias", "runs past the end"}},
		{"weights of the wrong input depth", func(e *exportWriter, dir string) {
			tt := e.m.Tensors["b1.conv1.weights"]
			tt.Shape = []int{8, 3, 3, 4}
			e.m.Tensors["b1.conv1.weights"] = tt
		}, []string{"b1.conv1", "[8 3 3 4]", "want [8 3 3 8]"}},
		{"reading an unknown tensor", func(e *exportWriter, dir string) { e.m.Ops[3].Inputs = []string{"nowhere"} },
			[]string{"nowhere", "neither the model input nor"}},
		{"unknown op", func(e *exportWriter, dir string) { e.m.Ops[1].Op = "avg_pool" },
			[]string{"avg_pool", "unknown op"}},
		{"channels of mean and std", func(e *exportWriter, dir string) { e.m.Input.Mean = []float32{0.1, 0.2, 0.3} },
			[]string{"1 channels", "3 mean"}},
		{"logits of the wrong size", func(e *exportWriter, dir string) { e.m.Classes = e.m.Classes[:5] },
			[]string{"want [1, 5]"}},
		{"weights file outside the directory", func(e *exportWriter, dir string) { e.m.Weights = "../weights.bin" },
			[]string{"plain file name"}},
		{"padding on a max pool whose input may be negative", func(e *exportWriter, dir string) { e.m.Ops[0].Activation = "none" },
			[]string{"pool", "zero padding could win the max"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := corrupt(t, tc.make)
			if tc.name == "no model.json" {
				os.Remove(filepath.Join(dir, "model.json"))
			}
			_, err := quant.FromExport(dir)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestPaddedExportRecordsItsContentSize: an export trained with pad_to
// (12x12 images padded to the 14x14 input) gives float and int8 models whose
// metadata says image_size [12, 12], through Marshal and Load; an export
// without padding, or whose images already fill the input, records none.
func TestPaddedExportRecordsItsContentSize(t *testing.T) {
	cases := []struct {
		name           string
		imageH, imageW int
		padTo          int
		want           [2]int
	}{
		{name: "padded 12x12 to 14", imageH: 12, imageW: 12, padTo: 14, want: [2]int{12, 12}},
		{name: "padded 13x11 to 14", imageH: 13, imageW: 11, padTo: 14, want: [2]int{13, 11}},
		{name: "no padding", imageH: 14, imageW: 14},
		{name: "pad_to no larger than the images", imageH: 14, imageW: 14, padTo: 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := tinyResNet(3)
			e.m.Input.ImageH, e.m.Input.ImageW, e.m.Input.PadTo = tc.imageH, tc.imageW, tc.padTo
			dir := e.write(t, t.TempDir())
			ex, err := quant.ReadExport(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := ex.Input.ContentSize(); got != tc.want {
				t.Errorf("ContentSize %v, want %v", got, tc.want)
			}
			if got := ex.Model.Meta.ImageSize; got != tc.want {
				t.Errorf("float model image_size %v, want %v", got, tc.want)
			}
			r := rand.New(rand.NewPCG(7, 8))
			var calib []quant.Sample
			for range 4 {
				calib = append(calib, quant.Sample{randomImage(r, 14*14)})
			}
			q, err := quant.Model(ex.Model, calib, quant.Options{})
			if err != nil {
				t.Fatal(err)
			}
			data, err := q.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			back, err := resnet.Load(data)
			if err != nil {
				t.Fatal(err)
			}
			if got := back.Meta.ImageSize; got != tc.want {
				t.Errorf("int8 .tflite image_size %v, want %v", got, tc.want)
			}
			if has := strings.Contains(string(data), `"image_size"`); has != (tc.want != [2]int{}) {
				t.Errorf("the .tflite holds an image_size key: %v, want %v", has, tc.want != [2]int{})
			}
		})
	}
}
