package train

import (
	"bytes"
	"context"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/shortcut-edge/shortcut/train/data"
)

// fashion loads real Fashion-MNIST (Debian package dataset-fashion-mnist), shrunk to 14x14 so a
// CPU run of a few thousand images takes seconds: the first nTrain training and nTest test images.
func fashion(t *testing.T, nTrain, nTest int) (train, test *data.Dataset) {
	t.Helper()
	fashionOnce.Do(func() {
		src := data.Source{Format: data.FormatFashionMNIST, Dir: data.FashionMNISTDir}
		tr, err := data.Load(src, "train")
		if err != nil {
			fashionErr = err
			return
		}
		te, err := data.Load(src, "test")
		if err != nil {
			fashionErr = err
			return
		}
		if fashionTrain, fashionErr = tr.Downsample(2); fashionErr != nil {
			return
		}
		fashionTest, fashionErr = te.Downsample(2)
	})
	if fashionErr != nil {
		t.Fatalf("Fashion-MNIST is needed (apt-get install dataset-fashion-mnist): %v", fashionErr)
	}
	return fashionTrain.Head(nTrain), fashionTest.Head(nTest)
}

var (
	fashionOnce               sync.Once
	fashionTrain, fashionTest *data.Dataset
	fashionErr                error
)

// smallConfig is a ResNet-8 of base width 8 on 14x14 grey images with Adam: about 700
// images/s on two cores.
func smallConfig(dir string, tr, te *data.Dataset) Config {
	return Config{Backend: "cpu", Arch: "resnet8", BaseWidth: 8, TrainSet: tr, TestSet: te, Recipe: "seed", LR: 3e-3,
		Epochs: 2, NoAugment: true, Dir: dir, Seed: 7, Workers: 2}
}

