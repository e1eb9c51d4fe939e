// Package train trains, evaluates and exports the ResNets of package models with GoMLX, on the
// CPU (GoMLX's pure-Go backend, completed by package backend) or on an accelerator through an
// XLA PJRT plugin. cmd/train calls Fit, Eval and Export; data comes from package data.
//
// A run lives in one directory: GoMLX checkpoints (the latest few, plus best/ by validation
// accuracy), metrics.csv and curves.png. The checkpoint also records the model description
// (architecture, input size, classes, normalization), so Eval and Export need only the directory.
package train

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/shortcut-edge/shortcut/train/data"
)

// Config is everything Fit needs. Zero values take the recipe's choice.
type Config struct {
	// Backend: "cpu", "xla:/path/to/pjrt_plugin.so"; empty reads $GOMLX_BACKEND, else "cpu".
	Backend string
	// Ops: "native" or "portable" (see models.Ops); empty picks portable on cpu, native on xla.
	Ops string

	// Arch: resnet20/32/44/56/110, plain20/..., resnet18/34/50 (see models.Config).
	Arch      string
	BaseWidth int

	// Data: "FORMAT:DIR" (see data.ParseSource), read when TrainSet is nil.
	Data string
	// TrainSet and TestSet may be given directly instead of Data (TestSet is optional).
	TrainSet, TestSet *data.Dataset
	// TrainLimit > 0 keeps only the first TrainLimit training images (quick runs); TestLimit
	// likewise for the test set.
	TrainLimit, TestLimit int
	// Downsample > 1 shrinks every image by this integer factor (box average) after loading,
	// e.g. 2 turns 28x28 Fashion-MNIST into 14x14 for quick CPU runs.
	Downsample int

	// Recipe: "paper" (He et al.: SGD momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 at
	// 50% and 75% of training, batch 128), "seed" (Adam 1e-3, batch 64) or "fast" (AdamW 2e-3,
	// decoupled weight decay 5e-4, cosine decay after one warm-up epoch, batch 128, 30 epochs,
	// no validation split: the recipe measured on the H100, see RecipeNotes). Fields below
	// override it when set.
	Recipe       string
	Optimizer    string    // "sgd" (with momentum) or "adam" (AdamW when WeightDecay > 0)
	LR           float64   // peak learning rate
	Momentum     float64   // SGD momentum
	WeightDecay  float64   // L2 on conv and dense weights (decoupled for Adam)
	Schedule     string    // "step", "cosine" or "constant"
	Milestones   []float64 // step schedule: fractions of training where lr is divided by 10
	WarmupEpochs float64   // linear warm-up from 0
	Epochs       int
	BatchSize    int
	MaxSteps     int64 // stop after this many steps in total (0: no limit); the schedule spans it
	// LabelSmoothing mixes the one-hot training target with the uniform distribution:
	// target = (1-s)*onehot + s/K. Validation and test losses stay plain cross-entropy.
	LabelSmoothing float64

	// ValFraction of the training set is held out for validation and best-checkpoint choice.
	// NoValidation trains on the whole training set (the latest checkpoint is then the best).
	ValFraction  float64
	NoValidation bool
	// PadTo pads smaller images (centered) to PadTo x PadTo, e.g. 28 -> 32 for Fashion-MNIST.
	PadTo int
	// CropPad and Flip set the training augmentation; NoAugment turns it off.
	CropPad   int
	Flip      bool
	NoAugment bool
	Seed      uint64
	Workers   int // data workers (0: up to 4)

	// Dir holds checkpoints, metrics.csv and curves.png. Empty: no files at all.
	Dir string
	// CheckpointEvery saves at this interval during training (and always at the end of each
	// epoch); 0 means only at epoch ends.
	CheckpointEvery time.Duration
	// Resume continues the run found in Dir; without it, a Dir holding checkpoints is an error.
	Resume bool
	// KeepCheckpoints is how many recent checkpoints to keep (0: 3).
	KeepCheckpoints int

	// Progress receives a progress bar (nil: none). Log receives one line per epoch (nil: none).
	Progress io.Writer
	Log      *slog.Logger
}

// Recipes names the built-in recipes.
var Recipes = []string{"paper", "seed", "fast"}

// RecipeNotes says what each recipe is for (shown by the fit command's help).
var RecipeNotes = map[string]string{
	"paper": "He et al. 2016 CIFAR recipe: SGD momentum 0.9, wd 1e-4, lr 0.1 /10 at 50% and 75%, batch 128, 160 epochs, 10% validation",
	"seed":  "the article's Keras recipe: Adam 1e-3, batch 64, 30 epochs, 10% validation",
	"fast":  "AdamW 2e-3 (decoupled wd 5e-4), cosine after 1 warm-up epoch, batch 128, 30 epochs, no validation (ResNet-20: 94.2% Fashion-MNIST in ~100 s on an H100)",
}

