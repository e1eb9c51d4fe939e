package main

import (
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/internal/npy"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
	"github.com/shortcut-edge/shortcut/train"
	"github.com/shortcut-edge/shortcut/train/data"
	"github.com/shortcut-edge/shortcut/train/models"
	"github.com/shortcut-edge/shortcut/train/pth/pthtest"
)

// pretrainedWeights returns random, well-scaled weights with torchvision's ResNet-18 names and
// shapes (base width 16, k classes): He-scaled zero-mean convolutions, batch norms whose last
// one in each branch is small, as trained networks have it, so activations stay in range.
func pretrainedWeights(t *testing.T, k int, seed uint64) []train.NamedTensor {
	t.Helper()
	net, err := models.New(models.Config{Arch: "resnet18", BaseWidth: 16, Height: 64, Width: 64, Channels: 3, NumClasses: k})
	if err != nil {
		t.Fatal(err)
	}
	names, shapes := train.ExpectedTensorNames(net)
	rng := rand.New(rand.NewPCG(seed, 3))
	var out []train.NamedTensor
	for _, n := range names {
		s := shapes[n]
		size := 1
		for _, d := range s {
			size *= d
		}
		fanIn := size / s[0]
		v := make([]float32, size)
		for i := range v {
			switch {
			case strings.HasSuffix(n, "running_var"):
				v[i] = float32(0.5 + rng.Float64())
			case strings.HasSuffix(n, "bn2.weight"), strings.HasSuffix(n, "downsample.1.weight"):
				v[i] = float32(0.2 + 0.3*rng.Float64())
			case strings.Contains(n, "bn") && strings.HasSuffix(n, ".weight"):
				v[i] = float32(0.5 + 0.5*rng.Float64())
			case len(s) == 1:
				v[i] = float32(0.1 * rng.NormFloat64())
			default:
				v[i] = float32(rng.NormFloat64() * math.Sqrt(2/float64(fanIn)))
			}
		}
		if n == "fc.weight" {
			// Rows summing to zero: the part every image's (positive, pooled) embedding shares
			// then moves no class ahead, and the images' differences decide the top-1.
			in := s[1]
			for o := range s[0] {
				row := v[o*in : (o+1)*in]
				m := float32(0)
				for _, x := range row {
					m += x / float32(in)
				}
				for i := range row {
					row[i] = 4 * (row[i] - m)
				}
			}
		}
		out = append(out, train.NamedTensor{Name: n, Shape: s, Data: v})
	}
	return out
}

func writePretrainedSafetensors(t *testing.T, path string, ts []train.NamedTensor) {
	t.Helper()
	if err := train.WriteSafetensors(path, ts, "F32", map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
}

func writePretrainedPTH(t *testing.T, path string, ts []train.NamedTensor) {
	t.Helper()
	f := &pthtest.File{Metadata: true}
	for _, nt := range ts {
		f.Storages = append(f.Storages, pthtest.Storage{Class: "FloatStorage", Data: pthtest.Float32s(nt.Data)})
		f.Entries = append(f.Entries, pthtest.Entry{Name: nt.Name, Storage: len(f.Storages) - 1, Shape: nt.Shape})
	}
	b, err := f.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writePNGs writes n smooth random colour pictures of size x size (gradients and a disc, so
// that they are not noise), named img-NN.png.
func writePNGs(t *testing.T, dir string, n, size int, seed uint64) []string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 8))
	var paths []string
	for k := range n {
		img := image.NewRGBA(image.Rect(0, 0, size, size))
		var a [3][3]float64
		for c := range a {
			for j := range a[c] {
				a[c][j] = rng.Float64()
			}
		}
		cx, cy, r := rng.Float64()*float64(size), rng.Float64()*float64(size), float64(size)*(0.1+0.3*rng.Float64())
		for y := range size {
			for x := range size {
				var px [3]uint8
				for c := range px {
					v := a[c][0] + (a[c][1]-0.5)*float64(x)/float64(size) + (a[c][2]-0.5)*float64(y)/float64(size)
					if math.Hypot(float64(x)-cx, float64(y)-cy) < r {
						v = 1 - v
					}
					px[c] = uint8(255 * math.Min(1, math.Max(0, v)))
				}
				img.Set(x, y, color.RGBA{px[0], px[1], px[2], 255})
			}
		}
		p := filepath.Join(dir, "img-"+string(rune('a'+k/26))+string(rune('a'+k%26))+".png")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
		paths = append(paths, p)
	}
	return paths
}

