// Package evaluate scores a model on labelled images: a .tflite or a float
// export, optionally against its float reference (accuracy, top-1 agreement,
// per-layer SQNR) and against a real TFLite (the witness), on all cores. It
// returns a Report; `shortcut-train eval` and `quantize` print it.
//
// Images flow dataset -> the model's preprocessing (the same data.Iterate
// path training used: centred zero padding to pad_to, then
// (pixel/255 - mean)/std) -> one interpreter per worker -> the report.
package evaluate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/shortcut-edge/shortcut/internal/npy"
	"github.com/shortcut-edge/shortcut/internal/witness"
	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
	"github.com/shortcut-edge/shortcut/resnet/modelio"
	"github.com/shortcut-edge/shortcut/train/data"
)

// Spec says how dataset images become model inputs: the input section
// of an export (train/EXPORT.md), or what a .tflite's shape and metadata
// imply.
type Spec struct {
	ImageH, ImageW int // dataset image size; 0 when unknown (a bare .tflite)
	Channels       int
	PadTo          int
	H, W           int // network input
	Mean, Std      []float32
	Classes        []string
}

func SpecFromExport(e *quant.Export) Spec {
	in := e.Input
	return Spec{ImageH: in.ImageH, ImageW: in.ImageW, Channels: in.Shape[3], PadTo: in.PadTo,
		H: in.Shape[1], W: in.Shape[2], Mean: in.Mean, Std: in.Std, Classes: e.Classes}
}

// SpecFromModel reads a .tflite's input shape and normalization metadata
// (modelio's contract).
func SpecFromModel(m *resnet.Model, path string) (Spec, error) {
	io, err := modelio.Describe(m)
	if err != nil {
		return Spec{}, fmt.Errorf("model %s: %w", path, err)
	}
	in := io.Input
	spec := Spec{Channels: in.Channels, H: in.Height, W: in.Width, Mean: in.Mean, Std: in.Std, Classes: m.Meta.Labels}
	if len(spec.Std) != in.Channels || len(spec.Mean) != in.Channels {
		return Spec{}, fmt.Errorf("model %s has no input normalization for its %d channels in its metadata (mean %v, std %v); pass --float EXPORT_DIR, whose input section says how images are prepared",
			path, in.Channels, spec.Mean, spec.Std)
	}
	if m.Meta.HasImageSize() {
		// The model records its training images' size (quantize writes it
		// for exports trained with pad_to): no guessing in LoadSplit.
		ih, iw := m.Meta.ImageSize[0], m.Meta.ImageSize[1]
		padTo, ok := PadToFor(ih, iw, spec.H, spec.W)
		if !ok {
			return Spec{}, fmt.Errorf("model %s: its metadata places %dx%d images in its %dx%d input, which centred padding to one square size (pad_to) cannot give; pass --float EXPORT_DIR",
				path, ih, iw, spec.H, spec.W)
		}
		spec.ImageH, spec.ImageW, spec.PadTo = ih, iw, padTo
	}
	return spec, nil
}

// PadToFor is the pad_to that turns ih x iw images into an h x w input as
// data.BatchOptions.PadTo does (each side becomes max(side, pad_to)): 0
// when they already fill it; ok is false when no pad_to can.
func PadToFor(ih, iw, h, w int) (padTo int, ok bool) {
	switch {
	case ih < h:
		padTo = h
	case iw < w:
		padTo = w
	}
	return padTo, max(ih, padTo) == h && max(iw, padTo) == w
}