// withRecipe returns c with the recipe's values filled where c leaves them zero.
func (c Config) withRecipe() (Config, error) {
	type recipe struct {
		opt           string
		lr, mom, wd   float64
		sched         string
		miles         []float64
		batch, epochs int
		val           float64
		cropPad       int
		flip          bool
		warmup        float64
	}
	var r recipe
	switch strings.ToLower(c.Recipe) {
	case "", "paper":
		r = recipe{opt: "sgd", lr: 0.1, mom: 0.9, wd: 1e-4, sched: "step", miles: []float64{0.5, 0.75},
			batch: 128, epochs: 160, val: 0.1, cropPad: 4, flip: true}
	case "seed":
		r = recipe{opt: "adam", lr: 1e-3, sched: "constant", batch: 64, epochs: 30, val: 0.1, cropPad: 4, flip: true}
	case "fast":
		r = recipe{opt: "adam", lr: 2e-3, wd: 5e-4, sched: "cosine", batch: 128, epochs: 30, cropPad: 4, flip: true,
			warmup: 1}
	default:
		return c, fmt.Errorf("recipe %q: unknown; use %s", c.Recipe, strings.Join(Recipes, " or "))
	}
	if c.Recipe == "" {
		c.Recipe = "paper"
	}
	if c.Optimizer == "" {
		c.Optimizer = r.opt
	}
	if c.LR == 0 {
		c.LR = r.lr
	}
	if c.Momentum == 0 {
		c.Momentum = r.mom
	}
	if c.WeightDecay == 0 {
		c.WeightDecay = r.wd
	}
	if c.Schedule == "" {
		c.Schedule = r.sched
	}
	if c.Milestones == nil {
		c.Milestones = r.miles
	}
	if c.BatchSize == 0 {
		c.BatchSize = r.batch
	}
	if c.Epochs == 0 {
		c.Epochs = r.epochs
	}
	if c.NoValidation {
		c.ValFraction = 0
	} else if c.ValFraction == 0 {
		c.ValFraction = r.val
	}
	if c.WarmupEpochs == 0 {
		c.WarmupEpochs = r.warmup
	}
	if !c.NoAugment {
		if c.CropPad == 0 {
			c.CropPad = r.cropPad
		}
		if !c.Flip {
			c.Flip = r.flip
		}
	} else {
		c.CropPad, c.Flip = 0, false
	}
	if c.KeepCheckpoints == 0 {
		c.KeepCheckpoints = 3
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	return c, nil
}

// Validate lists every problem of a (recipe-completed) configuration at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Arch == "" {
		bad("arch", "missing (e.g. resnet20)")
	}
	if c.TrainSet == nil && c.Data == "" {
		bad("data", "missing (e.g. fashion-mnist:%s)", data.FashionMNISTDir)
	}
	switch c.Optimizer {
	case "sgd", "adam":
	default:
		bad("optimizer", "%q, want sgd or adam", c.Optimizer)
	}
	switch c.Schedule {
	case "step", "cosine", "constant":
	default:
		bad("schedule", "%q, want step, cosine or constant", c.Schedule)
	}
	for _, m := range c.Milestones {
		if m <= 0 || m >= 1 {
			bad("milestones", "%g is not a fraction of training in (0, 1)", m)
		}
	}
	if c.LR <= 0 {
		bad("lr", "%g must be positive", c.LR)
	}
	if c.Momentum < 0 || c.Momentum >= 1 {
		bad("momentum", "%g must be in [0, 1)", c.Momentum)
	}
	if c.WeightDecay < 0 {
		bad("weight-decay", "%g must not be negative", c.WeightDecay)
	}
	if c.WarmupEpochs < 0 {
		bad("warmup-epochs", "%g must not be negative", c.WarmupEpochs)
	}
	if c.Epochs < 1 {
		bad("epochs", "%d must be at least 1", c.Epochs)
	}
	if c.BatchSize < 1 {
		bad("batch", "%d must be at least 1", c.BatchSize)
	}
	if c.MaxSteps < 0 {
		bad("max-steps", "%d must not be negative", c.MaxSteps)
	}
	if c.ValFraction < 0 || c.ValFraction >= 1 {
		bad("val-fraction", "%g must be in [0, 1)", c.ValFraction)
	}
	if c.LabelSmoothing < 0 || c.LabelSmoothing >= 1 {
		bad("label-smoothing", "%g must be in [0, 1)", c.LabelSmoothing)
	}
	if c.TrainLimit < 0 || c.TestLimit < 0 {
		bad("limit", "train-limit %d and test-limit %d must not be negative", c.TrainLimit, c.TestLimit)
	}
	if c.Downsample < 0 {
		bad("downsample", "%d must not be negative", c.Downsample)
	}
	if c.PadTo < 0 || c.CropPad < 0 {
		bad("pad", "pad-to %d and crop-pad %d must not be negative", c.PadTo, c.CropPad)
	}
	if c.Resume && c.Dir == "" {
		bad("resume", "needs a run directory (dir)")
	}
	if c.Ops != "" && c.Ops != "native" && c.Ops != "portable" {
		bad("ops", "%q, want native or portable", c.Ops)
	}
	return errors.Join(errs...)
}
