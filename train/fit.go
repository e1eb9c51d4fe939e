package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	gctx "github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/checkpoints"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
	"github.com/schollz/progressbar/v3"

	"github.com/shortcut-edge/shortcut/train/backend"
	"github.com/shortcut-edge/shortcut/train/data"
	"github.com/shortcut-edge/shortcut/train/models"
)

// EpochStats is one row of metrics.csv.
type EpochStats struct {
	Epoch        int     // 1-based
	Step         int64   // global step at the end of the epoch
	TrainLoss    float64 // mean over the epoch's batches (augmented, model changing)
	TrainAcc     float64
	ValLoss      float64 // NaN without a validation split
	ValAcc       float64
	ImagesPerSec float64 // training images per second of wall time in this epoch
	LR           float64 // learning rate of the last step
	Seconds      float64 // wall time of the epoch, including validation
}

// Result summarizes a Fit call.
type Result struct {
	Meta       ModelMeta
	Backend    string
	Ops        string
	Epochs     []EpochStats // the epochs run by this call
	Steps      int64        // global step at the end
	BestEpoch  int
	BestValAcc float64
	// TestAcc is the accuracy of the final weights on the test set (NaN without one).
	TestAcc float64
	// ImagesPerSec is the training throughput of this call, excluding graph compilation.
	ImagesPerSec float64
	Dir          string
}

// BestDir is the subdirectory of a run directory that holds the best checkpoint by validation accuracy.
const BestDir = "best"

// session holds what a training or evaluation run builds once.
type session struct {
	backend backends.Backend
	ops     models.Ops
	ctx     *gctx.Context
	net     *models.Net
	meta    ModelMeta
}

// openBackend makes the backend and picks the op implementation.
func openBackend(spec, ops string) (backends.Backend, models.Ops, error) {
	b, err := backend.New(spec)
	if err != nil {
		return nil, 0, err
	}
	o := models.Native
	if backend.KindOf(b) == backend.CPU {
		o = models.Portable
	}
	if ops != "" {
		if o, err = models.ParseOps(ops); err != nil {
			return nil, 0, err
		}
	}
	return b, o, nil
}

// evalExec returns per-example predictions and losses (rows beyond a batch's N are ignored).
func (s *session) evalExec() (*gctx.Exec, error) {
	// Reuse: evaluation reads the variables training (or the checkpoint) made, and creates none.
	return gctx.NewExec(s.backend, s.ctx.Reuse(), func(ctx *gctx.Context, x, y *Node) (*Node, *Node) {
		ctx.SetTraining(x.Graph(), false)
		logits := s.net.Build(ctx, s.ops, x)
		return ArgMax(logits, -1, y.DType()), exampleLoss(logits, y)
	})
}

// trainExec compiles (lazily, at the first call) one optimizer step: inputs images, labels and
// the learning rate; outputs the batch's mean loss and its number of correct predictions.
func (s *session) trainExec(opt optimizer, labelSmoothing float64) (*gctx.Exec, error) {
	// Unchecked: a resumed run finds its variables already loaded from the checkpoint.
	return gctx.NewExec(s.backend, s.ctx.Checked(false), func(ctx *gctx.Context, x, y, lr *Node) (*Node, *Node) {
		g := x.Graph()
		ctx.SetTraining(g, true)
		logits := s.net.Build(ctx, s.ops, x)
		loss := ReduceAllMean(smoothedLoss(logits, y, labelSmoothing))
		correct := ReduceAllSum(ConvertDType(Equal(ArgMax(logits, -1, y.DType()), y), loss.DType()))
		opt.update(ctx, loss, lr)
		return loss, correct
	})
}

// smoothedLoss is the cross-entropy of each row against (1-s)*onehot + s/K.
func smoothedLoss(logits, labels *Node, s float64) *Node {
	if s == 0 {
		return exampleLoss(logits, labels)
	}
	k := logits.Shape().Dimensions[1]
	oh := OneHot(labels, k, logits.DType())
	target := AddScalar(MulScalar(oh, 1-s), s/float64(k))
	return Neg(ReduceSum(Mul(LogSoftmax(logits, -1), target), -1))
}

