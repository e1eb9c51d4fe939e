package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/internal/npy"
	"github.com/shortcut-edge/shortcut/internal/witness"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/interp"
	"github.com/shortcut-edge/shortcut/resnet/modelio"
	"github.com/shortcut-edge/shortcut/train/data"
)

// demoModel is a real int8 ResNet-8 trained on Fashion-MNIST, with an
// embedding output.
const demoModel = "../../configs/demo/fashion-resnet8-int8.tflite"

const fashionIDX = "/usr/share/datasets/fashion-mnist"

// fashionImages reads the first n images and labels of a Fashion-MNIST split.
func fashionImages(t testing.TB, split string, n int) (pixels []uint8, labels []int32) {
	t.Helper()
	count, rows, cols, px, err := data.ReadIDXImages(fmt.Sprintf("%s/%s-images-idx3-ubyte.gz", fashionIDX, split))
	if err != nil {
		t.Fatalf("Fashion-MNIST (install the Debian package dataset-fashion-mnist): %v", err)
	}
	labs, err := data.ReadIDXLabels(fmt.Sprintf("%s/%s-labels-idx1-ubyte.gz", fashionIDX, split))
	if err != nil {
		t.Fatal(err)
	}
	if rows != 28 || cols != 28 || len(labs) != count {
		t.Fatalf("Fashion-MNIST %s: %d images of %dx%d, %d labels", split, count, rows, cols, len(labs))
	}
	n = min(n, count)
	return px[:n*28*28], labs[:n]
}

// writeFashionFolder writes perClass PNGs of each Fashion-MNIST class in
// classes (folder name -> class index) under dir/<name>/ and returns dir.
func writeFashionFolder(t testing.TB, dir, split string, perClass int, classes map[string]int32) string {
	t.Helper()
	px, labs := fashionImages(t, split, 20000)
	for name, class := range classes {
		sub := filepath.Join(dir, name)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		n := 0
		for i, l := range labs {
			if l != class || n == perClass {
				continue
			}
			img := image.NewGray(image.Rect(0, 0, 28, 28))
			copy(img.Pix, px[i*784:(i+1)*784])
			var b bytes.Buffer
			if err := png.Encode(&b, img); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("%05d.png", i)), b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n < perClass {
			t.Fatalf("Fashion-MNIST %s has only %d images of class %d", split, n, class)
		}
	}
	return dir
}

// runHeadCommand runs shortcut-train head as a user would and returns its
// exit code, stdout and stderr.
func runHeadCommand(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"head"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

var accuracyLine = regexp.MustCompile(`validation accuracy: ([0-9.]+) \((\d+) images held out`)

func validationAccuracy(t *testing.T, stdout string) (float64, int) {
	t.Helper()
	m := accuracyLine.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no validation accuracy in the output:\n%s", stdout)
	}
	acc, _ := strconv.ParseFloat(m[1], 64)
	n, _ := strconv.Atoi(m[2])
	return acc, n
}

// newClasses are three Fashion-MNIST classes under names the demo model does
// not know.
var newClasses = map[string]int32{"boot": 9, "handbag": 8, "jacket": 4}

