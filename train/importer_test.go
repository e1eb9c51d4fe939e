package train

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/train/data"
	"github.com/shortcut-edge/shortcut/train/models"
)

// torchResNet50 returns random weights in torchvision's ResNet-50 state_dict layout (names,
// OIHW shapes, num_batches_tracked included) for base width w, c input channels and k classes.
func torchResNet50(t *testing.T, w, c, k int, seed uint64) map[string]NamedTensor {
	t.Helper()
	net, err := models.New(models.Config{Arch: "resnet50", BaseWidth: w, Height: 32, Width: 32, Channels: c, NumClasses: k})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 9))
	names, shapes := ExpectedTensorNames(net)
	out := map[string]NamedTensor{}
	for _, n := range names {
		s := shapes[n]
		v := make([]float32, prod(s))
		fanIn := 1
		for _, d := range s[1:] {
			fanIn *= d
		}
		for i := range v {
			switch {
			case strings.HasSuffix(n, "running_var"), strings.HasSuffix(n, "bn1.weight"), strings.HasSuffix(n, "bn2.weight"),
				strings.HasSuffix(n, "bn3.weight"), strings.HasSuffix(n, "downsample.1.weight"):
				v[i] = float32(0.5 + rng.Float64())
			case len(s) == 1: // biases, running means
				v[i] = float32(0.1 * rng.NormFloat64())
			default:
				v[i] = float32(rng.NormFloat64() * math.Sqrt(2/float64(fanIn)))
			}
		}
		out[n] = NamedTensor{Name: n, Shape: s, Data: v}
	}
	return out
}