// runModel runs a .tflite on one normalised NHWC image and returns its two outputs.
func runModel(t *testing.T, m *resnet.Model, x []float32) (scores, embedding []float32) {
	t.Helper()
	it, err := interp.New(m, interp.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if it.Input(0).Type != resnet.Float32 || it.Output(0).Type != resnet.Float32 || it.Output(1).Type != resnet.Float32 {
		t.Fatalf("model %q: input and outputs must be float32", m.Description)
	}
	copy(it.Input(0).Float32(), x)
	if err := it.Invoke(); err != nil {
		t.Fatal(err)
	}
	return slices.Clone(it.Output(0).Float32()), slices.Clone(it.Output(1).Float32())
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestPretrainedWritesFloatAndInt8ModelsThatComputeTheImportedWeights(t *testing.T) {
	const classes, input = 10, 64
	dir := t.TempDir()
	ts := pretrainedWeights(t, classes, 1)
	weights := filepath.Join(dir, "resnet18.safetensors")
	writePretrainedSafetensors(t, weights, ts)
	// Pictures the calibration will not see, prepared as the calibration's are.
	var test [][]float32
	for _, p := range writePNGs(t, filepath.Join(dir, "test"), 24, 64, 3) {
		x, err := data.ReadImageInput(p, input, input, data.Normalization{Mean: train.ImageNetMean, Std: train.ImageNetStd})
		if err != nil {
			t.Fatal(err)
		}
		test = append(test, x)
	}
	centreHead(t, ts, weights, test)
	labelFile := filepath.Join(dir, "labels-in.txt")
	labels := []string{"cat", "dog", "bird", "fish", "car", "bus", "tree", "cup", "key", "pen"}
	if err := os.WriteFile(labelFile, []byte(strings.Join(labels, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	calib := filepath.Join(dir, "calib")
	writePNGs(t, calib, 40, 80, 2) // 80x80: resized to the 64x64 input
	out := filepath.Join(dir, "out")
	code, stdout, stderr := cli("pretrained", "--arch", "resnet18", "--weights", weights, "--classes", "@"+labelFile,
		"--input", "64", "--calibration", "images:"+calib, "--out", out)
	if code != 0 {
		t.Fatalf("pretrained: exit %d: %s", code, stderr)
	}
	if got, want := listDir(t, out), []string{"labels.txt", "model-float.tflite", "model-int8.report.json", "model-int8.tflite"}; !slices.Equal(got, want) {
		t.Fatalf("%s holds %v, want %v (stdout %s)", out, got, want, stdout)
	}
	if leftovers := listDir(t, dir); slices.ContainsFunc(leftovers, func(s string) bool { return strings.Contains(s, "partial") }) {
		t.Errorf("temporary folder left behind: %v", leftovers)
	}
	if b, err := os.ReadFile(filepath.Join(out, "labels.txt")); err != nil || string(b) != strings.Join(labels, "\n")+"\n" {
		t.Errorf("labels.txt = %q (%v), want the --classes file's names", b, err)
	}

	// The reference: the same file through import-weights, GoMLX's checkpoint, export, and the
	// export's plain-loop forward pass (train.ExportedModel, checked against a PyTorch-semantics
	// ResNet-50 in train's tests).
	run, exp := filepath.Join(dir, "run"), filepath.Join(dir, "export")
	if code, _, e := cli("import-weights", "--in", weights, "--arch", "resnet18", "--run", run, "--input", "64"); code != 0 {
		t.Fatalf("import-weights: %s", e)
	}
	if code, _, e := cli("export", "--run", run, "--out", exp, "--latest"); code != 0 {
		t.Fatalf("export: %s", e)
	}
	ref, err := train.LoadExported(exp)
	if err != nil {
		t.Fatal(err)
	}
	fm, err := resnet.LoadFile(filepath.Join(out, "model-float.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	qm, err := resnet.LoadFile(filepath.Join(out, "model-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*resnet.Model{fm, qm} {
		md := m.Meta
		if len(m.Outputs) != 2 || !slices.Equal(md.Labels, labels) || !slices.Equal(md.Mean, train.ImageNetMean) ||
			!slices.Equal(md.Std, train.ImageNetStd) || !slices.Equal(md.OutputNames, []string{"scores", "embedding"}) {
			t.Errorf("model %q: %d outputs, metadata %+v; want 2 outputs (scores, embedding), the labels and ImageNet mean/std", m.Description, len(m.Outputs), md)
		}
	}
	fc, fcb := ts[len(ts)-2], ts[len(ts)-1]
	if fc.Name != "fc.weight" || fcb.Name != "fc.bias" {
		t.Fatalf("last tensors are %s, %s; want fc.weight, fc.bias", fc.Name, fcb.Name)
	}
	agree, n := 0, len(test)
	tops := map[int]bool{}
	for img, x := range test {
		scores, emb := runModel(t, fm, x)
		logits, err := ref.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		want := softmax(logits)
		for j := range want {
			if math.Abs(float64(scores[j])-want[j]) > 1e-4 {
				t.Fatalf("image %d class %d: model-float.tflite scores %g, the imported run's export %g", img, j, scores[j], want[j])
			}
		}
		// Output 1 is what the classifier reads: fc(embedding) gives the scores.
		width := fc.Shape[1]
		if len(emb) != width {
			t.Fatalf("embedding has %d values, want %d", len(emb), width)
		}
		fromEmb := make([]float32, classes)
		for o := range classes {
			s := float64(fcb.Data[o])
			for i := range width {
				s += float64(fc.Data[o*width+i]) * float64(emb[i])
			}
			fromEmb[o] = float32(s)
		}
		for j, p := range softmax(fromEmb) {
			if math.Abs(p-float64(scores[j])) > 1e-4 {
				t.Fatalf("image %d class %d: softmax(fc(embedding)) = %g, scores %g", img, j, p, scores[j])
			}
		}
		qs, _ := runModel(t, qm, x)
		tops[argmax(scores)] = true
		if argmax(qs) == argmax(scores) {
			agree++
		}
	}
	if len(tops) < 2 {
		t.Fatalf("every image has the same top-1 class %v: the network is dead, the comparison proves nothing", tops)
	}
	if agree < n*3/4 {
		t.Errorf("int8 and float agree on top-1 for %d of %d images, want at least %d", agree, n, n*3/4)
	}
	t.Logf("int8 top-1 agreement with float: %d/%d; float top-1 classes %v", agree, n, tops)

	var rep struct {
		Calibration calibrationRecord `json:"calibration"`
		SHA256      string            `json:"sha256"`
	}
	if b, err := os.ReadFile(filepath.Join(out, "model-int8.report.json")); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if c := rep.Calibration; c.Count != 40 || !c.DefaultCount || len(c.Images) != 40 || c.Available != 40 || !strings.HasSuffix(c.Images[0], "img-aa.png") || len(rep.SHA256) != 64 {
		t.Errorf("report calibration %+v: want the default count, all 40 images listed, and the weights' SHA-256 (%q)", c, rep.SHA256)
	}

	// The contract outside checks use: infer on the float model writes both outputs.
	xin := filepath.Join(dir, "x.npy")
	x := make([]float32, input*input*3)
	if err := npy.Write(xin, []int{1, input, input, 3}, x); err != nil {
		t.Fatal(err)
	}
	sOut, eOut := filepath.Join(dir, "scores.npy"), filepath.Join(dir, "embedding.npy")
	if code, _, e := cli("infer", "--model", filepath.Join(out, "model-float.tflite"), "--input", xin, "--output", sOut, "--output", eOut); code != 0 {
		t.Fatalf("infer: %s", e)
	}
	if shape, _, err := npy.Read(sOut); err != nil || !slices.Equal(shape, []int{1, classes}) {
		t.Errorf("scores.npy: shape %v (%v), want [1 %d]", shape, err, classes)
	}
	if shape, _, err := npy.Read(eOut); err != nil || !slices.Equal(shape, []int{1, fc.Shape[1]}) {
		t.Errorf("embedding.npy: shape %v (%v), want [1 %d]", shape, err, fc.Shape[1])
	}
}

// centreHead sets fc.bias so that the classifier sees each image's embedding relative to the
// images' mean one (a float model of the file gives the embeddings), and rewrites the file.
// Random convolutions give every image much the same embedding, so an uncentred head names the
// same class for all of them and a top-1 comparison would prove nothing.
func centreHead(t *testing.T, ts []train.NamedTensor, path string, images [][]float32) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "probe")
	if code, _, e := cli("pretrained", "--arch", "resnet18", "--weights", path, "--classes", "10", "--input", "64", "--out", out); code != 0 {
		t.Fatalf("pretrained: %s", e)
	}
	m, err := resnet.LoadFile(filepath.Join(out, "model-float.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	var mean []float64
	for _, x := range images {
		_, emb := runModel(t, m, x)
		if mean == nil {
			mean = make([]float64, len(emb))
		}
		for i, v := range emb {
			mean[i] += float64(v) / float64(len(images))
		}
	}
	fc, fcb := ts[len(ts)-2], ts[len(ts)-1]
	in := fc.Shape[1]
	for o := range fc.Shape[0] {
		s := 0.0
		for i := range in {
			s += float64(fc.Data[o*in+i]) * mean[i]
		}
		fcb.Data[o] = float32(-s)
	}
	writePretrainedSafetensors(t, path, ts)
}

func softmax(v []float32) []float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, float64(x))
	}
	out := make([]float64, len(v))
	sum := 0.0
	for i, x := range v {
		out[i] = math.Exp(float64(x) - m)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

func TestPretrainedReadsPTHAndNamesTheImageNetClasses(t *testing.T) {
	dir := t.TempDir()
	ts := pretrainedWeights(t, 1000, 4)
	pth, st := filepath.Join(dir, "r18.pth"), filepath.Join(dir, "r18.safetensors")
	writePretrainedPTH(t, pth, ts)
	writePretrainedSafetensors(t, st, ts)
	var models []*resnet.Model
	for _, tc := range []struct{ file, out string }{{pth, "from-pth"}, {st, "from-safetensors"}} {
		out := filepath.Join(dir, tc.out)
		if err := os.Mkdir(out, 0o755); err != nil { // an existing empty --out is fine
			t.Fatal(err)
		}
		code, _, stderr := cli("pretrained", "--arch", "resnet18", "--weights", tc.file, "--input", "32", "--out", out)
		if code != 0 {
			t.Fatalf("pretrained %s: exit %d: %s", tc.file, code, stderr)
		}
		if got := listDir(t, out); !slices.Equal(got, []string{"labels.txt", "model-float.tflite"}) {
			t.Errorf("%s holds %v; without --calibration want labels.txt and model-float.tflite only", out, got)
		}
		b, err := os.ReadFile(filepath.Join(out, "labels.txt"))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"); !slices.Equal(got, train.ImageNetClasses()) {
			t.Errorf("labels.txt of a 1000-class model has %d lines starting %q; want the ImageNet names", len(got), got[:3])
		}
		m, err := resnet.LoadFile(filepath.Join(out, "model-float.tflite"))
		if err != nil {
			t.Fatal(err)
		}
		if m.Meta.Labels[207] != "golden retriever" {
			t.Errorf("label 207 in the model's metadata is %q", m.Meta.Labels[207])
		}
		models = append(models, m)
	}
	x := make([]float32, 32*32*3)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)))
	}
	a, _ := runModel(t, models[0], x)
	b, _ := runModel(t, models[1], x)
	if !slices.Equal(a, b) {
		t.Errorf("the .pth and the safetensors file hold the same numbers but give different scores")
	}
}

func TestPretrainedRefusesBadInputAndLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	ts := pretrainedWeights(t, 10, 5)
	good := filepath.Join(dir, "r18.safetensors")
	writePretrainedSafetensors(t, good, ts)
	full, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.safetensors")
	if err := os.WriteFile(truncated, full[:len(full)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "broken")
	writePNGs(t, broken, 32, 16, 6)
	if err := os.WriteFile(filepath.Join(broken, "zz-bad.jpg"), []byte("not a jpeg at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	few := filepath.Join(dir, "few")
	writePNGs(t, few, 3, 16, 7)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"weights of another architecture", []string{"--arch", "resnet34", "--weights", good}, "layer1.2.conv1.weight"},
		{"a truncated file", []string{"--weights", truncated}, truncated},
		{"an empty image folder", []string{"--weights", good, "--calibration", "images:" + empty}, empty},
		{"an undecodable image", []string{"--weights", good, "--calibration", "images:" + broken}, "zz-bad.jpg"},
		{"too few images", []string{"--weights", good, "--calibration", "images:" + few}, "at least 32"},
		{"a wrong checksum", []string{"--weights", good, "--sha256", strings.Repeat("ab", 32)}, "SHA-256"},
		{"--format keras-h5 with a torchvision arch", []string{"--weights", good, "--format", "keras-h5"}, "goes with --arch keras-resnet50"},
		{"a URL without a host", []string{"--weights", "http:///resnet18-f37072fd.pth"}, "not a URL with a host"}, // downloads: pretrained_download_test.go
		{"an unknown architecture", []string{"--arch", "resnet20", "--weights", good}, "want one of resnet18"},
		{"a class count the classifier does not have", []string{"--weights", good, "--classes", "5"}, "fc.weight has 10 outputs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			out := filepath.Join(parent, "out")
			args := append([]string{"pretrained", "--arch", "resnet18", "--input", "32", "--out", out}, tc.args...)
			code, _, stderr := cli(args...)
			if code == 0 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("exit %d, stderr %q; want one error line naming %q", code, stderr, tc.want)
			}
			if left := listDir(t, parent); len(left) != 0 {
				t.Errorf("left behind in --out's folder: %v", left)
			}
		})
	}
}

