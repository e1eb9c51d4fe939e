package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/shortcut-edge/shortcut/internal/npy"
	"github.com/shortcut-edge/shortcut/internal/witness"
	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
	"github.com/shortcut-edge/shortcut/resnet/modelio"
	"github.com/shortcut-edge/shortcut/train"
	"github.com/shortcut-edge/shortcut/train/data"
)

func init() {
	commands["eval"] = command{"score a run directory, a float export or a .tflite on labelled images (with --float: int8 vs float, per-layer SQNR)", runEval}
}

// inputSpec says how dataset images become model inputs: the input section
// of an export (train/EXPORT.md), or what a .tflite's shape and metadata
// imply.
type inputSpec struct {
	imageH, imageW int // dataset image size; 0 when unknown (a bare .tflite)
	channels       int
	padTo          int
	h, w           int // network input
	mean, std      []float32
	classes        []string
}

func specFromExport(e *quant.Export) inputSpec {
	in := e.Input
	return inputSpec{imageH: in.ImageH, imageW: in.ImageW, channels: in.Shape[3], padTo: in.PadTo,
		h: in.Shape[1], w: in.Shape[2], mean: in.Mean, std: in.Std, classes: e.Classes}
}

// specFromModel reads a .tflite's input shape and normalization metadata
// (modelio's contract).
func specFromModel(m *resnet.Model, path string) (inputSpec, error) {
	io, err := modelio.Describe(m)
	if err != nil {
		return inputSpec{}, fmt.Errorf("model %s: %w", path, err)
	}
	in := io.Input
	spec := inputSpec{channels: in.Channels, h: in.Height, w: in.Width, mean: in.Mean, std: in.Std, classes: m.Meta.Labels}
	if len(spec.std) != in.Channels || len(spec.mean) != in.Channels {
		return inputSpec{}, fmt.Errorf("model %s has no input normalization for its %d channels in its metadata (mean %v, std %v); pass --float EXPORT_DIR, whose input section says how images are prepared",
			path, in.Channels, spec.mean, spec.std)
	}
	if m.Meta.HasImageSize() {
		// The model records its training images' size (quantize writes it
		// for exports trained with pad_to): no guessing in loadSplit.
		ih, iw := m.Meta.ImageSize[0], m.Meta.ImageSize[1]
		padTo, ok := padToFor(ih, iw, spec.h, spec.w)
		if !ok {
			return inputSpec{}, fmt.Errorf("model %s: its metadata places %dx%d images in its %dx%d input, which centred padding to one square size (pad_to) cannot give; pass --float EXPORT_DIR",
				path, ih, iw, spec.h, spec.w)
		}
		spec.imageH, spec.imageW, spec.padTo = ih, iw, padTo
	}
	return spec, nil
}

// padToFor is the pad_to that turns ih x iw images into an h x w input as
// data.BatchOptions.PadTo does (each side becomes max(side, pad_to)): 0
// when they already fill it; ok is false when no pad_to can.
func padToFor(ih, iw, h, w int) (padTo int, ok bool) {
	switch {
	case ih < h:
		padTo = h
	case iw < w:
		padTo = w
	}
	return padTo, max(ih, padTo) == h && max(iw, padTo) == w
}

