package train

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortcut-edge/shortcut/train/backend"
)

func TestFastRecipeIsTheMeasuredGPURecipe(t *testing.T) {
	c, err := Config{Recipe: "fast"}.withRecipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.Optimizer != "adam" || c.LR != 2e-3 || c.WeightDecay != 5e-4 || c.Schedule != "cosine" || c.WarmupEpochs != 1 ||
		c.BatchSize != 128 || c.Epochs != 30 || c.ValFraction != 0 || c.CropPad != 4 || !c.Flip {
		t.Errorf("fast recipe: %+v", c)
	}
	if RecipeNotes["fast"] == "" || len(RecipeNotes) != len(Recipes) {
		t.Errorf("every recipe needs a note for the help text: %v", RecipeNotes)
	}
	p, _ := Config{Recipe: "paper", NoValidation: true}.withRecipe()
	if p.ValFraction != 0 {
		t.Errorf("NoValidation left a validation fraction of %g", p.ValFraction)
	}
	bad, _ := Config{Recipe: "fast", Arch: "resnet20", Data: "x", LabelSmoothing: 1, Downsample: -1}.withRecipe()
	if err := bad.Validate(); err == nil {
		t.Error("label smoothing 1 and a negative downsample factor accepted")
	}
}

func TestLabelSmoothingMixesTheTargetWithUniform(t *testing.T) {
	b, err := backend.New("cpu")
	if err != nil {
		t.Fatal(err)
	}
	logits := [][]float32{{2, 0, -1}, {0.5, 0.5, 3}}
	labels := []int32{0, 2}
	for _, s := range []float64{0, 0.1, 0.3} {
		out := MustExecOnce(b, func(l, y *Node) *Node { return smoothedLoss(l, y, s) }, logits, labels)
		got := tensors.MustCopyFlatData[float32](out)
		for i, row := range logits {
			// Cross-entropy against (1-s)*onehot + s/3, from the log-softmax.
			var z float64
			for _, v := range row {
				z += math.Exp(float64(v))
			}
			want := 0.0
			for k, v := range row {
				target := s / 3
				if int32(k) == labels[i] {
					target += 1 - s
				}
				want -= target * (float64(v) - math.Log(z))
			}
			if math.Abs(float64(got[i])-want) > 1e-5 {
				t.Errorf("smoothing %g row %d: loss %g, want %g", s, i, got[i], want)
			}
		}
	}
}

func TestBenchTrainTimesAStepOnTheCPU(t *testing.T) {
	res, err := BenchTrain(t.Context(), BenchOptions{Backend: "cpu", Arch: "resnet8", BaseWidth: 4, Height: 12, Width: 12,
		Channels: 1, Classes: 3, BatchSize: 4, Steps: 2, Warmup: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.ImagesPerSec <= 0 || res.Steps != 2 || res.BatchSize != 4 || math.IsNaN(res.FinalLoss) {
		t.Errorf("bench result %+v", res)
	}
	if _, err := BenchTrain(t.Context(), BenchOptions{Backend: "cpu", Arch: "resnet9"}); err == nil {
		t.Error("unknown architecture accepted")
	}
}