// exampleLoss is the softmax cross-entropy of each row.
func exampleLoss(logits, labels *Node) *Node {
	oh := OneHot(labels, logits.Shape().Dimensions[1], logits.DType())
	return Neg(ReduceSum(Mul(LogSoftmax(logits, -1), oh), -1))
}

// evalSet runs the model over d and returns mean loss, accuracy and the confusion matrix
// (rows: true class, columns: predicted).
func (s *session) evalSet(ctx context.Context, exec *gctx.Exec, d *data.Dataset, batch, workers int) (
	loss, acc float64, confusion [][]int, err error) {
	opt := s.meta.batchOptions(batch)
	opt.Workers = workers
	it, err := data.Iterate(ctx, d, opt)
	if err != nil {
		return 0, 0, nil, err
	}
	defer it.Close()
	k := len(s.meta.Classes)
	confusion = make([][]int, k)
	for i := range confusion {
		confusion[i] = make([]int, k)
	}
	var n, correct int
	var sum float64
	for {
		b, ok := it.Next()
		if !ok {
			break
		}
		xt, yt := xTensor(b), tensors.FromFlatDataAndDimensions(b.Y, len(b.Y))
		outs, err := exec.Exec(xt, yt)
		finalize([]*tensors.Tensor{xt, yt})
		if err != nil {
			return 0, 0, nil, fmt.Errorf("evaluating %s: %w", d.Name, err)
		}
		pred := tensors.MustCopyFlatData[int32](outs[0])
		ls := tensors.MustCopyFlatData[float32](outs[1])
		finalize(outs)
		for i := range b.N {
			confusion[b.Y[i]][pred[i]]++
			if pred[i] == b.Y[i] {
				correct++
			}
			sum += float64(ls[i])
		}
		n += b.N
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, nil, err
	}
	if n == 0 {
		return 0, 0, nil, fmt.Errorf("evaluating %s: no images", d.Name)
	}
	return sum / float64(n), float64(correct) / float64(n), confusion, nil
}

func xTensor(b data.Batch) *tensors.Tensor {
	return tensors.FromFlatDataAndDimensions(b.X, len(b.Y), b.H, b.W, b.C)
}

func finalize(ts []*tensors.Tensor) {
	for _, t := range ts {
		t.FinalizeAll()
	}
}

// Fit trains a model as cfg says, checkpointing into cfg.Dir, and returns its metrics.
// Cancelling ctx stops training after the current step and saves a checkpoint.
func Fit(ctx context.Context, cfg Config) (res *Result, err error) {
	cfg, err = cfg.withRecipe()
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("training configuration:\n%w", err)
	}
	defer func() { // GoMLX reports graph errors by panicking.
		if r := recover(); r != nil {
			err = fmt.Errorf("training %s: %v", cfg.Arch, r)
		}
	}()
	r := &fitRun{cfg: cfg}
	if err := r.loadData(); err != nil {
		return nil, err
	}
	if err := r.openModel(); err != nil {
		return nil, err
	}
	if err := r.compile(); err != nil {
		return nil, err
	}
	for epoch := r.state.EpochsDone; epoch < cfg.Epochs && r.step < r.total; epoch++ {
		stats, err := r.trainEpoch(ctx, epoch)
		if err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			_ = r.save()
			return r.res, ctx.Err()
		}
		if err := r.endEpoch(ctx, epoch, stats); err != nil {
			return nil, err
		}
	}
	return r.finish(ctx)
}

// fitRun is one Fit call: what its steps build and share.
type fitRun struct {
	cfg                       Config
	trainSet, valSet, testSet *data.Dataset
	s                         *session
	state                     RunState
	ckpt                      *checkpoints.Handler // nil without cfg.Dir

	stepsPerEpoch, total, step int64
	sched                      Schedule
	trainExec, evalExec        *gctx.Exec

	res         *Result
	bar         *progressbar.ProgressBar
	lastSave    time.Time
	trainImages int
	trainTime   time.Duration // excluding the first step's compilation
}