// loadSplit reads one split of a data source and checks it against the
// model's input: channels, image size (or, for a bare .tflite, a size that
// centred zero padding turns into the input size, as training's pad_to
// does) and class count.
func loadSplit(source, split string, downsample int, spec *inputSpec) (*data.Dataset, error) {
	src, err := data.ParseSource(source)
	if err != nil {
		return nil, err
	}
	if src.Format == data.FormatFolder {
		src.Height, src.Width, src.Grey = spec.imageH, spec.imageW, spec.channels == 1
		if spec.imageH == 0 {
			src.Height, src.Width = spec.h, spec.w
		}
	}
	d, err := data.Load(src, split)
	if err != nil {
		return nil, err
	}
	if downsample > 1 {
		if d, err = d.Downsample(downsample); err != nil {
			return nil, err
		}
	}
	if d.Len() == 0 {
		return nil, fmt.Errorf("the %s split of %s has no images", split, source)
	}
	if d.Channels != spec.channels {
		return nil, fmt.Errorf("the images of %s have %d channels, the model takes %d", source, d.Channels, spec.channels)
	}
	switch {
	case spec.imageH > 0:
		if d.Height != spec.imageH || d.Width != spec.imageW {
			return nil, sizeError(source, d, spec.imageH, spec.imageW, downsample)
		}
	case d.Height == spec.h && d.Width == spec.w:
		spec.imageH, spec.imageW = d.Height, d.Width
	case spec.h == spec.w && d.Height <= spec.h && d.Width <= spec.w && d.Height*2 > spec.h:
		// A .tflite without image_size in its metadata (older files, or not
		// written by quantize) does not record pad_to: smaller images are
		// padded, centred, to a square input as training does.
		spec.imageH, spec.imageW, spec.padTo = d.Height, d.Width, spec.h
	default:
		return nil, sizeError(source, d, spec.h, spec.w, downsample)
	}
	if len(spec.classes) > 0 && len(d.Classes) != len(spec.classes) {
		return nil, fmt.Errorf("%s has %d classes (%s), the model %d (%s)", source, len(d.Classes),
			strings.Join(d.Classes, ", "), len(spec.classes), strings.Join(spec.classes, ", "))
	}
	return d, nil
}

func sizeError(source string, d *data.Dataset, h, w, downsample int) error {
	hint := ""
	if f := d.Height / h; f > 1 && d.Height == f*h && d.Width == f*w {
		hint = fmt.Sprintf(" (the model was trained on images shrunk %dx: add --downsample %d)", f*downsample, f*downsample)
	}
	return fmt.Errorf("the images of %s are %dx%d, the model takes %dx%d images%s", source, d.Height, d.Width, h, w, hint)
}

// forEachImage streams the dataset through the model's preprocessing: the
// same code path (data.Iterate: centred zero padding to pad_to, then
// (pixel/255 - mean)/std) that training and the export's reference used.
func forEachImage(ctx context.Context, d *data.Dataset, spec inputSpec, f func(i int, x []float32, label int) error) error {
	it, err := data.Iterate(ctx, d, data.BatchOptions{BatchSize: 64, Norm: data.Normalization{Mean: spec.mean, Std: spec.std},
		PadTo: spec.padTo, Workers: 1})
	if err != nil {
		return err
	}
	defer it.Close()
	for {
		b, ok := it.Next()
		if !ok {
			return ctx.Err()
		}
		if b.H != spec.h || b.W != spec.w || b.C != spec.channels {
			return fmt.Errorf("preprocessed images are %dx%dx%d, the model takes %dx%dx%d", b.H, b.W, b.C, spec.h, spec.w, spec.channels)
		}
		n := b.H * b.W * b.C
		for r := range b.N {
			if err := f(b.ImageIndex[r], b.X[r*n:(r+1)*n], int(b.Y[r])); err != nil {
				return err
			}
		}
	}
}

// evalScore accumulates accuracy and the confusion matrix of one model.
type evalScore struct {
	Accuracy  float64   `json:"accuracy"`
	Correct   int       `json:"correct"`
	PerClass  []float64 `json:"per_class"`
	Confusion [][]int   `json:"confusion"` // [true][predicted]
}

func newEvalScore(classes int) *evalScore {
	s := &evalScore{Confusion: make([][]int, classes)}
	for i := range s.Confusion {
		s.Confusion[i] = make([]int, classes)
	}
	return s
}

func (s *evalScore) add(label, pred int) {
	if label >= 0 && label < len(s.Confusion) && pred >= 0 && pred < len(s.Confusion) {
		s.Confusion[label][pred]++
	}
	if label == pred {
		s.Correct++
	}
}

