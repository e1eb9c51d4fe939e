package train

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	gctx "github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/checkpoints"

	"github.com/shortcut-edge/shortcut/train/data"
)

// EvalOptions select a checkpoint and the images to score.
type EvalOptions struct {
	Backend, Ops string
	// Dir is a run directory (its best/ checkpoint is used when present, unless Latest) or a
	// directory holding checkpoint files.
	Dir    string
	Latest bool
	// Data ("FORMAT:DIR", test split) or Dataset.
	Data      string
	Dataset   *data.Dataset
	BatchSize int // 0: 128
	Limit     int // score only the first Limit images (0: all)
	Workers   int
}

// EvalResult is the score of a model on a labelled set.
type EvalResult struct {
	Images    int
	Loss      float64
	Accuracy  float64
	Classes   []string
	Confusion [][]int   // [true][predicted] counts
	PerClass  []float64 // accuracy (recall) of each true class; NaN for classes absent from the set
	Meta      ModelMeta
	Step      int64
}

// loadModel opens the checkpoint under dir and returns a session ready to evaluate.
func loadModel(backendSpec, ops, dir string, latest bool) (*session, error) {
	ckptDir := dir
	if !latest {
		if st, err := os.Stat(filepath.Join(dir, BestDir)); err == nil && st.IsDir() {
			ckptDir = filepath.Join(dir, BestDir)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(ckptDir, "checkpoint-*.json")); len(files) == 0 {
		return nil, fmt.Errorf("no checkpoint (checkpoint-*.json) in %s; give the directory a training run wrote", ckptDir)
	}
	b, o, err := openBackend(backendSpec, ops)
	if err != nil {
		return nil, err
	}
	s := &session{backend: b, ops: o, ctx: gctx.New()}
	if _, err := checkpoints.Build(s.ctx).Dir(ckptDir).Immediate().Done(); err != nil {
		return nil, fmt.Errorf("loading checkpoint %s: %w", ckptDir, err)
	}
	found, err := getJSONParam(s.ctx, metaParam, &s.meta)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("checkpoint %s has no model description (%q); it was not written by shortcut-train", ckptDir, metaParam)
	}
	if s.net, err = s.meta.Net(); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", ckptDir, err)
	}
	s.ctx = s.ctx.Reuse() // evaluation must find every variable in the checkpoint, not create new ones
	return s, nil
}

// Eval scores a trained model: accuracy, mean loss, confusion matrix and per-class accuracy.
func Eval(ctx context.Context, opt EvalOptions) (res *EvalResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("evaluating %s: %v", opt.Dir, r)
		}
	}()
	s, err := loadModel(opt.Backend, opt.Ops, opt.Dir, opt.Latest)
	if err != nil {
		return nil, err
	}
	d := opt.Dataset
	if d == nil {
		if opt.Data == "" {
			return nil, fmt.Errorf("eval: no data given (e.g. fashion-mnist:%s)", data.FashionMNISTDir)
		}
		src, err := data.ParseSource(opt.Data)
		if err != nil {
			return nil, err
		}
		src.Height, src.Width, src.Grey = s.meta.DataHeight, s.meta.DataWidth, s.meta.Channels == 1
		if d, err = data.Load(src, "test"); err != nil {
			return nil, err
		}
	}
	d = d.Head(opt.Limit)
	if d.Height != s.meta.DataHeight || d.Width != s.meta.DataWidth || d.Channels != s.meta.Channels {
		return nil, fmt.Errorf("eval: images of %s are %dx%dx%d but the model was trained on %dx%dx%d", d.Name,
			d.Height, d.Width, d.Channels, s.meta.DataHeight, s.meta.DataWidth, s.meta.Channels)
	}
	if len(d.Classes) != len(s.meta.Classes) {
		return nil, fmt.Errorf("eval: %s has %d classes (%s), the model %d (%s)", d.Name, len(d.Classes),
			strings.Join(d.Classes, ", "), len(s.meta.Classes), strings.Join(s.meta.Classes, ", "))
	}
	exec, err := s.evalExec()
	if err != nil {
		return nil, err
	}
	batch := opt.BatchSize
	if batch <= 0 {
		batch = 128
	}
	loss, acc, conf, err := s.evalSet(ctx, exec, d, batch, opt.Workers)
	if err != nil {
		return nil, err
	}
	res = &EvalResult{Images: d.Len(), Loss: loss, Accuracy: acc, Classes: s.meta.Classes, Confusion: conf, Meta: s.meta}
	for i, row := range conf {
		n := 0
		for _, c := range row {
			n += c
		}
		pc := nan()
		if n > 0 {
			pc = float64(row[i]) / float64(n)
		}
		res.PerClass = append(res.PerClass, pc)
	}
	return res, nil
}

// Format renders the result as a text report: accuracy, per-class accuracy and the confusion matrix.
func (r *EvalResult) Format() string {
	var b strings.Builder
	fmt.Fprintf(&b, "images %d  accuracy %.4f  loss %.4f  (%s, %dx%dx%d)\n", r.Images, r.Accuracy, r.Loss, r.Meta.Arch,
		r.Meta.Height, r.Meta.Width, r.Meta.Channels)
	for i, c := range r.Classes {
		fmt.Fprintf(&b, "  %-16s %.4f\n", c, r.PerClass[i])
	}
	b.WriteString("confusion (rows: true, columns: predicted)\n")
	for _, row := range r.Confusion {
		for _, c := range row {
			fmt.Fprintf(&b, "%6d", c)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func nan() float64 { return math.NaN() }