func (r *fitRun) logf(msg string, args ...any) {
	if r.cfg.Log != nil {
		r.cfg.Log.Info(msg, args...)
	}
}

// loadData loads the splits (or takes the ones given), applies the limits and
// the downsampling, and carves out the validation split.
func (r *fitRun) loadData() (err error) {
	cfg := &r.cfg
	trainSet, testSet := cfg.TrainSet, cfg.TestSet
	if trainSet == nil {
		src, err := data.ParseSource(cfg.Data)
		if err != nil {
			return err
		}
		if trainSet, err = data.Load(src, "train"); err != nil {
			return err
		}
		if testSet == nil {
			if t, err := data.Load(src, "test"); err == nil {
				testSet = t
			} else {
				r.logf("no test split", "data", cfg.Data, "reason", err)
			}
		}
	}
	trainSet = trainSet.Head(cfg.TrainLimit)
	if testSet != nil {
		testSet = testSet.Head(cfg.TestLimit)
	}
	if cfg.Downsample > 1 {
		if trainSet, err = trainSet.Downsample(cfg.Downsample); err != nil {
			return err
		}
		if testSet != nil {
			if testSet, err = testSet.Downsample(cfg.Downsample); err != nil {
				return err
			}
		}
	}
	if cfg.ValFraction > 0 {
		if trainSet, r.valSet, err = trainSet.Split(cfg.ValFraction, cfg.Seed); err != nil {
			return err
		}
	}
	r.trainSet, r.testSet = trainSet, testSet
	return nil
}

// openModel opens the backend and describes the model: new, or the one of
// the run being resumed (whose checkpoint it loads).
func (r *fitRun) openModel() error {
	cfg := &r.cfg
	b, ops, err := openBackend(cfg.Backend, cfg.Ops)
	if err != nil {
		return err
	}
	s := &session{backend: b, ops: ops, ctx: gctx.New()}
	s.ctx.SetParam(gctx.ParamInitialSeed, int64(cfg.Seed))
	h, w := data.OutputSize(r.trainSet, data.BatchOptions{PadTo: cfg.PadTo})
	norm := data.Stats(r.trainSet)
	s.meta = ModelMeta{Arch: cfg.Arch, BaseWidth: cfg.BaseWidth, Height: h, Width: w, Channels: r.trainSet.Channels,
		Classes: r.trainSet.Classes, Mean: norm.Mean, Std: norm.Std, PadTo: cfg.PadTo, DataHeight: r.trainSet.Height,
		DataWidth: r.trainSet.Width, Dataset: r.trainSet.Name}
	r.state = RunState{Seed: cfg.Seed, Recipe: cfg.Recipe, BestValAcc: -1}
	if cfg.Dir != "" {
		if r.ckpt, err = openRun(s.ctx, *cfg, &s.meta, &r.state); err != nil {
			return err
		}
	}
	if s.net, err = s.meta.Net(); err != nil {
		return err
	}
	r.s = s
	return setJSONParam(s.ctx, metaParam, s.meta)
}