func (s *evalScore) finish(n int) {
	s.Accuracy = float64(s.Correct) / float64(max(n, 1))
	s.PerClass = make([]float64, len(s.Confusion))
	for i, row := range s.Confusion {
		total := 0
		for _, c := range row {
			total += c
		}
		s.PerClass[i] = math.NaN()
		if total > 0 {
			s.PerClass[i] = float64(row[i]) / float64(total)
		}
	}
}

// evalReport is what eval measures; written as JSON with --json.
type evalReport struct {
	Model   string     `json:"model"`
	Kind    string     `json:"kind"` // tflite, export
	Float   string     `json:"float,omitempty"`
	Data    string     `json:"data"`
	Images  int        `json:"images"`
	Classes []string   `json:"classes"`
	Score   *evalScore `json:"score"`
	// With a float reference:
	FloatScore *evalScore        `json:"float_score,omitempty"`
	Agreement  float64           `json:"agreement,omitempty"` // top-1 of the model = top-1 of the float reference
	Layers     []quant.LayerSQNR `json:"-"`
	LayerJSON  []layerJSON       `json:"layers,omitempty"`
	// With --witness:
	Witness *witnessReport `json:"witness,omitempty"`
}

type layerJSON struct {
	Name   string  `json:"name"`
	Op     string  `json:"op"`
	SQNRdB float64 `json:"sqnr_db"` // 999 for exact
	Note   string  `json:"note,omitempty"`
}

type witnessReport struct {
	Engine    string  `json:"engine"`
	Images    int     `json:"images"`
	Accuracy  float64 `json:"accuracy"`
	Agreement float64 `json:"agreement"` // TFLite top-1 = our top-1 (first index on ties)
	// AgreementTies also counts as agreeing an image where either side's
	// top-1 is tied, at the int8 output's resolution, with the other's: int8
	// SOFTMAX scores come in steps of 1/256, so near-equal classes tie.
	AgreementTies float64 `json:"agreement_ties"`
	Disagree      []int   `json:"disagree,omitempty"`
	// MaxDiff is the largest |ours - TFLite| of an output 0 element, in units
	// of the output's int8 step (0 when exact).
	MaxDiffLSB float64 `json:"max_diff_lsb"`
	// MaxGapLSB is, over the disagreements, the largest lead our top-1 had
	// over TFLite's top-1 in our scores, in LSB: small means near-ties that
	// a 1-LSB difference inside the network can flip.
	MaxGapLSB float64 `json:"max_gap_lsb"`
}

// evalInput is one evaluation: a model, an optional float reference (its
// int8 twin's source), the images and how to prepare them.
type evalInput struct {
	name      string
	kind      string
	model     *resnet.Model
	modelPath string // the .tflite file, for the witness
	float     *resnet.Model
	floatName string
	spec      inputSpec
	test      *data.Dataset
	dataName  string
	witness   bool
	// witnessLimit > 0 runs only the first witnessLimit images in TFLite.
	witnessLimit int
	engine       witness.Engine
	tmp          string // scratch directory for witness files
	arithmetic   string // interp.Options.Arithmetic for the int8 model
	threads      int    // images scored at once (each worker with its own interpreters)
}

