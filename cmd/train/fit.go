package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shortcut-edge/shortcut/train"
	"github.com/shortcut-edge/shortcut/train/backend"
	"github.com/shortcut-edge/shortcut/train/data"
)

func init() {
	commands["fit"] = command{"train a ResNet (checkpoints, metrics.csv, curves.png in --run)", runFit}
	commands["bench-train"] = command{"time the training step on a fixed random batch (prints img_per_s=...)", runBenchTrain}
}

// fitFlags are the training flags shared by fit and experiment.
type fitFlags struct {
	data, recipe, optimizer, schedule, milestones, val, backend, ops, progress             string
	width, epochs, batch, padTo, cropPad, trainLimit, testLimit, downsample, workers, keep int
	lr, momentum, weightDecay, warmup, labelSmoothing                                      float64
	maxSteps                                                                               int64
	seed                                                                                   uint64
	noAugment, resume, quiet                                                               bool
	checkpointEvery                                                                        time.Duration
}

func recipeHelp() string {
	names := append([]string(nil), train.Recipes...)
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "\n  %s: %s", n, train.RecipeNotes[n])
	}
	return b.String()
}

func addFitFlags(fs *flag.FlagSet) *fitFlags {
	f := &fitFlags{}
	fs.StringVar(&f.data, "data", "fashion-mnist", "training data FORMAT:DIR: fashion-mnist[:DIR] (DIR defaults to "+data.FashionMNISTDir+"), mnist:DIR, cifar10:DIR, cifar100:DIR, folder:DIR (one subfolder per class; DIR/train and DIR/test if present)")
	fs.StringVar(&f.recipe, "recipe", "paper", "training recipe; the flags below override its values:"+recipeHelp())
	fs.IntVar(&f.width, "width", 0, "base width (channels of the first stage; 0: 16 for CIFAR ResNets, 64 for resnet18/34/50)")
	fs.StringVar(&f.optimizer, "optimizer", "", "sgd (momentum) or adam (AdamW with --weight-decay); empty: the recipe's")
	fs.IntVar(&f.epochs, "epochs", 0, "epochs (0: the recipe's)")
	fs.IntVar(&f.batch, "batch", 0, "batch size (0: the recipe's)")
	fs.Float64Var(&f.lr, "lr", 0, "peak learning rate (0: the recipe's)")
	fs.Float64Var(&f.momentum, "momentum", 0, "SGD momentum (0: the recipe's)")
	fs.Float64Var(&f.weightDecay, "weight-decay", 0, "weight decay of conv and dense weights, decoupled for adam (0: the recipe's)")
	fs.StringVar(&f.schedule, "schedule", "", "learning-rate schedule: step, cosine or constant (empty: the recipe's)")
	fs.StringVar(&f.milestones, "milestones", "", "step schedule: fractions of training where the rate drops 10x, e.g. 0.5,0.75")
	fs.Float64Var(&f.warmup, "warmup", 0, "linear warm-up, in epochs (may be fractional)")
	fs.Float64Var(&f.labelSmoothing, "label-smoothing", 0, "label smoothing s: targets (1-s)*onehot + s/classes")
	fs.Int64Var(&f.maxSteps, "max-steps", 0, "stop after this many optimizer steps in total (0: no limit)")
	fs.StringVar(&f.val, "val", "", "validation fraction held out of the training set, or 0 for none (empty: the recipe's)")
	fs.IntVar(&f.padTo, "pad-to", 0, "zero-pad smaller images (centred) to this size, e.g. 32 for 28x28 Fashion-MNIST")
	fs.IntVar(&f.cropPad, "crop-pad", 0, "random-crop augmentation padding in pixels (0: the recipe's, 4)")
	fs.BoolVar(&f.noAugment, "no-augment", false, "no random crop or flip")
	fs.IntVar(&f.trainLimit, "train-limit", 0, "use only the first N training images (quick runs)")
	fs.IntVar(&f.testLimit, "test-limit", 0, "use only the first N test images")
	fs.IntVar(&f.downsample, "downsample", 0, "shrink images by this integer factor, e.g. 2: 28x28 -> 14x14 (quick CPU runs)")
	fs.Uint64Var(&f.seed, "seed", 0, "random seed (initialization, split, shuffling; 0: 1). --resume needs the same")
	fs.IntVar(&f.workers, "workers", 0, "data workers (0: up to 4)")
	fs.StringVar(&f.backend, "backend", "", "cpu or xla:/path/to/pjrt_plugin.so (e.g. JAX's xla_cuda_plugin.so); empty: $"+backend.EnvVar+", else cpu")
	fs.StringVar(&f.ops, "ops", "", "native (fused convolutions: best on XLA) or portable (im2col: best on cpu); empty: by backend")
	fs.BoolVar(&f.resume, "resume", false, "continue the run in --run (after a kill, with more epochs, or from import-weights)")
	fs.DurationVar(&f.checkpointEvery, "checkpoint-every", 10*time.Minute, "also checkpoint at this interval inside epochs (0: epoch ends only)")
	fs.IntVar(&f.keep, "keep", 3, "recent checkpoints to keep (best/ is kept apart)")
	fs.StringVar(&f.progress, "progress", "auto", "progress bar on stderr: auto (when stderr is a terminal), on, off")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress bar and no per-epoch log lines")
	return f
}