func TestFitTrainsAResNetOnFashionMNISTWellAboveChance(t *testing.T) {
	tr, te := fashion(t, 4000, 2000)
	dir := t.TempDir()
	res, err := Fit(context.Background(), smallConfig(dir, tr, te))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Epochs) != 2 {
		t.Fatalf("got %d epochs of metrics, want 2", len(res.Epochs))
	}
	e1, e2 := res.Epochs[0], res.Epochs[1]
	t.Logf("epoch 1: loss %.3f acc %.3f val %.3f; epoch 2: loss %.3f acc %.3f val %.3f; test %.3f; %.0f img/s",
		e1.TrainLoss, e1.TrainAcc, e1.ValAcc, e2.TrainLoss, e2.TrainAcc, e2.ValAcc, res.TestAcc, res.ImagesPerSec)
	if !(e2.TrainLoss < e1.TrainLoss) || !(e1.TrainLoss < math.Log(10)) {
		t.Errorf("training loss should fall below chance (%.3f) and keep falling: %.3f then %.3f", math.Log(10), e1.TrainLoss, e2.TrainLoss)
	}
	if res.TestAcc < 0.6 || e2.ValAcc < 0.6 {
		t.Errorf("test accuracy %.3f, validation %.3f: want both above 0.6 (chance is 0.1)", res.TestAcc, e2.ValAcc)
	}
	if res.Steps != 2*int64(3600/64) {
		t.Errorf("global step %d, want %d (2 epochs of 3600 images in batches of 64)", res.Steps, 2*(3600/64))
	}

	// The run directory holds the curves and the best checkpoint, and Eval reproduces the score.
	rows, err := ReadCSV(filepath.Join(dir, "metrics.csv"))
	if err != nil || len(rows) != 2 || rows[1].ValAcc != round6(e2.ValAcc) {
		t.Errorf("metrics.csv: %v rows, err %v; want 2 rows matching the result", len(rows), err)
	}
	img, err := os.ReadFile(filepath.Join(dir, "curves.png"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(img)); err != nil {
		t.Errorf("curves.png is not a PNG: %v", err)
	}
	ev, err := Eval(context.Background(), EvalOptions{Backend: "cpu", Dir: dir, Dataset: te, BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if res.BestEpoch == 2 && math.Abs(ev.Accuracy-res.TestAcc) > 1e-9 {
		t.Errorf("Eval of the best (= last) checkpoint: accuracy %.4f, Fit measured %.4f", ev.Accuracy, res.TestAcc)
	}
	total, diag := 0, 0
	for i, row := range ev.Confusion {
		for _, c := range row {
			total += c
		}
		diag += row[i]
	}
	if total != te.Len() || math.Abs(float64(diag)/float64(total)-ev.Accuracy) > 1e-9 {
		t.Errorf("confusion matrix counts %d images with %d correct; want %d images and accuracy %.4f", total, diag,
			te.Len(), ev.Accuracy)
	}
	if len(ev.PerClass) != 10 || !strings.Contains(ev.Format(), "Ankle boot") {
		t.Errorf("per-class report incomplete:\n%s", ev.Format())
	}
}

// round6 mirrors the 6 significant digits metrics.csv keeps.
func round6(v float64) float64 {
	if v == 0 {
		return 0
	}
	p := math.Pow(10, 5-math.Floor(math.Log10(math.Abs(v))))
	return math.Round(v*p) / p
}

func TestResumeContinuesTheSameRun(t *testing.T) {
	tr, te := fashion(t, 1280, 500) // about 1150 training images after the split: 17-18 steps per epoch
	dir := t.TempDir()
	cfg := smallConfig(dir, tr, te)
	cfg.MaxSteps = 10
	first, err := Fit(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if first.Steps != 10 {
		t.Fatalf("first run stopped at step %d, want 10", first.Steps)
	}

	// Without --resume the directory is protected.
	if _, err := Fit(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("second Fit into a used directory: err %v, want a refusal that mentions resume", err)
	}

	// Resuming with the same step limit trains nothing: the restored weights score exactly the same.
	cfg.Resume = true
	same, err := Fit(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if same.Steps != 10 || same.TestAcc != first.TestAcc {
		t.Fatalf("resumed without new steps: step %d, test accuracy %.4f; want step 10 and %.4f (restored variables)",
			same.Steps, same.TestAcc, first.TestAcc)
	}

	// Resuming with a larger limit continues from step 10 to the end of epoch 2.
	cfg.MaxSteps = 0
	rest, err := Fit(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest.Epochs) != 2 || rest.Epochs[0].Step <= 10 || rest.Epochs[1].Step != 2*rest.Epochs[0].Step ||
		rest.Steps != rest.Epochs[1].Step {
		t.Fatalf("resumed epochs %+v ending at step %d: want epoch 1 to finish after step 10 and epoch 2 to end at twice its step",
			rest.Epochs, rest.Steps)
	}
	if rest.Epochs[0].TrainLoss >= math.Log(10) {
		t.Errorf("the resumed part of epoch 1 has loss %.3f, no better than chance: weights were not restored", rest.Epochs[0].TrainLoss)
	}

	// A different architecture in the same directory is refused with both names.
	cfg.Arch = "resnet20"
	if _, err := Fit(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "resnet8") {
		t.Errorf("resuming resnet8's directory as resnet20: err %v, want a mismatch error", err)
	}
}

func TestScheduleFollowsTheRecipe(t *testing.T) {
	cases := []struct {
		name string
		s    Schedule
		step int64
		want float64
	}{
		{"step before the first milestone", Schedule{Kind: "step", Peak: 0.1, TotalSteps: 100, Milestones: []float64{0.5, 0.75}}, 49, 0.1},
		{"step at 50%", Schedule{Kind: "step", Peak: 0.1, TotalSteps: 100, Milestones: []float64{0.5, 0.75}}, 50, 0.01},
		{"step at 75%", Schedule{Kind: "step", Peak: 0.1, TotalSteps: 100, Milestones: []float64{0.5, 0.75}}, 80, 0.001},
		{"warm-up ramps linearly", Schedule{Kind: "constant", Peak: 1, TotalSteps: 100, WarmupSteps: 10}, 4, 0.5},
		{"cosine starts at the peak after warm-up", Schedule{Kind: "cosine", Peak: 2, TotalSteps: 110, WarmupSteps: 10}, 10, 2},
		{"cosine is half way at the middle", Schedule{Kind: "cosine", Peak: 2, TotalSteps: 110, WarmupSteps: 10}, 60, 1},
		{"cosine ends at zero", Schedule{Kind: "cosine", Peak: 2, TotalSteps: 110, WarmupSteps: 10}, 110, 0},
	}
	for _, tc := range cases {
		if got := tc.s.At(tc.step); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: lr at step %d = %g, want %g", tc.name, tc.step, got, tc.want)
		}
	}
}

func TestRecipesFillTheirSettings(t *testing.T) {
	paper, err := Config{Recipe: "paper"}.withRecipe()
	if err != nil {
		t.Fatal(err)
	}
	if paper.Optimizer != "sgd" || paper.Momentum != 0.9 || paper.WeightDecay != 1e-4 || paper.LR != 0.1 ||
		paper.BatchSize != 128 || paper.Schedule != "step" || len(paper.Milestones) != 2 {
		t.Errorf("paper recipe: %+v", paper)
	}
	seed, _ := Config{Recipe: "seed"}.withRecipe()
	if seed.Optimizer != "adam" || seed.LR != 1e-3 || seed.BatchSize != 64 || seed.ValFraction != 0.1 {
		t.Errorf("seed recipe: %+v", seed)
	}
	if _, err := (Config{Recipe: "magic"}).withRecipe(); err == nil {
		t.Error("unknown recipe accepted")
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	c, _ := Config{Recipe: "seed"}.withRecipe()
	c.Arch, c.Data, c.Epochs, c.BatchSize, c.Optimizer, c.Resume = "", "", 0, -1, "rmsprop", true
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, key := range []string{"arch:", "data:", "epochs:", "batch:", "optimizer:", "resume:"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not mention %s\n%v", key, err)
		}
	}
}

func TestEvalRefusesADirectoryWithoutCheckpoints(t *testing.T) {
	dir := t.TempDir()
	_, err := Eval(context.Background(), EvalOptions{Backend: "cpu", Dir: dir, Data: "fashion-mnist"})
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("Eval of an empty directory: %v, want an error naming it", err)
	}
}