// evaluate runs the model (and the float reference) on every image of the
// test set, and with witness the .tflite in a real TFLite too.
func evaluate(ctx context.Context, in evalInput) (*evalReport, error) {
	k := len(in.test.Classes)
	rep := &evalReport{Model: in.name, Kind: in.kind, Float: in.floatName, Data: in.dataName, Classes: in.test.Classes, Score: newEvalScore(k)}
	ours := make([]int, in.test.Len())
	var oursScores [][]float32 // kept for the witness comparison
	if in.witness {
		oursScores = make([][]float32, in.test.Len())
	}
	workers := max(1, in.threads)
	// Each worker has its own interpreters (the float reference too); images
	// are shared out and the counts and per-layer statistics summed.
	cmps := make([]*quant.Comparison, workers)
	its := make([]*interp.Interpreter, workers)
	defer func() {
		for w := range workers {
			if cmps[w] != nil {
				cmps[w].Close()
			}
			if its[w] != nil {
				its[w].Close()
			}
		}
	}()
	for w := range workers {
		var err error
		if in.float != nil {
			if cmps[w], err = quant.NewComparison(in.float, in.model, in.arithmetic); err != nil {
				return nil, err
			}
		} else if its[w], err = interp.New(in.model, interp.Options{Threads: 1, Arithmetic: in.arithmetic}); err != nil {
			return nil, fmt.Errorf("model %s: %w", in.name, err)
		}
	}
	if in.float != nil {
		rep.FloatScore = newEvalScore(k)
	}
	type job struct {
		i, label int
		x        []float32
	}
	type result struct {
		i, label, floatTop1 int
		out                 []float32 // a copy
		err                 error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan job, 2*workers)
	results := make(chan result, 2*workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if ctx.Err() != nil {
					continue // drain: the producer stops on the cancelled context
				}
				r := result{i: j.i, label: j.label, floatTop1: -1}
				r.out, r.floatTop1, r.err = evalOne(cmps[w], its[w], j.x)
				if r.err == nil && in.witness && (in.witnessLimit <= 0 || j.i < in.witnessLimit) {
					r.err = writeModelInput(in.model, filepath.Join(in.tmp, fmt.Sprintf("in%06d.npy", j.i)), j.x)
				}
				results <- r
			}
		}()
	}
	var produceErr error
	go func() {
		produceErr = forEachImage(ctx, in.test, in.spec, func(i int, x []float32, label int) error {
			select {
			case jobs <- job{i: i, label: label, x: slices.Clone(x)}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		close(jobs)
		wg.Wait()
		close(results)
	}()
	agree, n := 0, 0
	var err error
	for r := range results {
		if err == nil && r.err == nil && len(r.out) != k {
			r.err = fmt.Errorf("model %s gives %d scores, the data has %d classes", in.name, len(r.out), k)
		}
		if r.err != nil {
			if err == nil {
				err = r.err
				cancel()
			}
			continue
		}
		if err != nil {
			continue
		}
		ours[r.i] = modelio.Argmax(r.out)
		rep.Score.add(r.label, ours[r.i])
		if rep.FloatScore != nil {
			rep.FloatScore.add(r.label, r.floatTop1)
			if ours[r.i] == r.floatTop1 {
				agree++
			}
		}
		if in.witness && (in.witnessLimit <= 0 || r.i < in.witnessLimit) {
			oursScores[r.i] = r.out
		}
		n++
	}
	if err == nil {
		err = produceErr
	}
	if err != nil {
		return nil, err
	}
	var cmp *quant.Comparison
	if in.float != nil {
		cmp = cmps[0]
		for _, c := range cmps[1:] {
			cmp.Merge(c)
		}
	}
	rep.Images = n
	rep.Score.finish(n)
	if cmp != nil {
		rep.FloatScore.finish(n)
		rep.Agreement = float64(agree) / float64(max(n, 1))
		rep.Layers = cmp.Layers()
		for _, l := range rep.Layers {
			db := l.SQNR
			if math.IsInf(db, 1) {
				db = 999
			}
			rep.LayerJSON = append(rep.LayerJSON, layerJSON{Name: l.Name, Op: l.Op, SQNRdB: db, Note: l.Note})
		}
	}
	if in.witness {
		w, err := runWitness(ctx, in, ours, oursScores)
		if err != nil {
			return nil, err
		}
		rep.Witness = w
	}
	return rep, nil
}

// evalOne runs one image: through the float/int8 comparison when there is
// one (returning the float model's top-1 too), else through it alone. The
// scores returned are a copy.
func evalOne(cmp *quant.Comparison, it *interp.Interpreter, x []float32) (out []float32, floatTop1 int, err error) {
	if cmp != nil {
		f, q, err := cmp.Run(quant.Sample{x})
		if err != nil {
			return nil, -1, err
		}
		return slices.Clone(q), modelio.Argmax(f), nil
	}
	if err := it.Input(0).SetFloat32(x); err != nil {
		return nil, -1, err
	}
	if err := it.Invoke(); err != nil {
		return nil, -1, err
	}
	return quant.Output0(it), -1, nil
}

// writeModelInput writes one image as the .npy the model's input takes.
func writeModelInput(m *resnet.Model, path string, x []float32) error {
	t := &m.Tensors[m.Inputs[0]]
	if t.Type == resnet.Int8 {
		q := make([]int8, len(x))
		if !t.Quant.QuantizeInt8(q, x) {
			return fmt.Errorf("input %q is INT8 without per-tensor quantization", t.Name)
		}
		return npy.Write(path, t.Shape, q)
	}
	return npy.Write(path, t.Shape, x)
}

// outputStep is the int8 step behind output 0 (1 for a float model).
func outputStep(m *resnet.Model) float64 {
	o := m.Outputs[0]
	if m.Tensors[o].Type == resnet.Int8 {
		return float64(m.Tensors[o].Quant.Scale[0])
	}
	for _, op := range m.Operators {
		if op.Op == resnet.OpDequantize && op.Outputs[0] == o {
			return float64(m.Tensors[op.Inputs[0]].Quant.Scale[0])
		}
	}
	return 1
}

// runWitness runs the .tflite on every image in one node process (one job
// per image, the model file as written) and compares its top-1 with ours.
func runWitness(ctx context.Context, in evalInput, ours []int, oursScores [][]float32) (*witnessReport, error) {
	if in.modelPath == "" {
		return nil, errors.New("--witness runs a .tflite file in a real TFLite; give --model M.tflite")
	}
	if err := witness.Available(); err != nil {
		return nil, err
	}
	var jobs []witness.Job
	var idx []int
	for i := range ours {
		if oursScores[i] == nil {
			continue
		}
		jobs = append(jobs, witness.Job{Model: in.modelPath, Engine: in.engine,
			Inputs:  []string{filepath.Join(in.tmp, fmt.Sprintf("in%06d.npy", i))},
			Outputs: []string{filepath.Join(in.tmp, fmt.Sprintf("out%06d.npy", i))}})
		idx = append(idx, i)
	}
	// One node process per chunk of jobs: LiteRT.js has been seen to stop
	// answering after thousands of models in one process, and a process that
	// fails is tried once more before giving up. Up to in.threads processes
	// run at once, each on its own chunk; results keep the jobs' order.
	procs := max(1, in.threads)
	chunk := min(1000, max(1, (len(jobs)+procs-1)/procs))
	var parts [][]witness.Job
	for start := 0; start < len(jobs); start += chunk {
		parts = append(parts, jobs[start:min(start+chunk, len(jobs))])
	}
	partRes := make([][]witness.Result, len(parts))
	partErr := make([]error, len(parts))
	sem := make(chan struct{}, procs)
	var wg sync.WaitGroup
	for k, part := range parts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r, err := witness.Run(ctx, part)
			if err != nil && ctx.Err() == nil {
				r, err = witness.Run(ctx, part)
			}
			partRes[k], partErr[k] = r, err
		}()
	}
	wg.Wait()
	var res []witness.Result
	for k := range parts {
		if partErr[k] != nil {
			return nil, partErr[k]
		}
		res = append(res, partRes[k]...)
	}
	w := &witnessReport{Engine: string(in.engine), Images: len(jobs)}
	if w.Engine == "" {
		w.Engine = string(witness.LiteRT)
	}
	step := outputStep(in.model)
	correct, agree, agreeTies := 0, 0, 0
	for j, r := range res {
		i := idx[j]
		if r.Err != nil {
			return nil, fmt.Errorf("TFLite on image %d: %w", i, r.Err)
		}
		_, v, err := npy.Read(jobs[j].Outputs[0])
		if err != nil {
			return nil, fmt.Errorf("TFLite output for image %d: %w", i, err)
		}
		theirs, err := dequantizedOutput(in.model, v)
		if err != nil {
			return nil, err
		}
		if len(theirs) != len(oursScores[i]) {
			return nil, fmt.Errorf("TFLite gives %d scores for image %d, ours %d", len(theirs), i, len(oursScores[i]))
		}
		for k := range theirs {
			w.MaxDiffLSB = math.Max(w.MaxDiffLSB, math.Abs(float64(theirs[k]-oursScores[i][k]))/step)
		}
		top, o := modelio.Argmax(theirs), oursScores[i]
		switch {
		case top == ours[i]:
			agree++
			agreeTies++
		case o[top] == o[ours[i]] || theirs[ours[i]] == theirs[top]:
			agreeTies++
			fallthrough
		default:
			w.Disagree = append(w.Disagree, i)
			w.MaxGapLSB = math.Max(w.MaxGapLSB, float64(o[ours[i]]-o[top])/step)
		}
		if top == int(in.test.Labels[i]) {
			correct++
		}
	}
	w.Accuracy = float64(correct) / float64(max(len(jobs), 1))
	w.Agreement = float64(agree) / float64(max(len(jobs), 1))
	w.AgreementTies = float64(agreeTies) / float64(max(len(jobs), 1))
	return w, nil
}