// compile sets the schedule over the whole run (also when resumed), builds
// the training and evaluation graphs and the progress bar.
func (r *fitRun) compile() (err error) {
	cfg := &r.cfg
	r.stepsPerEpoch = int64(data.NumBatches(r.trainSet.Len(), data.BatchOptions{BatchSize: cfg.BatchSize, DropLast: true}))
	if r.stepsPerEpoch == 0 {
		return fmt.Errorf("training set %s has %d images, fewer than one batch of %d", r.trainSet.Name,
			r.trainSet.Len(), cfg.BatchSize)
	}
	r.total = r.stepsPerEpoch * int64(cfg.Epochs)
	if cfg.MaxSteps > 0 {
		r.total = min(r.total, cfg.MaxSteps)
	}
	r.state.TotalSteps = r.total
	r.sched = Schedule{Kind: cfg.Schedule, Peak: cfg.LR, TotalSteps: r.total, Milestones: cfg.Milestones,
		WarmupSteps: int64(cfg.WarmupEpochs * float64(r.stepsPerEpoch))}
	opt := optimizer{kind: cfg.Optimizer, momentum: cfg.Momentum, weightDecay: cfg.WeightDecay}
	if r.trainExec, err = r.s.trainExec(opt, cfg.LabelSmoothing); err != nil {
		return err
	}
	if r.evalExec, err = r.s.evalExec(); err != nil {
		return err
	}
	r.res = &Result{Meta: r.s.meta, Backend: backend.Resolve(cfg.Backend), Ops: r.s.ops.String(), BestEpoch: r.state.BestEpoch,
		BestValAcc: r.state.BestValAcc, TestAcc: math.NaN(), Dir: cfg.Dir}
	r.step = optimizers.GetGlobalStep(r.s.ctx)
	if cfg.Progress != nil {
		r.bar = progressbar.NewOptions64(r.total, progressbar.OptionSetWriter(cfg.Progress),
			progressbar.OptionSetDescription(cfg.Arch), progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(250*time.Millisecond),
			progressbar.OptionSetWidth(24), progressbar.OptionOnCompletion(func() { fmt.Fprintln(cfg.Progress) }))
		_ = r.bar.Set64(r.step)
	}
	r.lastSave = time.Now()
	r.logf("training", "arch", cfg.Arch, "backend", r.res.Backend, "ops", r.res.Ops, "train", r.trainSet.Len(),
		"val", lenOf(r.valSet), "steps", r.total, "resume_step", r.step)
	return nil
}

// save writes a checkpoint with the run state (nothing without cfg.Dir).
func (r *fitRun) save() error {
	if r.ckpt == nil {
		return nil
	}
	if err := setJSONParam(r.s.ctx, stateParam, r.state); err != nil {
		return err
	}
	return r.ckpt.Save()
}

// epochStats is what trainEpoch measured; exhausted says the data ran out
// (the epoch is complete) rather than MaxSteps or the context stopping it.
type epochStats struct {
	EpochStats
	seen      int
	train     time.Duration
	start     time.Time
	exhausted bool
}

// trainEpoch runs the training steps of one epoch, resuming inside it when
// a checkpoint stopped mid-epoch, checkpointing every cfg.CheckpointEvery.
func (r *fitRun) trainEpoch(ctx context.Context, epoch int) (*epochStats, error) {
	cfg := &r.cfg
	es := &epochStats{start: time.Now()}
	it, err := data.Iterate(ctx, r.trainSet, data.BatchOptions{BatchSize: cfg.BatchSize, Shuffle: true, Seed: cfg.Seed,
		Epoch: epoch, DropLast: true, Norm: data.Normalization{Mean: r.s.meta.Mean, Std: r.s.meta.Std},
		PadTo: cfg.PadTo, Augment: data.Augment{CropPad: cfg.CropPad, Flip: cfg.Flip}, Workers: cfg.Workers})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var lossSum, correct float64
	skip := r.state.StepInEpoch
	for r.step < r.total {
		batch, ok := it.Next()
		if !ok {
			es.exhausted = true
			break
		}
		if skip > 0 { // resumed inside this epoch: these batches were already trained on
			skip--
			continue
		}
		es.LR = r.sched.At(r.step)
		t0 := time.Now()
		xt, yt := xTensor(batch), tensors.FromFlatDataAndDimensions(batch.Y, len(batch.Y))
		outs, err := r.trainExec.Exec(xt, yt, float32(es.LR))
		finalize([]*tensors.Tensor{xt, yt})
		if err != nil {
			return nil, fmt.Errorf("training step %d: %w", r.step, err)
		}
		loss := float64(tensors.ToScalar[float32](outs[0]))
		c := float64(tensors.ToScalar[float32](outs[1]))
		finalize(outs)
		dt := time.Since(t0)
		if r.step > 0 || epoch > 0 { // the very first step includes compilation
			es.train += dt
			r.trainImages += batch.N
			r.trainTime += dt
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return nil, fmt.Errorf("training diverged at step %d (loss %v, lr %g); lower the learning rate", r.step, loss, es.LR)
		}
		r.step++
		r.state.StepInEpoch++
		lossSum += loss * float64(batch.N)
		correct += c
		es.seen += batch.N
		if r.bar != nil {
			ips := 0.0
			if es.train > 0 {
				ips = float64(es.seen) / es.train.Seconds()
			}
			r.bar.Describe(fmt.Sprintf("epoch %d/%d loss %.3f acc %.3f %4.0f img/s", epoch+1, cfg.Epochs,
				lossSum/float64(es.seen), correct/float64(es.seen), ips))
			_ = r.bar.Set64(r.step)
		}
		if cfg.CheckpointEvery > 0 && time.Since(r.lastSave) >= cfg.CheckpointEvery {
			if err := r.save(); err != nil {
				return nil, err
			}
			r.lastSave = time.Now()
		}
		if ctx.Err() != nil {
			break
		}
	}
	if es.seen > 0 {
		es.TrainLoss, es.TrainAcc = lossSum/float64(es.seen), correct/float64(es.seen)
	}
	return es, nil
}