func TestHeadReplaceTeachesExactlyTheFolderClassesAndRealTFLiteAgrees(t *testing.T) {
	requireTFLite(t)
	dir := writeFashionFolder(t, t.TempDir(), "train", 40, newClasses)
	out := filepath.Join(t.TempDir(), "mine.tflite")
	code, stdout, stderr := runHeadCommand(t, "--model", demoModel, "--data", "folder:"+dir, "--mode", "replace", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	t.Log("\n" + stdout)
	acc, held := validationAccuracy(t, stdout)
	if held != 24 { // round(0.2 * 40) of each class
		t.Errorf("%d images held out, want 24", held)
	}
	if acc < 0.9 {
		t.Errorf("validation accuracy %.4f on three distinct Fashion-MNIST classes, want at least 0.9", acc)
	}
	if !strings.Contains(stdout, "confusion matrix") {
		t.Errorf("no confusion matrix printed:\n%s", stdout)
	}
	m := loadHeadOutput(t, out, []string{"boot", "handbag", "jacket"})
	agreeWithWitness(t, out, m, map[int32]int{9: 0, 8: 1, 4: 2})
}

func TestHeadExtendKeepsTheBaseClassesAndAddsTheFolders(t *testing.T) {
	requireTFLite(t)
	base, err := resnet.LoadFile(demoModel)
	if err != nil {
		t.Fatal(err)
	}
	baseIO, err := modelio.Describe(base)
	if err != nil {
		t.Fatal(err)
	}
	dir := writeFashionFolder(t, t.TempDir(), "train", 30, newClasses)
	out := filepath.Join(t.TempDir(), "mine.tflite")
	code, stdout, stderr := runHeadCommand(t, "--model", demoModel, "--data", "folder:"+dir, "--mode", "extend", "--seed", "7", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	t.Log("\n" + stdout)
	if _, held := validationAccuracy(t, stdout); held != 18 {
		t.Errorf("%d images held out, want 18", held)
	}
	want := append(slices.Clone(baseIO.Labels), "boot", "handbag", "jacket")
	m := loadHeadOutput(t, out, want)
	n := len(baseIO.Labels)
	agreeWithWitness(t, out, m, map[int32]int{9: n, 8: n + 1, 4: n + 2})
}

// loadHeadOutput loads a written model in our runtime and checks its labels
// and that it is int8 inside.
func loadHeadOutput(t *testing.T, path string, labels []string) *resnet.Model {
	t.Helper()
	m, err := resnet.LoadFile(path)
	if err != nil {
		t.Fatalf("the written model does not load: %v", err)
	}
	mio, err := modelio.Describe(m)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mio.Labels, labels) {
		t.Errorf("labels %q, want %q", mio.Labels, labels)
	}
	if mio.Embedding == nil {
		t.Error("the written model lost its embedding output")
	}
	if isFloatModel(m) {
		t.Error("the written model has no int8 weights")
	}
	return m
}

// agreeWithWitness runs held-out Fashion-MNIST test images of the taught
// classes through our runtime (XNNPACK arithmetic) and LiteRT.js, and checks
// both give the same scores, and how often the taught class wins.
func agreeWithWitness(t *testing.T, path string, m *resnet.Model, classOf map[int32]int) {
	t.Helper()
	mio, err := modelio.Describe(m)
	if err != nil {
		t.Fatal(err)
	}
	prep, err := newImagePreparer(mio.Input)
	if err != nil {
		t.Fatal(err)
	}
	px, labs := fashionImages(t, "t10k", 400)
	dir := t.TempDir()
	var files []string
	var want []int
	for i, l := range labs {
		c, ok := classOf[l]
		if !ok || len(files) == 30 {
			continue
		}
		img := image.NewGray(image.Rect(0, 0, 28, 28))
		copy(img.Pix, px[i*784:(i+1)*784])
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("%d.png", i))
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		files, want = append(files, p), append(want, c)
	}
	it, err := interp.New(m, interp.Options{Threads: 1, Arithmetic: interp.ArithmeticXNNPACK})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	in := make([]float32, mio.Input.Elements())
	shape := m.Tensors[m.Inputs[0]].Shape
	var jobs []witness.Job
	var ours [][]float32
	for i, f := range files {
		if err := prep.prepare(in, f); err != nil {
			t.Fatal(err)
		}
		if err := it.Input(0).SetFloat32(in); err != nil {
			t.Fatal(err)
		}
		if err := it.Invoke(); err != nil {
			t.Fatal(err)
		}
		s, err := it.Output(0).Floats()
		if err != nil {
			t.Fatal(err)
		}
		ours = append(ours, s)
		np := filepath.Join(dir, fmt.Sprintf("in%d.npy", i))
		if err := npy.Write(np, shape, slices.Clone(in)); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, witness.Job{Model: path, Inputs: []string{np}, OutputDir: filepath.Join(dir, fmt.Sprintf("out%d", i))})
		if err := os.Mkdir(jobs[i].OutputDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := witness.Run(ctx, jobs)
	if err != nil {
		t.Fatal(err)
	}
	right, same, maxDiff := 0, 0, 0.0
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("LiteRT.js on image %d: %v", i, r.Err)
		}
		_, d, err := npy.Read(filepath.Join(jobs[i].OutputDir, "output_0.npy"))
		if err != nil {
			t.Fatal(err)
		}
		theirs, ok := d.([]float32)
		if !ok {
			t.Fatalf("LiteRT.js gives scores of type %T, want float32", d)
		}
		if len(theirs) != len(ours[i]) {
			t.Fatalf("LiteRT.js gives %d scores, ours %d", len(theirs), len(ours[i]))
		}
		for k := range theirs {
			maxDiff = max(maxDiff, float64(abs32(theirs[k]-ours[i][k])))
		}
		if modelio.Argmax(theirs) == modelio.Argmax(ours[i]) {
			same++
		}
		if modelio.Argmax(ours[i]) == want[i] {
			right++
		}
	}
	t.Logf("%d test images: top-1 the taught class %d, LiteRT.js and ours agree on top-1 %d, max score difference %g", len(files), right, same, maxDiff)
	if same != len(files) || maxDiff > 1e-6 {
		t.Errorf("LiteRT.js and our runtime disagree on the written model: top-1 agrees on %d of %d, scores differ by up to %g", same, len(files), maxDiff)
	}
	if right < len(files)*8/10 {
		t.Errorf("the taught class wins on %d of %d test images, want at least 80%%", right, len(files))
	}
}