// dequantizedOutput turns the witness's output 0 into floats.
func dequantizedOutput(m *resnet.Model, v any) ([]float32, error) {
	switch x := v.(type) {
	case []float32:
		return x, nil
	case []int8:
		out := make([]float32, len(x))
		if !m.Tensors[m.Outputs[0]].Quant.DequantizeInt8(out, x) {
			return nil, fmt.Errorf("output 0 is INT8 without per-tensor quantization")
		}
		return out, nil
	}
	return nil, fmt.Errorf("TFLite output of type %T; want float32 or int8", v)
}

// modelKind tells what a --model path is.
func modelKind(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("--model %s: %w", path, err)
	}
	if !st.IsDir() {
		return "tflite", nil
	}
	if _, err := os.Stat(filepath.Join(path, "model.json")); err == nil {
		return "export", nil
	}
	for _, d := range []string{path, filepath.Join(path, train.BestDir)} {
		if m, _ := filepath.Glob(filepath.Join(d, "checkpoint-*.json")); len(m) > 0 {
			return "run", nil
		}
	}
	return "", fmt.Errorf("--model %s is a directory with neither model.json (an export) nor checkpoint-*.json (a training run)", path)
}

// loadEvalModel reads a .tflite or an export into a model and its input spec.
func loadEvalModel(path, kind string) (*resnet.Model, *inputSpec, error) {
	switch kind {
	case "export":
		e, err := quant.ReadExport(path)
		if err != nil {
			return nil, nil, err
		}
		s := specFromExport(e)
		return e.Model, &s, nil
	case "tflite":
		m, err := resnet.LoadFile(path)
		if err != nil {
			return nil, nil, err
		}
		s, err := specFromModel(m, path)
		if err != nil {
			return nil, nil, err
		}
		return m, &s, nil
	}
	return nil, nil, fmt.Errorf("%s: cannot load a %s as a model", path, kind)
}