func TestPretrainedBuildsEveryTorchvisionDepth(t *testing.T) {
	for _, tc := range []struct {
		arch      string
		embedding int // 8 * base width 8 (basic blocks) or 32 * 8 (bottlenecks)
	}{{"resnet34", 64}, {"resnet50", 256}, {"resnet101", 256}, {"resnet152", 256}} {
		t.Run(tc.arch, func(t *testing.T) {
			net, err := models.New(models.Config{Arch: tc.arch, BaseWidth: 8, Height: 32, Width: 32, Channels: 3, NumClasses: 3})
			if err != nil {
				t.Fatal(err)
			}
			names, shapes := train.ExpectedTensorNames(net)
			rng := rand.New(rand.NewPCG(1, 2))
			var ts []train.NamedTensor
			for _, n := range names {
				size := 1
				for _, d := range shapes[n] {
					size *= d
				}
				v := make([]float32, size)
				for i := range v {
					v[i] = float32(0.1 * rng.NormFloat64())
					if strings.HasSuffix(n, "running_var") {
						v[i] = 1
					}
				}
				ts = append(ts, train.NamedTensor{Name: n, Shape: shapes[n], Data: v})
			}
			dir := t.TempDir()
			writePretrainedSafetensors(t, filepath.Join(dir, "w.safetensors"), ts)
			out := filepath.Join(dir, "out")
			if code, _, e := cli("pretrained", "--arch", tc.arch, "--weights", filepath.Join(dir, "w.safetensors"), "--input", "32", "--out", out); code != 0 {
				t.Fatalf("pretrained: %s", e)
			}
			m, err := resnet.LoadFile(filepath.Join(out, "model-float.tflite"))
			if err != nil {
				t.Fatal(err)
			}
			scores, emb := runModel(t, m, make([]float32, 32*32*3))
			if len(scores) != 3 || len(emb) != tc.embedding {
				t.Errorf("%d scores and a %d-value embedding, want 3 and %d", len(scores), len(emb), tc.embedding)
			}
		})
	}
}