// endEpoch validates, records the epoch in the run state, saves, keeps the
// best checkpoint and writes metrics.csv and curves.png.
func (r *fitRun) endEpoch(ctx context.Context, epoch int, es *epochStats) (err error) {
	cfg := &r.cfg
	stats := es.EpochStats
	stats.Epoch, stats.Step, stats.ValLoss, stats.ValAcc = epoch+1, r.step, math.NaN(), math.NaN()
	if es.train > 0 {
		stats.ImagesPerSec = float64(es.seen) / es.train.Seconds()
	}
	if r.valSet != nil {
		if stats.ValLoss, stats.ValAcc, _, err = r.s.evalSet(ctx, r.evalExec, r.valSet, cfg.BatchSize, cfg.Workers); err != nil {
			return err
		}
	}
	stats.Seconds = time.Since(es.start).Seconds()
	if es.exhausted || r.step >= r.stepsPerEpoch*int64(epoch+1) {
		r.state.EpochsDone, r.state.StepInEpoch = epoch+1, 0
	} // else stopped by MaxSteps inside the epoch: a longer resumed run finishes it
	improved := r.valSet != nil && stats.ValAcc > r.state.BestValAcc
	if improved {
		r.state.BestValAcc, r.state.BestEpoch = stats.ValAcc, epoch+1
	}
	if err := r.save(); err != nil {
		return err
	}
	r.lastSave = time.Now()
	if cfg.Dir != "" {
		if improved || r.valSet == nil {
			if err := copyLatestTo(r.ckpt, filepath.Join(cfg.Dir, BestDir)); err != nil {
				return err
			}
		}
		if err := appendCSV(filepath.Join(cfg.Dir, "metrics.csv"), stats); err != nil {
			return err
		}
		if err := PlotCurves(filepath.Join(cfg.Dir, "metrics.csv"), filepath.Join(cfg.Dir, "curves.png")); err != nil {
			r.logf("plot failed", "err", err)
		}
	}
	r.res.Epochs = append(r.res.Epochs, stats)
	r.logf("epoch", "epoch", stats.Epoch, "train_loss", round(stats.TrainLoss), "train_acc", round(stats.TrainAcc),
		"val_loss", round(stats.ValLoss), "val_acc", round(stats.ValAcc), "img_per_s", math.Round(stats.ImagesPerSec),
		"lr", stats.LR)
	return nil
}