func writeTorch(t *testing.T, path string, ts map[string]NamedTensor, dtype string) {
	t.Helper()
	list := make([]NamedTensor, 0, len(ts)+1)
	for _, v := range ts {
		list = append(list, v)
	}
	list = append(list, NamedTensor{Name: "bn1.num_batches_tracked", Shape: []int{}, Data: []float32{0}})
	if err := WriteSafetensors(path, list, dtype, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
}

// torchForward is an independent ResNet-50 v1.5 forward pass in PyTorch's terms (CHW
// activations, OIHW weights, batch norm in inference mode), from the state_dict tensors.
func torchForward(ts map[string]NamedTensor, img []float32, h, w, c int) []float64 {
	type fmap struct {
		c, h, w int
		v       []float64
	}
	x := fmap{c, h, w, make([]float64, c*h*w)}
	for y := range h {
		for xx := range w {
			for k := range c {
				x.v[(k*h+y)*w+xx] = float64(img[(y*w+xx)*c+k])
			}
		}
	}
	conv := func(in fmap, name string, stride int) fmap {
		wt := ts[name+".weight"]
		o, k := wt.Shape[0], wt.Shape[2]
		pad := k / 2
		oh, ow := (in.h+2*pad-k)/stride+1, (in.w+2*pad-k)/stride+1
		out := fmap{o, oh, ow, make([]float64, o*oh*ow)}
		for oc := range o {
			for y := range oh {
				for xx := range ow {
					s := 0.0
					for ic := range in.c {
						for a := range k {
							iy := y*stride + a - pad
							if iy < 0 || iy >= in.h {
								continue
							}
							for b := range k {
								ix := xx*stride + b - pad
								if ix < 0 || ix >= in.w {
									continue
								}
								s += float64(wt.Data[((oc*in.c+ic)*k+a)*k+b]) * in.v[(ic*in.h+iy)*in.w+ix]
							}
						}
					}
					out.v[(oc*oh+y)*ow+xx] = s
				}
			}
		}
		return out
	}
	bn := func(in fmap, name string, relu bool) fmap {
		g, b := ts[name+".weight"].Data, ts[name+".bias"].Data
		m, v := ts[name+".running_mean"].Data, ts[name+".running_var"].Data
		for ch := range in.c {
			for i := range in.h * in.w {
				p := &in.v[ch*in.h*in.w+i]
				*p = (*p-float64(m[ch]))/math.Sqrt(float64(v[ch])+1e-5)*float64(g[ch]) + float64(b[ch])
				if relu && *p < 0 {
					*p = 0
				}
			}
		}
		return in
	}
	x = bn(conv(x, "conv1", 2), "bn1", true)
	// 3x3/2 max pool, padding 1 (padding never wins).
	ph, pw := (x.h+2-3)/2+1, (x.w+2-3)/2+1
	pooled := fmap{x.c, ph, pw, make([]float64, x.c*ph*pw)}
	for ch := range x.c {
		for y := range ph {
			for xx := range pw {
				m := math.Inf(-1)
				for a := range 3 {
					for b := range 3 {
						iy, ix := 2*y+a-1, 2*xx+b-1
						if iy >= 0 && iy < x.h && ix >= 0 && ix < x.w {
							m = math.Max(m, x.v[(ch*x.h+iy)*x.w+ix])
						}
					}
				}
				pooled.v[(ch*ph+y)*pw+xx] = m
			}
		}
	}
	x = pooled
	for stage, blocks := range []int{3, 4, 6, 3} {
		for blk := range blocks {
			p := "layer" + string(rune('1'+stage)) + "." + string(rune('0'+blk)) + "."
			stride := 1
			if stage > 0 && blk == 0 {
				stride = 2
			}
			y := bn(conv(x, p+"conv1", 1), p+"bn1", true)
			y = bn(conv(y, p+"conv2", stride), p+"bn2", true)
			y = bn(conv(y, p+"conv3", 1), p+"bn3", false)
			short := x
			if _, ok := ts[p+"downsample.0.weight"]; ok {
				short = bn(conv(x, p+"downsample.0", stride), p+"downsample.1", false)
			}
			for i := range y.v {
				y.v[i] = math.Max(0, y.v[i]+short.v[i])
			}
			x = y
		}
	}
	fw, fb := ts["fc.weight"], ts["fc.bias"]
	k, n := fw.Shape[0], fw.Shape[1]
	feat := make([]float64, n)
	for ch := range n {
		for i := range x.h * x.w {
			feat[ch] += x.v[ch*x.h*x.w+i] / float64(x.h*x.w)
		}
	}
	logits := make([]float64, k)
	for o := range k {
		logits[o] = float64(fb.Data[o])
		for i := range n {
			logits[o] += float64(fw.Data[o*n+i]) * feat[i]
		}
	}
	return logits
}

func TestImportedResNet50ComputesWhatTorchvisionWould(t *testing.T) {
	const width, classes = 8, 10
	for _, dtype := range []string{"F32", "F16"} {
		t.Run(dtype, func(t *testing.T) {
			ts := torchResNet50(t, width, 3, classes, 3)
			if dtype == "F16" { // the reference sees what the file holds
				for n, v := range ts {
					for i, f := range v.Data {
						v.Data[i] = halfToFloat(floatToHalf(f))
					}
					ts[n] = v
				}
			}
			dir := t.TempDir()
			file := filepath.Join(dir, "resnet50.safetensors")
			writeTorch(t, file, ts, dtype)
			run := filepath.Join(dir, "run")
			sum, err := ImportWeights(ImportOptions{Path: file, Arch: "resnet50", Height: 32, Width: 32, Run: run})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Meta.BaseWidth != width || sum.Meta.Channels != 3 || len(sum.Meta.Classes) != classes ||
				len(sum.Ignored) != 1 || sum.Tensors != len(ts) {
				t.Fatalf("import summary %+v: want width %d, 3 channels, %d classes, %d tensors, num_batches_tracked ignored",
					sum, width, classes, len(ts))
			}
			out := filepath.Join(dir, "export")
			if _, err := Export(ExportOptions{Backend: "cpu", Dir: run, Out: out}); err != nil {
				t.Fatal(err)
			}
			ref, err := LoadExported(out)
			if err != nil {
				t.Fatal(err)
			}
			if got := ref.Manifest.Input; got.Shape[1] != 32 || got.Mean[0] != ImageNetMean[0] || got.Std[2] != ImageNetStd[2] {
				t.Errorf("exported input %+v: want 32x32 with ImageNet normalization", got)
			}
			rng := rand.New(rand.NewPCG(4, 4))
			var first []float64
			for img := range 2 {
				x := make([]float32, 32*32*3)
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				got, err := ref.Run(x)
				if err != nil {
					t.Fatal(err)
				}
				want := torchForward(ts, x, 32, 32, 3)
				scale := 0.0
				for _, v := range want {
					scale = math.Max(scale, math.Abs(v))
				}
				for j := range want {
					if math.Abs(float64(got[j])-want[j]) > 1e-4*(1+scale) {
						t.Fatalf("image %d logit %d: imported+exported model gives %g, torchvision-style forward %g",
							img, j, got[j], want[j])
					}
				}
				if first == nil {
					first = want
				} else if math.Abs(first[0]-want[0])+math.Abs(first[1]-want[1]) < 1e-6 {
					t.Fatalf("two random images give the same logits %v: the network is dead, the comparison proves nothing", want[:2])
				}
			}
		})
	}
}

func TestFitResumesFromImportedWeights(t *testing.T) {
	// A grey ResNet-50 of width 8 with a new 4-class head, fine-tuned for two steps on 32x32 images.
	ts := torchResNet50(t, 8, 1, 1000, 5)
	dir := t.TempDir()
	file := filepath.Join(dir, "w.safetensors")
	writeTorch(t, file, ts, "F32")
	run := filepath.Join(dir, "run")
	classes := []string{"a", "b", "c", "d"}
	if _, err := ImportWeights(ImportOptions{Path: file, Arch: "resnet50", Height: 32, Classes: classes, NewHead: true,
		Mean: []float32{0.5}, Std: []float32{0.25}, Run: run}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	set := &data.Dataset{Name: "random", Height: 32, Width: 32, Channels: 1, Classes: classes}
	for i := range 64 {
		set.Labels = append(set.Labels, int32(i%4))
		for range 32 * 32 {
			set.Images = append(set.Images, uint8(rng.IntN(256)))
		}
	}
	res, err := Fit(context.Background(), Config{Backend: "cpu", Arch: "resnet50", BaseWidth: 8, TrainSet: set,
		Recipe: "seed", BatchSize: 16, MaxSteps: 2, Epochs: 1, NoValidation: true, Dir: run, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 2 || res.Meta.Mean[0] != 0.5 || res.Meta.Classes[3] != "d" {
		t.Errorf("fine-tuning run: step %d, meta %+v; want step 2 with the imported normalization and classes",
			res.Steps, res.Meta)
	}
}

func TestImportNamesWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	ts := torchResNet50(t, 8, 3, 10, 6)
	write := func(name string, edit func(m map[string]NamedTensor)) string {
		m := map[string]NamedTensor{}
		for k, v := range ts {
			m[k] = v
		}
		edit(m)
		p := filepath.Join(dir, name+".safetensors")
		writeTorch(t, p, m, "F32")
		return p
	}
	good := write("good", func(map[string]NamedTensor) {})
	missing := write("missing", func(m map[string]NamedTensor) { delete(m, "layer3.1.bn2.running_var") })
	extra := write("extra", func(m map[string]NamedTensor) {
		m["layer5.0.conv1.weight"] = NamedTensor{Name: "layer5.0.conv1.weight", Shape: []int{1}, Data: []float32{1}}
	})
	shape := write("shape", func(m map[string]NamedTensor) {
		w := m["layer2.0.conv1.weight"]
		w.Shape = []int{w.Shape[1], w.Shape[0], 1, 1}
		m["layer2.0.conv1.weight"] = w
	})
	garbage := filepath.Join(dir, "garbage.safetensors")
	if err := os.WriteFile(garbage, []byte("\xff\xff\xff\xff\x00\x00\x00\x00{not json at all}"), 0o644); err != nil {
		t.Fatal(err)
	}
	notJSON := filepath.Join(dir, "notjson.safetensors")
	if err := os.WriteFile(notJSON, []byte("\x08\x00\x00\x00\x00\x00\x00\x00[1,2,3]x"), 0o644); err != nil {
		t.Fatal(err)
	}
	usedRun := filepath.Join(dir, "used")
	if _, err := ImportWeights(ImportOptions{Path: good, Arch: "resnet50", Height: 32, Run: usedRun}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opt  ImportOptions
		want []string
	}{
		{"missing tensor", ImportOptions{Path: missing, Arch: "resnet50"}, []string{"1 tensors missing", "layer3.1.bn2.running_var"}},
		{"extra tensor", ImportOptions{Path: extra, Arch: "resnet50"}, []string{"does not have", "layer5.0.conv1.weight"}},
		{"wrong shape", ImportOptions{Path: shape, Arch: "resnet50"}, []string{"layer2.0.conv1.weight is [32 16 1 1], want [16 32 1 1]"}},
		{"wrong arch", ImportOptions{Path: good, Arch: "resnet18"}, []string{"wrong shape", "does not have", "layer1.0.conv3.weight"}},
		{"header length", ImportOptions{Path: garbage, Arch: "resnet50"}, []string{"garbage.safetensors", "header length"}},
		{"neither format", ImportOptions{Path: notJSON, Arch: "resnet50"}, []string{"notjson.safetensors", "neither safetensors", "08 00 00 00"}},
		{"header not an object", ImportOptions{Path: notJSON, Arch: "resnet50", Format: "safetensors"}, []string{"JSON object"}},
		{"class count", ImportOptions{Path: good, Arch: "resnet50", Classes: []string{"x", "y"}}, []string{"10 outputs", "--new-head"}},
		{"grey without normalization", ImportOptions{Path: write("grey", func(m map[string]NamedTensor) {
			w := m["conv1.weight"]
			w.Shape, w.Data = []int{8, 1, 7, 7}, w.Data[:8*49]
			m["conv1.weight"] = w
		}), Arch: "resnet50"}, []string{"1 input channels", "mean and std"}},
		{"used run directory", ImportOptions{Path: good, Arch: "resnet50", Run: usedRun}, []string{"already holds checkpoints"}},
		{"unknown format", ImportOptions{Path: good, Arch: "resnet50", Format: "h5"}, []string{"safetensors"}},
	} {
		if tc.opt.Run == "" {
			tc.opt.Run = filepath.Join(dir, "run-"+strings.ReplaceAll(tc.name, " ", "-"))
		}
		tc.opt.Height = 32
		_, err := ImportWeights(tc.opt)
		if err == nil {
			t.Errorf("%s: import succeeded", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
	}
}

func TestHalfFloatConversionRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		f float32
		h uint16
	}{
		{0, 0}, {1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {6.103515625e-05, 0x0400}, {5.960464477539063e-08, 0x0001},
		{float32(math.Inf(1)), 0x7c00}, {1e6, 0x7c00}, {0.333251953125, 0x3555},
	} {
		if got := floatToHalf(tc.f); got != tc.h {
			t.Errorf("floatToHalf(%g) = %#04x, want %#04x", tc.f, got, tc.h)
		}
		if tc.f != 1e6 {
			if got := halfToFloat(tc.h); got != tc.f {
				t.Errorf("halfToFloat(%#04x) = %g, want %g", tc.h, got, tc.f)
			}
		}
	}
}