func TestPretrainedCalibratesOnALabelledDatasetToo(t *testing.T) {
	dir := t.TempDir()
	weights := filepath.Join(dir, "r18.safetensors")
	writePretrainedSafetensors(t, weights, pretrainedWeights(t, 10, 8))
	ds := filepath.Join(dir, "ds")
	writePNGs(t, filepath.Join(ds, "a"), 20, 32, 1)
	writePNGs(t, filepath.Join(ds, "b"), 20, 32, 2)
	out := filepath.Join(dir, "out")
	code, _, stderr := cli("pretrained", "--arch", "resnet18", "--weights", weights, "--input", "32",
		"--calibration", "folder:"+ds, "--calibration-count", "32", "--out", out)
	if code != 0 {
		t.Fatalf("pretrained: exit %d: %s", code, stderr)
	}
	var rep struct {
		Calibration calibrationRecord `json:"calibration"`
	}
	if b, err := os.ReadFile(filepath.Join(out, "model-int8.report.json")); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if c := rep.Calibration; c.Count != 32 || c.DefaultCount || len(c.Indices) != 32 || c.Available != 40 {
		t.Errorf("report calibration %+v: want 32 of the 40 training images, their indices listed", c)
	}
	if _, err := resnet.LoadFile(filepath.Join(out, "model-int8.tflite")); err != nil {
		t.Error(err)
	}
}