// finish scores the final weights on the test set and completes the result.
func (r *fitRun) finish(ctx context.Context) (*Result, error) {
	if r.bar != nil {
		_ = r.bar.Finish()
	}
	res := r.res
	res.Steps, res.BestEpoch, res.BestValAcc = r.step, r.state.BestEpoch, r.state.BestValAcc
	if r.trainTime > 0 {
		res.ImagesPerSec = float64(r.trainImages) / r.trainTime.Seconds()
	}
	if r.testSet != nil {
		var err error
		if _, res.TestAcc, _, err = r.s.evalSet(ctx, r.evalExec, r.testSet, r.cfg.BatchSize, r.cfg.Workers); err != nil {
			return nil, err
		}
		r.logf("test", "acc", round(res.TestAcc), "images", r.testSet.Len())
	}
	return res, nil
}

func lenOf(d *data.Dataset) int {
	if d == nil {
		return 0
	}
	return d.Len()
}

func round(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// openRun attaches a checkpoint handler for cfg.Dir, loading the run to resume (its model
// description and progress replace meta and state) or refusing to overwrite one.
func openRun(ctx *gctx.Context, cfg Config, meta *ModelMeta, state *RunState) (*checkpoints.Handler, error) {
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("run directory: %w", err)
	}
	existing, _ := filepath.Glob(filepath.Join(cfg.Dir, "checkpoint-*.json"))
	if len(existing) > 0 && !cfg.Resume {
		return nil, fmt.Errorf("run directory %s already holds %d checkpoints; resume it (--resume) or choose an empty directory",
			cfg.Dir, len(existing))
	}
	h, err := checkpoints.Build(ctx).Dir(cfg.Dir).Keep(cfg.KeepCheckpoints).Immediate().Done()
	if err != nil {
		return nil, fmt.Errorf("checkpoints in %s: %w", cfg.Dir, err)
	}
	if len(existing) == 0 {
		return h, nil
	}
	var saved ModelMeta
	found, err := getJSONParam(ctx, metaParam, &saved)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("run directory %s: checkpoint has no %q parameter (not written by shortcut-train)", cfg.Dir, metaParam)
	}
	if saved.Arch != meta.Arch || saved.BaseWidth != meta.BaseWidth || saved.Channels != meta.Channels ||
		len(saved.Classes) != len(meta.Classes) || saved.Height != meta.Height || saved.Width != meta.Width {
		return nil, fmt.Errorf("run directory %s holds %s (width %d, %dx%dx%d, %d classes) but the configuration asks for "+
			"%s (width %d, %dx%dx%d, %d classes)", cfg.Dir, saved.Arch, saved.BaseWidth, saved.Height, saved.Width,
			saved.Channels, len(saved.Classes), meta.Arch, meta.BaseWidth, meta.Height, meta.Width, meta.Channels,
			len(meta.Classes))
	}
	*meta = saved // keeps the normalization the weights were trained with
	if _, err := getJSONParam(ctx, stateParam, state); err != nil {
		return nil, err
	}
	if state.Seed != cfg.Seed {
		return nil, fmt.Errorf("run directory %s was trained with seed %d (it fixes the validation split); resume with the same seed, not %d",
			cfg.Dir, state.Seed, cfg.Seed)
	}
	return h, nil
}

// copyLatestTo replaces the checkpoint in dir by the handler's latest one.
func copyLatestTo(h *checkpoints.Handler, dir string) error {
	list, err := h.ListCheckpoints()
	if err != nil || len(list) == 0 {
		return fmt.Errorf("best checkpoint: no checkpoint to copy (%v)", err)
	}
	latest := list[len(list)-1]
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, suffix := range []string{checkpoints.JsonNameSuffix, checkpoints.BinDataSuffix} {
		if err := copyFile(filepath.Join(h.Dir(), latest+suffix), filepath.Join(dir, latest+suffix)); err != nil {
			return fmt.Errorf("best checkpoint: %w", err)
		}
	}
	return nil
}

func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, out.Close()) }()
	_, err = io.Copy(out, in)
	return err
}