func parseFloats(name, s string) ([]float64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []float64
	for _, p := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return nil, fmt.Errorf("--%s %q: %q is not a number", name, s, p)
		}
		out = append(out, v)
	}
	return out, nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// lineClearer starts every log line by clearing the terminal line, so epoch lines do not
// collide with the progress bar drawn on the same line.
type lineClearer struct{ w io.Writer }

func (l lineClearer) Write(p []byte) (int, error) {
	if _, err := io.WriteString(l.w, "\r\x1b[K"); err != nil {
		return 0, err
	}
	return l.w.Write(p)
}

// config turns the flags into a train.Config (without Arch and Dir).
func (f *fitFlags) config(stderr *os.File) (train.Config, error) {
	var errs []error
	miles, err := parseFloats("milestones", f.milestones)
	errs = append(errs, err)
	cfg := train.Config{Backend: f.backend, Ops: f.ops, BaseWidth: f.width, Data: f.data, TrainLimit: f.trainLimit,
		TestLimit: f.testLimit, Downsample: f.downsample, Recipe: f.recipe, Optimizer: f.optimizer, LR: f.lr,
		Momentum: f.momentum, WeightDecay: f.weightDecay, Schedule: f.schedule, Milestones: miles,
		WarmupEpochs: f.warmup, Epochs: f.epochs, BatchSize: f.batch, MaxSteps: f.maxSteps,
		LabelSmoothing: f.labelSmoothing, PadTo: f.padTo, CropPad: f.cropPad, NoAugment: f.noAugment, Seed: f.seed,
		Workers: f.workers, CheckpointEvery: f.checkpointEvery, Resume: f.resume, KeepCheckpoints: f.keep}
	if v := strings.TrimSpace(f.val); v != "" {
		x, err := strconv.ParseFloat(v, 64)
		switch {
		case v == "none" || (err == nil && x == 0):
			cfg.NoValidation = true
		case err != nil || x < 0 || x >= 1:
			errs = append(errs, fmt.Errorf("--val %q: want a fraction in [0, 1), 0 for no validation", v))
		default:
			cfg.ValFraction = x
		}
	}
	switch f.progress {
	case "on", "auto", "off":
	default:
		errs = append(errs, fmt.Errorf("--progress %q: want auto, on or off", f.progress))
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	if !f.quiet {
		if f.progress == "on" || (f.progress == "auto" && isTerminal(stderr)) {
			cfg.Progress = stderr
			cfg.Log = slog.New(slog.NewTextHandler(lineClearer{stderr}, nil))
		} else {
			cfg.Log = slog.New(slog.NewTextHandler(stderr, nil))
		}
	}
	return cfg, nil
}

func runFit(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("fit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: shortcut-train fit --arch resnet20 --data fashion-mnist --run DIR [flags]\n\n"+
			"Trains on the training split (minus --val), evaluates each epoch, checkpoints into --run\n"+
			"(latest 3, best/ by validation accuracy, metrics.csv, curves.png) and prints the test\n"+
			"accuracy. Ctrl-C saves a checkpoint; --resume continues.\n\n")
		fs.PrintDefaults()
	}
	arch := fs.String("arch", "resnet20", "architecture: resnet20/32/44/56/110 and plain20/... (CIFAR layout, any 6k+2), resnet18/34/50 (ImageNet layout)")
	run := fs.String("run", "", "run directory (checkpoints, metrics.csv, curves.png); empty: train without saving")
	f := addFitFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags come as --name value)", fs.Arg(0))
	}
	cfg, err := f.config(os.Stderr)
	if err != nil {
		return err
	}
	cfg.Arch, cfg.Dir = *arch, *run
	start := time.Now()
	res, err := train.Fit(ctx, cfg)
	if err != nil {
		if errors.Is(err, context.Canceled) && *run != "" {
			return fmt.Errorf("interrupted; checkpoint saved in %s, continue with --resume", *run)
		}
		return err
	}
	printFitResult(stdout, res, time.Since(start))
	return nil
}