func runEval(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("eval")
	model := fs.String("model", "", "what to score: a training run directory, an export directory (float) or a .tflite")
	float := fs.String("float", "", "the float model the --model .tflite was quantized from (an export directory or a float .tflite): adds its accuracy, top-1 agreement and per-layer SQNR")
	source := fs.String("data", "fashion-mnist", "labelled images: FORMAT[:DIR] (fashion-mnist, mnist, cifar10, cifar100, folder)")
	split := fs.String("split", "test", "which split to score: test or train")
	downsample := fs.Int("downsample", 1, "shrink dataset images by this integer factor first (for models trained on shrunk images)")
	limit := fs.Int("limit", 0, "score only the first N images (0: all)")
	useWitness := fs.Bool("witness", false, "also run the .tflite in a real TFLite (LiteRT.js, or tfjs-tflite for int8 inputs) and report top-1 agreement with ours")
	witnessLimit := fs.Int("witness-limit", 0, "with --witness: run only the first N images in TFLite (0: all)")
	witnessEngine := fs.String("witness-engine", "", "with --witness: litert (LiteRT.js, XNNPACK kernels) or tfjs (tfjs-tflite); default: litert, tfjs for int8 inputs or outputs")
	layers := fs.Int("layers", -1, "print the per-layer SQNR table: -1 all layers, 0 none, N the N worst")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file")
	arithmetic := fs.String("arithmetic", interp.ArithmeticReference, arithmeticHelp)
	threads := fs.Int("threads", runtime.NumCPU(), "images scored at once, each with its own interpreters (results do not depend on it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" {
		return errors.New("--model is required (a run directory, an export directory or a .tflite)")
	}
	if *limit < 0 || *downsample < 1 {
		return fmt.Errorf("--limit %d must be >= 0 and --downsample %d >= 1", *limit, *downsample)
	}
	kind, err := modelKind(*model)
	if err != nil {
		return err
	}
	if kind == "run" {
		if *float != "" || *useWitness {
			return errors.New("--float and --witness apply to an export or a .tflite, not to a training run directory")
		}
		return evalRun(ctx, *model, *source, *split, *downsample, *limit, stdout)
	}
	m, spec, err := loadEvalModel(*model, kind)
	if err != nil {
		return err
	}
	if *threads < 1 {
		return fmt.Errorf("--threads %d: want at least 1", *threads)
	}
	in := evalInput{name: *model, kind: kind, model: m, spec: *spec, dataName: *source, arithmetic: *arithmetic, threads: *threads}
	if kind == "tflite" {
		in.modelPath = *model
	}
	if *float != "" {
		fk, err := modelKind(*float)
		if err != nil {
			return fmt.Errorf("--float: %w", err)
		}
		fm, fspec, err := loadEvalModel(*float, fk)
		if err != nil {
			return fmt.Errorf("--float: %w", err)
		}
		if fspec.h != spec.h || fspec.w != spec.w || fspec.channels != spec.channels {
			return fmt.Errorf("--float %s takes %dx%dx%d inputs, --model %s %dx%dx%d", *float, fspec.h, fspec.w, fspec.channels, *model, spec.h, spec.w, spec.channels)
		}
		if fk == "export" {
			in.spec = *fspec // the export's input section is the authority on preprocessing
		}
		in.float, in.floatName = fm, *float
	}
	if *useWitness {
		if kind != "tflite" {
			return errors.New("--witness runs a .tflite in a real TFLite; --model is an export")
		}
		int8IO := m.Tensors[m.Inputs[0]].Type == resnet.Int8 || m.Tensors[m.Outputs[0]].Type == resnet.Int8
		switch *witnessEngine {
		case "":
			if int8IO {
				in.engine = witness.TFJS // LiteRT.js refuses int8 inputs and outputs
			}
		case string(witness.TFJS):
			in.engine = witness.TFJS
		case string(witness.LiteRT):
			if int8IO {
				return errors.New("--witness-engine litert: LiteRT.js refuses int8 inputs and outputs; use tfjs or a model quantized without --int8-io")
			}
			in.engine = witness.LiteRT
		default:
			return fmt.Errorf("--witness-engine %q: want litert or tfjs", *witnessEngine)
		}
		tmp, err := os.MkdirTemp("", "shortcut-eval-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		in.tmp, in.witness, in.witnessLimit = tmp, true, *witnessLimit
	}
	d, err := loadSplit(*source, *split, *downsample, &in.spec)
	if err != nil {
		return err
	}
	in.test = d.Head(*limit)
	rep, err := evaluate(ctx, in)
	if err != nil {
		return err
	}
	printEval(stdout, rep, *layers)
	if *jsonOut != "" {
		return writeEvalJSON(*jsonOut, rep)
	}
	return nil
}

func writeEvalJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// evalRun scores a training run's checkpoint with train.Eval.
func evalRun(ctx context.Context, dir, source, split string, downsample, limit int, stdout io.Writer) error {
	src, err := data.ParseSource(source)
	if err != nil {
		return err
	}
	d, err := data.Load(src, split)
	if err != nil {
		return err
	}
	if downsample > 1 {
		if d, err = d.Downsample(downsample); err != nil {
			return err
		}
	}
	res, err := train.Eval(ctx, train.EvalOptions{Dir: dir, Dataset: d, Limit: limit})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "model %s (training run, GoMLX)  data %s/%s\n", dir, source, split)
	fmt.Fprint(stdout, res.Format())
	return nil
}

func evalPct(v float64) string { return fmt.Sprintf("%.2f %%", 100*v) }

func printEval(w io.Writer, r *evalReport, layers int) {
	fmt.Fprintf(w, "model %s (%s)  data %s  images %d\n", r.Model, r.Kind, r.Data, r.Images)
	if r.FloatScore != nil {
		fmt.Fprintf(w, "accuracy  model %s  float %s (%s)  difference %+.2f points\n", evalPct(r.Score.Accuracy), evalPct(r.FloatScore.Accuracy),
			r.Float, 100*(r.Score.Accuracy-r.FloatScore.Accuracy))
		fmt.Fprintf(w, "top-1 agreement with float: %s\n", evalPct(r.Agreement))
	} else {
		fmt.Fprintf(w, "accuracy  %s\n", evalPct(r.Score.Accuracy))
	}
	if wr := r.Witness; wr != nil {
		fmt.Fprintf(w, "TFLite (%s): accuracy %s, top-1 agreement with our runtime %s (%d images; %s counting int8 score ties as agreement), largest score difference %.1f LSB",
			wr.Engine, evalPct(wr.Accuracy), evalPct(wr.Agreement), wr.Images, evalPct(wr.AgreementTies), wr.MaxDiffLSB)
		if len(wr.Disagree) > 0 {
			fmt.Fprintf(w, "; where they disagree, our top-1 led TFLite's by at most %.0f LSB", wr.MaxGapLSB)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "per-class accuracy")
	for i, c := range r.Classes {
		fmt.Fprintf(w, "  %-16s %7s", c, evalPct(r.Score.PerClass[i]))
		if r.FloatScore != nil {
			fmt.Fprintf(w, "  (float %s)", evalPct(r.FloatScore.PerClass[i]))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "confusion matrix (rows: true class, columns: predicted)")
	for _, row := range r.Score.Confusion {
		for _, c := range row {
			fmt.Fprintf(w, "%6d", c)
		}
		fmt.Fprintln(w)
	}
	if len(r.Layers) > 0 && layers != 0 {
		ls := append([]quant.LayerSQNR(nil), r.Layers...)
		title := "per-layer SQNR, float vs int8 (graph order; higher is better, < 20 dB deserves a look)"
		if layers > 0 && layers < len(ls) {
			sortBySQNR(ls)
			ls = ls[:layers]
			title = fmt.Sprintf("the %d layers with the lowest SQNR, float vs int8", layers)
		}
		fmt.Fprintln(w, title)
		for _, l := range ls {
			fmt.Fprintf(w, "  %-40s %-16s %s", l.Name, l.Op, formatDB(l.SQNR))
			if l.Note != "" {
				fmt.Fprintf(w, "  (%s)", l.Note)
			}
			fmt.Fprintln(w)
		}
	}
}

func formatDB(db float64) string {
	if math.IsInf(db, 1) {
		return "exact"
	}
	return fmt.Sprintf("%6.1f dB", db)
}

func sortBySQNR(ls []quant.LayerSQNR) {
	slices.SortStableFunc(ls, func(a, b quant.LayerSQNR) int { return cmp.Compare(a.SQNR, b.SQNR) })
}

// drawCalibration picks n distinct indices of [0, total) with a seeded shuffle.
func drawCalibration(total, n int, seed uint64) []int {
	p := rand.New(rand.NewPCG(seed, 0xca1b)).Perm(total)
	return p[:n]
}
