package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	gctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/shortcut-edge/shortcut/train/backend"
)

// BenchOptions configure BenchTrain: the training step of Fit timed on one fixed random batch,
// what PyTorch benchmarks report (scripts/gpu/torch_step.py does the same on the GPU).
type BenchOptions struct {
	Backend, Ops string
	Arch         string
	BaseWidth    int
	// Height, Width, Channels, Classes of the synthetic input (0: 32, 32, 3, 10, CIFAR-10).
	Height, Width, Channels, Classes int
	BatchSize                        int // 0: 128
	Recipe                           string
	Steps                            int // timed steps (0: 50)
	Warmup                           int // untimed steps after the first (compiling) one (0: 5)
	Seed                             uint64
}

// BenchResult is what BenchTrain measured.
type BenchResult struct {
	Backend, Ops   string
	Arch           string
	BatchSize      int
	Steps          int
	CompileSeconds float64 // wall time of the first step (graph building, compilation, first run)
	StepSeconds    float64 // mean wall time of a timed step
	ImagesPerSec   float64
	FinalLoss      float64
}

// BenchTrain compiles the training step of a model and times it. The batch stays the same
// tensor (on the device after the first step), so data loading is not measured; each step's
// outputs are released without being read, and the loss is read once at the end (which waits
// for the device).
func BenchTrain(ctx context.Context, opt BenchOptions) (res *BenchResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bench-train %s: %v", opt.Arch, r)
		}
	}()
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&opt.Height, 32)
	def(&opt.Width, 32)
	def(&opt.Channels, 3)
	def(&opt.Classes, 10)
	def(&opt.Steps, 50)
	def(&opt.Warmup, 5)
	cfg, err := Config{Recipe: opt.Recipe, BatchSize: opt.BatchSize, Arch: opt.Arch, Data: "synthetic"}.withRecipe()
	if err != nil {
		return nil, err
	}
	if opt.BatchSize == 0 {
		opt.BatchSize = 128 // the comparison batch, whatever the recipe trains with
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opt.Steps < 1 || opt.Warmup < 0 || opt.BatchSize < 1 {
		return nil, fmt.Errorf("bench-train: steps %d, warmup %d, batch %d: need steps >= 1, warmup >= 0, batch >= 1",
			opt.Steps, opt.Warmup, opt.BatchSize)
	}
	b, ops, err := openBackend(opt.Backend, opt.Ops)
	if err != nil {
		return nil, err
	}
	classes := make([]string, opt.Classes)
	for i := range classes {
		classes[i] = fmt.Sprint(i)
	}
	s := &session{backend: b, ops: ops, ctx: gctx.New(), meta: ModelMeta{Arch: opt.Arch, BaseWidth: opt.BaseWidth,
		Height: opt.Height, Width: opt.Width, Channels: opt.Channels, Classes: classes}}
	s.ctx.SetParam(gctx.ParamInitialSeed, int64(max(opt.Seed, 1)))
	if s.net, err = s.meta.Net(); err != nil {
		return nil, err
	}
	exec, err := s.trainExec(optimizer{kind: cfg.Optimizer, momentum: cfg.Momentum, weightDecay: cfg.WeightDecay}, 0)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(max(opt.Seed, 1), 3))
	x := make([]float32, opt.BatchSize*opt.Height*opt.Width*opt.Channels)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := make([]int32, opt.BatchSize)
	for i := range y {
		y[i] = int32(rng.IntN(opt.Classes))
	}
	xt := tensors.FromFlatDataAndDimensions(x, opt.BatchSize, opt.Height, opt.Width, opt.Channels)
	yt := tensors.FromFlatDataAndDimensions(y, opt.BatchSize)
	defer finalize([]*tensors.Tensor{xt, yt})
	lr := float32(cfg.LR) / 10 // a fixed, safe rate: the loss must stay finite, its value does not matter
	var last []*tensors.Tensor
	step := func(keep bool) error {
		if last != nil {
			finalize(last)
			last = nil
		}
		outs, err := exec.Exec(xt, yt, lr)
		if err != nil {
			return err
		}
		if keep {
			last = outs
		} else {
			finalize(outs)
		}
		return nil
	}
	t0 := time.Now()
	if err := step(true); err != nil {
		return nil, err
	}
	_ = tensors.ToScalar[float32](last[0]) // waits for the first step to finish
	compile := time.Since(t0)
	for range opt.Warmup {
		if err := step(false); err != nil {
			return nil, err
		}
	}
	if err := step(true); err != nil { // one more, read: the device is idle when timing starts
		return nil, err
	}
	_ = tensors.ToScalar[float32](last[0])
	t1 := time.Now()
	for i := range opt.Steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := step(i == opt.Steps-1); err != nil {
			return nil, err
		}
	}
	loss := float64(tensors.ToScalar[float32](last[0]))
	elapsed := time.Since(t1)
	finalize(last)
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return nil, fmt.Errorf("bench-train %s: loss became %v; the step is broken on this backend", opt.Arch, loss)
	}
	return &BenchResult{Backend: backend.Resolve(opt.Backend), Ops: ops.String(), Arch: opt.Arch,
		BatchSize: opt.BatchSize, Steps: opt.Steps, CompileSeconds: compile.Seconds(),
		StepSeconds:  elapsed.Seconds() / float64(opt.Steps),
		ImagesPerSec: float64(opt.Steps*opt.BatchSize) / elapsed.Seconds(), FinalLoss: loss}, nil
}