func abs32(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}

func TestHeadRefusesBadInputWithOneLineAndWritesNothing(t *testing.T) {
	good := writeFashionFolder(t, t.TempDir(), "train", 6, map[string]int32{"bag": 8, "boot": 9})

	empty := writeFashionFolder(t, t.TempDir(), "train", 6, map[string]int32{"bag": 8})
	if err := os.Mkdir(filepath.Join(empty, "boot"), 0o755); err != nil {
		t.Fatal(err)
	}
	broken := writeFashionFolder(t, t.TempDir(), "train", 6, map[string]int32{"bag": 8, "boot": 9})
	if err := os.WriteFile(filepath.Join(broken, "boot", "zz.png"), []byte("not a png"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A classifier without any FULLY_CONNECTED (a convolution, a mean and
	// a softmax) has nothing to serve as an embedding.
	g := build.New("no fully connected")
	x := g.Input("input", 1, 28, 28, 1)
	w := make([]float32, 10*3*3)
	for i := range w {
		w[i] = float32(i%7-3) / 10
	}
	c := g.Conv2D("conv", x, build.ConvSpec{Out: 10, KH: 3, KW: 3, Padding: resnet.PaddingSame, Weights: w, Bias: make([]float32, 10)})
	g.Output(g.Softmax("scores", g.SpatialMean("mean", c, false), 1))
	g.SetMeta(resnet.Metadata{Mean: []float32{0.5}, Std: []float32{0.25}})
	noEmb, err := g.Finish()
	if err != nil {
		t.Fatal(err)
	}
	b, err := noEmb.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	noEmbPath := filepath.Join(t.TempDir(), "no-embedding.tflite")
	if err := os.WriteFile(noEmbPath, b, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, model, data, out, want string
	}{
		{"an empty class folder", demoModel, empty, "mine.tflite", `class "boot"`},
		{"an undecodable image", demoModel, broken, "mine.tflite", "zz.png"},
		{"a model without embedding", noEmbPath, good, "mine.tflite", "nor a FULLY_CONNECTED"},
		{"--out in a missing directory", demoModel, good, "missing/mine.tflite", "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outDir := t.TempDir()
			out := filepath.Join(outDir, tc.out)
			code, stdout, stderr := runHeadCommand(t, "--model", tc.model, "--data", "folder:"+tc.data, "--out", out)
			if code != 1 {
				t.Errorf("exit %d, want 1; stdout:\n%s", code, stdout)
			}
			if lines := strings.Count(strings.TrimRight(stderr, "\n"), "\n") + 1; lines != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q: want one line containing %q", stderr, tc.want)
			}
			left, err := os.ReadDir(outDir)
			if err != nil {
				t.Fatal(err)
			}
			if len(left) != 0 {
				t.Errorf("files left in the output directory: %v", left)
			}
		})
	}
}

// A classifier whose only output is its scores is taught too: the input of
// its last FULLY_CONNECTED serves as the embedding, and the written model
// carries it as output 1 so that the agent can teach it further.
func TestHeadTeachesAClassifierWithoutAnEmbeddingOutput(t *testing.T) {
	m, err := resnet.LoadFile(demoModel)
	if err != nil {
		t.Fatal(err)
	}
	m.Outputs = m.Outputs[:1]
	m.Meta.OutputNames = m.Meta.OutputNames[:min(1, len(m.Meta.OutputNames))]
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	scoresOnly := filepath.Join(t.TempDir(), "scores-only.tflite")
	if err := os.WriteFile(scoresOnly, b, 0o644); err != nil {
		t.Fatal(err)
	}
	data := writeFashionFolder(t, t.TempDir(), "train", 12, map[string]int32{"bag": 8, "boot": 9})
	out := filepath.Join(t.TempDir(), "mine.tflite")
	code, stdout, stderr := runHeadCommand(t, "--model", scoresOnly, "--data", "folder:"+data, "--out", out)
	if code != 0 {
		t.Fatalf("head exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "embedding: the input of FULLY_CONNECTED") {
		t.Errorf("stdout does not say where the embedding comes from:\n%s", stdout)
	}
	got, err := resnet.LoadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Outputs) != 2 {
		t.Errorf("the written model has %d outputs; want scores and the embedding", len(got.Outputs))
	}
}

// A float base model (pretrained's model-float.tflite) gets its head and is
// then quantized, calibrated on the folder's images read one at a time: the
// written model is int8 and keeps the embedding; an image that does not
// decode is named in the error and nothing is written.
func TestHeadOnAFloatBaseWritesAnInt8Model(t *testing.T) {
	dir := t.TempDir()
	weights := filepath.Join(dir, "w.safetensors")
	writePretrainedSafetensors(t, weights, pretrainedWeights(t, 10, 3))
	base := filepath.Join(dir, "base")
	if code, _, stderr := cli("pretrained", "--arch", "resnet18", "--weights", weights, "--classes", "10", "--input", "64", "--out", base); code != 0 {
		t.Fatalf("pretrained: exit %d: %s", code, stderr)
	}
	data := writeFashionFolder(t, t.TempDir(), "train", 10, map[string]int32{"bag": 8, "boot": 9})
	out := filepath.Join(dir, "mine.tflite")
	code, stdout, stderr := runHeadCommand(t, "--model", filepath.Join(base, "model-float.tflite"), "--data", "folder:"+data, "--mode", "replace", "--out", out)
	if code != 0 {
		t.Fatalf("head on a float base: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "int8") {
		t.Errorf("head's summary does not say the model is int8:\n%s", stdout)
	}
	loadHeadOutput(t, out, []string{"bag", "boot"})

	// A folder image that does not decode: a clear error, nothing written.
	if err := os.WriteFile(filepath.Join(data, "bag", "broken.png"), []byte("not a png"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.tflite")
	code, _, stderr = runHeadCommand(t, "--model", filepath.Join(base, "model-float.tflite"), "--data", "folder:"+data, "--out", bad)
	if code == 0 || !strings.Contains(stderr, "broken.png") {
		t.Errorf("an undecodable image: exit %d, stderr %q; want an error naming broken.png", code, stderr)
	}
	if _, err := os.Stat(bad); err == nil {
		t.Error("a model was written despite the error")
	}
}