// printFitResult writes key=value lines, the last ones what scripts grep for.
func printFitResult(w io.Writer, res *train.Result, wall time.Duration) {
	fmt.Fprintf(w, "arch=%s backend=%s ops=%s input=%dx%dx%d classes=%d\n", res.Meta.Arch, res.Backend, res.Ops,
		res.Meta.Height, res.Meta.Width, res.Meta.Channels, len(res.Meta.Classes))
	if n := len(res.Epochs); n > 0 {
		e := res.Epochs[n-1]
		fmt.Fprintf(w, "epoch=%d step=%d train_loss=%.4f train_acc=%.4f val_acc=%s\n", e.Epoch, res.Steps, e.TrainLoss,
			e.TrainAcc, fmtNaN(e.ValAcc))
	}
	if res.BestEpoch > 0 {
		fmt.Fprintf(w, "best_epoch=%d best_val_acc=%.4f\n", res.BestEpoch, res.BestValAcc)
	}
	if res.Dir != "" {
		fmt.Fprintf(w, "run=%s\n", res.Dir)
	}
	fmt.Fprintf(w, "test_acc=%s\n", fmtNaN(res.TestAcc))
	fmt.Fprintf(w, "train_img_per_s=%.0f\n", res.ImagesPerSec)
	fmt.Fprintf(w, "wall_s=%.1f\n", wall.Seconds())
}

func fmtNaN(v float64) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	return strconv.FormatFloat(v, 'f', 4, 64)
}

func runBenchTrain(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("bench-train")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: shortcut-train bench-train --arch resnet20 [flags]\n\n"+
			"Compiles one training step (forward, backward, optimizer) and times it on a fixed random\n"+
			"batch that stays on the device: what PyTorch step benchmarks measure\n"+
			"(scripts/gpu/torch_step.py). Prints key=value lines, img_per_s last.\n\n")
		fs.PrintDefaults()
	}
	arch := fs.String("arch", "resnet20", "architecture (as fit)")
	width := fs.Int("width", 0, "base width (0: the architecture's)")
	batch := fs.Int("batch", 128, "batch size")
	input := fs.String("input", "32,32,3", "input H,W,C")
	classes := fs.Int("classes", 10, "number of classes")
	steps := fs.Int("steps", 50, "timed steps")
	warmup := fs.Int("warmup", 5, "untimed steps after the compiling one")
	recipe := fs.String("recipe", "fast", "optimizer recipe: "+strings.Join(train.Recipes, ", "))
	be := fs.String("backend", "", "cpu or xla:/path/to/pjrt_plugin.so; empty: $"+backend.EnvVar+", else cpu")
	ops := fs.String("ops", "", "native or portable (empty: by backend)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	hwc, err := parseHWC(*input)
	if err != nil {
		return err
	}
	if *classes < 2 {
		return fmt.Errorf("--classes %d: need at least 2", *classes)
	}
	res, err := train.BenchTrain(ctx, train.BenchOptions{Backend: *be, Ops: *ops, Arch: *arch, BaseWidth: *width,
		Height: hwc[0], Width: hwc[1], Channels: hwc[2], Classes: *classes, BatchSize: *batch, Recipe: *recipe,
		Steps: *steps, Warmup: *warmup})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "arch=%s backend=%s ops=%s batch=%d input=%s steps=%d\n", res.Arch, res.Backend, res.Ops,
		res.BatchSize, *input, res.Steps)
	fmt.Fprintf(stdout, "compile_s=%.2f step_ms=%.3f loss=%.4f\n", res.CompileSeconds, 1000*res.StepSeconds, res.FinalLoss)
	fmt.Fprintf(stdout, "img_per_s=%.1f\n", res.ImagesPerSec)
	return nil
}