// LoadSplit reads one split of a data source and checks it against the
// model's input: channels, image size (or, for a bare .tflite, a size that
// centred zero padding turns into the input size, as training's pad_to
// does) and class count.
func LoadSplit(source, split string, downsample int, spec *Spec) (*data.Dataset, error) {
	src, err := data.ParseSource(source)
	if err != nil {
		return nil, err
	}
	if src.Format == data.FormatFolder {
		src.Height, src.Width, src.Grey = spec.ImageH, spec.ImageW, spec.Channels == 1
		if spec.ImageH == 0 {
			src.Height, src.Width = spec.H, spec.W
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
	if d.Channels != spec.Channels {
		return nil, fmt.Errorf("the images of %s have %d channels, the model takes %d", source, d.Channels, spec.Channels)
	}
	switch {
	case spec.ImageH > 0:
		if d.Height != spec.ImageH || d.Width != spec.ImageW {
			return nil, sizeError(source, d, spec.ImageH, spec.ImageW, downsample)
		}
	case d.Height == spec.H && d.Width == spec.W:
		spec.ImageH, spec.ImageW = d.Height, d.Width
	case spec.H == spec.W && d.Height <= spec.H && d.Width <= spec.W && d.Height*2 > spec.H:
		// A .tflite without image_size in its metadata (older files, or not
		// written by quantize) does not record pad_to: smaller images are
		// padded, centred, to a square input as training does.
		spec.ImageH, spec.ImageW, spec.PadTo = d.Height, d.Width, spec.H
	default:
		return nil, sizeError(source, d, spec.H, spec.W, downsample)
	}
	if len(spec.Classes) > 0 && len(d.Classes) != len(spec.Classes) {
		return nil, fmt.Errorf("%s has %d classes (%s), the model %d (%s)", source, len(d.Classes),
			strings.Join(d.Classes, ", "), len(spec.Classes), strings.Join(spec.Classes, ", "))
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

// ForEachImage streams the dataset through the model's preprocessing: the
// same code path (data.Iterate: centred zero padding to pad_to, then
// (pixel/255 - mean)/std) that training and the export's reference used.
func ForEachImage(ctx context.Context, d *data.Dataset, spec Spec, f func(i int, x []float32, label int) error) error {
	it, err := data.Iterate(ctx, d, data.BatchOptions{BatchSize: 64, Norm: data.Normalization{Mean: spec.Mean, Std: spec.Std},
		PadTo: spec.PadTo, Workers: 1})
	if err != nil {
		return err
	}
	defer it.Close()
	for {
		b, ok := it.Next()
		if !ok {
			return ctx.Err()
		}
		if b.H != spec.H || b.W != spec.W || b.C != spec.Channels {
			return fmt.Errorf("preprocessed images are %dx%dx%d, the model takes %dx%dx%d", b.H, b.W, b.C, spec.H, spec.W, spec.Channels)
		}
		n := b.H * b.W * b.C
		for r := range b.N {
			if err := f(b.ImageIndex[r], b.X[r*n:(r+1)*n], int(b.Y[r])); err != nil {
				return err
			}
		}
	}
}

// Score accumulates accuracy and the confusion matrix of one model.
type Score struct {
	Accuracy  float64   `json:"accuracy"`
	Correct   int       `json:"correct"`
	PerClass  []float64 `json:"per_class"`
	Confusion [][]int   `json:"confusion"` // [true][predicted]
}

func newScore(classes int) *Score {
	s := &Score{Confusion: make([][]int, classes)}
	for i := range s.Confusion {
		s.Confusion[i] = make([]int, classes)
	}
	return s
}

func (s *Score) add(label, pred int) {
	if label >= 0 && label < len(s.Confusion) && pred >= 0 && pred < len(s.Confusion) {
		s.Confusion[label][pred]++
	}
	if label == pred {
		s.Correct++
	}
}

func (s *Score) finish(n int) {
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

// Report is what eval measures; written as JSON with --json.
type Report struct {
	Model   string   `json:"model"`
	Kind    string   `json:"kind"` // tflite, export
	Float   string   `json:"float,omitempty"`
	Data    string   `json:"data"`
	Images  int      `json:"images"`
	Classes []string `json:"classes"`
	Score   *Score   `json:"score"`
	// With a float reference:
	FloatScore *Score            `json:"float_score,omitempty"`
	Agreement  float64           `json:"agreement,omitempty"` // top-1 of the model = top-1 of the float reference
	Layers     []quant.LayerSQNR `json:"-"`
	LayerJSON  []LayerJSON       `json:"layers,omitempty"`
	// With --witness:
	Witness *WitnessReport `json:"witness,omitempty"`
}

type LayerJSON struct {
	Name   string  `json:"name"`
	Op     string  `json:"op"`
	SQNRdB float64 `json:"sqnr_db"` // 999 for exact
	Note   string  `json:"note,omitempty"`
}

type WitnessReport struct {
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

// Input is one evaluation: a model, an optional float reference (its
// int8 twin's source), the images and how to prepare them.
type Input struct {
	Name      string
	Kind      string
	Model     *resnet.Model
	ModelPath string // the .tflite file, for the witness
	Float     *resnet.Model
	FloatName string
	Spec      Spec
	Test      *data.Dataset
	DataName  string
	Witness   bool
	// WitnessLimit > 0 runs only the first witnessLimit images in TFLite.
	WitnessLimit int
	Engine       witness.Engine
	Tmp          string // scratch directory for witness files
	Arithmetic   string // interp.Options.Arithmetic for the int8 model
	Threads      int    // images scored at once (each worker with its own interpreters)
}

// Evaluate runs the model (and the float reference) on every image of the
// test set, and with witness the .tflite in a real TFLite too.
func Evaluate(ctx context.Context, in Input) (*Report, error) {
	k := len(in.Test.Classes)
	rep := &Report{Model: in.Name, Kind: in.Kind, Float: in.FloatName, Data: in.DataName, Classes: in.Test.Classes, Score: newScore(k)}
	ours := make([]int, in.Test.Len())
	var oursScores [][]float32 // kept for the witness comparison
	if in.Witness {
		oursScores = make([][]float32, in.Test.Len())
	}
	workers := max(1, in.Threads)
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
		if in.Float != nil {
			if cmps[w], err = quant.NewComparison(in.Float, in.Model, in.Arithmetic); err != nil {
				return nil, err
			}
		} else if its[w], err = interp.New(in.Model, interp.Options{Threads: 1, Arithmetic: in.Arithmetic}); err != nil {
			return nil, fmt.Errorf("model %s: %w", in.Name, err)
		}
	}
	if in.Float != nil {
		rep.FloatScore = newScore(k)
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
				if r.err == nil && in.Witness && (in.WitnessLimit <= 0 || j.i < in.WitnessLimit) {
					r.err = writeModelInput(in.Model, filepath.Join(in.Tmp, fmt.Sprintf("in%06d.npy", j.i)), j.x)
				}
				results <- r
			}
		}()
	}
	var produceErr error
	go func() {
		produceErr = ForEachImage(ctx, in.Test, in.Spec, func(i int, x []float32, label int) error {
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
			r.err = fmt.Errorf("model %s gives %d scores, the data has %d classes", in.Name, len(r.out), k)
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
		if in.Witness && (in.WitnessLimit <= 0 || r.i < in.WitnessLimit) {
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
	if in.Float != nil {
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
			rep.LayerJSON = append(rep.LayerJSON, LayerJSON{Name: l.Name, Op: l.Op, SQNRdB: db, Note: l.Note})
		}
	}
	if in.Witness {
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
func runWitness(ctx context.Context, in Input, ours []int, oursScores [][]float32) (*WitnessReport, error) {
	if in.ModelPath == "" {
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
		jobs = append(jobs, witness.Job{Model: in.ModelPath, Engine: in.Engine,
			Inputs:  []string{filepath.Join(in.Tmp, fmt.Sprintf("in%06d.npy", i))},
			Outputs: []string{filepath.Join(in.Tmp, fmt.Sprintf("out%06d.npy", i))}})
		idx = append(idx, i)
	}
	// One node process per chunk of jobs: LiteRT.js has been seen to stop
	// answering after thousands of models in one process, and a process that
	// fails is tried once more before giving up. Up to in.Threads processes
	// run at once, each on its own chunk; results keep the jobs' order.
	procs := max(1, in.Threads)
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
	w := &WitnessReport{Engine: string(in.Engine), Images: len(jobs)}
	if w.Engine == "" {
		w.Engine = string(witness.LiteRT)
	}
	step := outputStep(in.Model)
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
		theirs, err := dequantizedOutput(in.Model, v)
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
		if top == int(in.Test.Labels[i]) {
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

// LoadModel reads a .tflite or an export into a model and its input spec.
func LoadModel(path, kind string) (*resnet.Model, *Spec, error) {
	switch kind {
	case "export":
		e, err := quant.ReadExport(path)
		if err != nil {
			return nil, nil, err
		}
		s := SpecFromExport(e)
		return e.Model, &s, nil
	case "tflite":
		m, err := resnet.LoadFile(path)
		if err != nil {
			return nil, nil, err
		}
		s, err := SpecFromModel(m, path)
		if err != nil {
			return nil, nil, err
		}
		return m, &s, nil
	}
	return nil, nil, fmt.Errorf("%s: cannot load a %s as a model", path, kind)
}

// DrawCalibration picks n distinct indices of [0, total) with a seeded shuffle.
func DrawCalibration(total, n int, seed uint64) []int {
	p := rand.New(rand.NewPCG(seed, 0xca1b)).Perm(total)
	return p[:n]
}
