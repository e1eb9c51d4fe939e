package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shortcut-edge/shortcut/agent/head"
	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
	"github.com/shortcut-edge/shortcut/resnet/modelio"
	"github.com/shortcut-edge/shortcut/train/data"
)

func init() {
	commands["head"] = command{"teach a model the classes of an image folder as the agent does (its head trainer) and write one int8 .tflite", runHead}
}

const folderPrefix = "folder:"

// headCalibrationImages bounds the images that quantize a float base model's
// output (the backbone's activation ranges); the head's logits range always
// comes from every embedding.
const headCalibrationImages = 256

type headOptions struct {
	model, data, mode, out string
	validation             float64
	seed                   uint64
	l2                     float64
	maxIterations          int
	minExamples            int
	workers                int
}

func runHead(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("head")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: shortcut-train head --model base.tflite --data folder:DIR [--mode extend|replace] --out mine.tflite\n\n"+
			"computes the embedding (output 1) of every image in DIR/<class>/*.{jpg,jpeg,png} with our runtime, trains\n"+
			"a softmax head on them with the agent's trainer (agent/head), holding out a validation split, prints\n"+
			"per-class accuracy and the confusion matrix of that split, and writes one int8 .tflite (backbone + head)\n"+
			"with the labels in its metadata. Images are resized whole to the model's input (or its image_size,\n"+
			"centred with a black border) and normalized with its mean/std.\n\n")
		fs.PrintDefaults()
	}
	var o headOptions
	fs.StringVar(&o.model, "model", "", "base .tflite (int8 or float) with an embedding output (output 1)")
	fs.StringVar(&o.data, "data", "", "folder:DIR, one subfolder of JPEG/PNG images per class (the subfolder names are the labels)")
	fs.StringVar(&o.mode, "mode", "replace", "extend: keep the base model's classes and add the folder's; replace: exactly the folder's classes")
	fs.StringVar(&o.out, "out", "", "the .tflite to write")
	fs.Float64Var(&o.validation, "validation", 0.2, "fraction of each class held out to measure accuracy (0 holds out none; at most 0.5)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the train/validation split")
	fs.Float64Var(&o.l2, "l2", 0, "L2 penalty in logit units towards the base rows (0: the trainer's default 1e-3; negative: none)")
	fs.IntVar(&o.maxIterations, "max-iterations", 0, "L-BFGS iterations at most (0: the trainer's default 200)")
	fs.IntVar(&o.minExamples, "min-examples", 0, "images a class needs to be trained rather than imprinted (0: the trainer's default 5)")
	fs.IntVar(&o.workers, "workers", 0, "embedding workers, one interpreter each (0: one per CPU)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; every input is a flag (see -h)", fs.Arg(0))
	}
	return trainHead(ctx, o, stdout)
}

// headClass is one class folder of the data: its label and image files.
type headClass struct {
	label string
	files []string
}

func checkHeadOptions(o headOptions) (head.Mode, string, error) {
	var mode head.Mode
	switch o.mode {
	case "extend":
		mode = head.Extend
	case "replace":
		mode = head.Replace
	default:
		return mode, "", fmt.Errorf("--mode %q: want extend or replace", o.mode)
	}
	dir, ok := strings.CutPrefix(o.data, folderPrefix)
	switch {
	case o.model == "":
		return mode, "", errors.New("--model base.tflite is required")
	case o.data == "":
		return mode, "", errors.New("--data folder:DIR is required")
	case !ok || dir == "":
		return mode, "", fmt.Errorf("--data %q: want folder:DIR (one subfolder of images per class)", o.data)
	case o.out == "":
		return mode, "", errors.New("--out mine.tflite is required")
	case o.validation < 0 || o.validation > 0.5:
		return mode, "", fmt.Errorf("--validation %v is out of range [0, 0.5]", o.validation)
	case o.workers < 0:
		return mode, "", fmt.Errorf("--workers %d must not be negative", o.workers)
	}
	if st, err := os.Stat(filepath.Dir(o.out)); err != nil || !st.IsDir() {
		return mode, "", fmt.Errorf("--out %s: the directory %s does not exist; create it first", o.out, filepath.Dir(o.out))
	}
	return mode, dir, nil
}

// headFolder lists DIR/<class>/ images: classes in sorted order, each with at
// least one image and a name the agent accepts as a label.
func headFolder(dir string) ([]headClass, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	var classes []headClass
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := head.CheckLabel(e.Name()); err != nil {
			return nil, fmt.Errorf("--data: class folder %s: %w", filepath.Join(dir, e.Name()), err)
		}
		files, err := data.ImageFiles(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("--data: class %q: %w; remove the folder or add images", e.Name(), err)
		}
		classes = append(classes, headClass{label: e.Name(), files: files})
	}
	if len(classes) == 0 {
		return nil, fmt.Errorf("--data: %s has no class subfolders (layout: %s/<class>/<image>.jpg)", dir, dir)
	}
	return classes, nil // ReadDir sorts by name
}

// imagePreparer turns an image file into the model's input as training saw
// it: resized whole to the content area (the metadata's image_size, else the
// whole input), centred, the border black, normalized with the metadata's
// mean and std.
type imagePreparer struct {
	in         modelio.Input
	norm       data.Normalization
	black      []float32 // a normalized black pixel
	cH, cW     int
	offY, offX int
}

func newImagePreparer(in modelio.Input) (imagePreparer, error) {
	if in.Channels != 1 && in.Channels != 3 {
		return imagePreparer{}, fmt.Errorf("the model takes %d channels; images give 1 (grey) or 3 (RGB)", in.Channels)
	}
	if !in.Normalized() {
		return imagePreparer{}, fmt.Errorf("the model's metadata has no input normalization (mean %v, std %v), so its images cannot be prepared; write it with shortcut-train quantize or pretrained", in.Mean, in.Std)
	}
	p := imagePreparer{in: in, cH: in.Height, cW: in.Width}
	for k := range in.Channels {
		p.norm.Mean = append(p.norm.Mean, in.Mean[min(k, len(in.Mean)-1)])
		p.norm.Std = append(p.norm.Std, in.Std[min(k, len(in.Std)-1)])
		p.black = append(p.black, -p.norm.Mean[k]/p.norm.Std[k])
	}
	if in.ContentHeight > 0 && in.ContentWidth > 0 {
		p.cH, p.cW = in.ContentHeight, in.ContentWidth
		p.offY, p.offX = (in.Height-p.cH)/2, (in.Width-p.cW)/2
	}
	return p, nil
}

// prepare writes the input for path into dst (len H*W*C).
func (p imagePreparer) prepare(dst []float32, path string) error {
	x, err := data.ReadImageInput(path, p.cH, p.cW, p.norm)
	if err != nil {
		return err
	}
	if p.cH == p.in.Height && p.cW == p.in.Width {
		copy(dst, x)
		return nil
	}
	c, w := p.in.Channels, p.in.Width
	for i := 0; i < len(dst); i += c {
		copy(dst[i:i+c], p.black)
	}
	for y := range p.cH {
		copy(dst[((y+p.offY)*w+p.offX)*c:], x[y*p.cW*c:(y+1)*p.cW*c])
	}
	return nil
}

// embedAll computes the embedding of every file with workers interpreters
// running side by side (each single-threaded: images, not layers, are split
// across the cores). The first failure stops the others.
func embedAll(ctx context.Context, m *resnet.Model, emb modelio.Output, prep imagePreparer, files []string, workers int) ([][]float32, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(files))
	first, err := interp.New(m, interp.Options{Threads: 1})
	if err != nil {
		return nil, fmt.Errorf("preparing the model: %w", err)
	}
	its := []*interp.Interpreter{first}
	for len(its) < workers {
		its = append(its, first.Clone())
	}
	defer func() {
		for _, it := range its {
			it.Close()
		}
	}()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	out := make([][]float32, len(files))
	next := make(chan int)
	var wg sync.WaitGroup
	for _, it := range its {
		wg.Go(func() {
			in := make([]float32, prep.in.Elements())
			for i := range next {
				if err := prep.prepare(in, files[i]); err != nil {
					cancel(err)
					continue
				}
				err := it.Input(0).SetFloat32(in)
				if err == nil {
					err = it.Invoke()
				}
				if err == nil {
					out[i], err = it.Output(emb.Index).Floats()
				}
				if err != nil {
					cancel(fmt.Errorf("image %s: %w", files[i], err))
				}
			}
		})
	}
feed:
	for i := range files {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

func trainHead(ctx context.Context, o headOptions, stdout io.Writer) error {
	mode, dir, err := checkHeadOptions(o)
	if err != nil {
		return err
	}
	m, err := resnet.LoadFile(o.model)
	if err != nil {
		return fmt.Errorf("--model: %w", err)
	}
	if len(m.Outputs) == 1 {
		// A classifier from elsewhere: the features its last
		// FULLY_CONNECTED reads serve as the embedding (the agent does the
		// same), and the written model keeps them as output 1.
		how, err := modelio.ExposeEmbedding(m)
		if err != nil {
			return fmt.Errorf("--model %s has no embedding output (output 1), which the head is trained on: %v", o.model, err)
		}
		fmt.Fprintf(stdout, "embedding: %s\n", how)
	}
	mio, err := modelio.Describe(m)
	if err != nil {
		return fmt.Errorf("--model %s: %w", o.model, err)
	}
	if mio.Embedding == nil {
		return fmt.Errorf("--model %s has no embedding output (output 1 with at least 2 values), which the head is trained on; export it with its embedding (train/EXPORT.md)", o.model)
	}
	prep, err := newImagePreparer(mio.Input)
	if err != nil {
		return fmt.Errorf("--model %s: %w", o.model, err)
	}
	var base *head.Head
	if b, err := head.FromModel(m); err == nil {
		base = b
	} else if mode == head.Extend {
		return fmt.Errorf("--mode extend needs the base model's classifier: %w", err)
	}
	classes, err := headFolder(dir)
	if err != nil {
		return err
	}
	var files []string
	for _, c := range classes {
		files = append(files, c.files...)
	}

	start := time.Now()
	embs, err := embedAll(ctx, m, *mio.Embedding, prep, files, o.workers)
	if err != nil {
		return fmt.Errorf("embeddings: %w", err)
	}
	embedTime := time.Since(start)
	fmt.Fprintf(stdout, "embeddings: %d images, %d classes, width %d in %.2f s (%.1f ms/image)\n",
		len(files), len(classes), mio.Embedding.Len, embedTime.Seconds(), 1000*embedTime.Seconds()/float64(len(files)))

	ex := head.Examples{Dim: mio.Embedding.Len}
	k := 0
	for _, c := range classes {
		ex.Labels = append(ex.Labels, head.LabelExamples{Label: c.label, Embeddings: embs[k : k+len(c.files)]})
		k += len(c.files)
	}
	validation := o.validation
	if validation == 0 {
		validation = -1 // the trainer's "none"
	}
	tr, err := head.NewTrainer(base, ex, head.Options{Mode: mode, L2: o.l2, MaxIterations: o.maxIterations,
		Validation: validation, MinExamples: o.minExamples, Seed: o.seed})
	if err != nil {
		return err
	}
	h, err := tr.Train(ctx)
	if err != nil {
		return err
	}
	printHeadReport(stdout, h)

	out, err := exportHead(m, h, embs, files, prep)
	if err != nil {
		return err
	}
	b, err := out.Marshal()
	if err != nil {
		return fmt.Errorf("writing the model: %w", err)
	}
	if err := checkHeadModel(b, h); err != nil {
		return err
	}
	if err := writeFileAtomic(o.out, b); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes, int8, labels %s) in %.2f s\n", o.out, len(b), strings.Join(h.Labels(), ", "), time.Since(start).Seconds())
	return nil
}

// exportHead puts h into m as the agent does (head.Export, the logits range
// from the embeddings). A float base is then quantized to int8, calibrated on
// up to headCalibrationImages of the folder's images.
func exportHead(m *resnet.Model, h *head.Head, embs [][]float32, files []string, prep imagePreparer) (*resnet.Model, error) {
	out, err := head.Export(m, h, embs)
	if err != nil {
		return nil, err
	}
	if !isFloatModel(out) {
		return out, nil
	}
	// Streamed: one decoded image at a time, however many the folder has.
	step := max(1, len(files)/headCalibrationImages)
	x := make([]float32, prep.in.Elements())
	src := quant.SampleFunc{N: (len(files) + step - 1) / step, Make: func(i int) (quant.Sample, error) {
		if err := prep.prepare(x, files[i*step]); err != nil {
			return nil, err
		}
		return quant.Sample{x}, nil
	}}
	r, err := quant.RunSamples(out, src, quant.Options{})
	if err != nil {
		return nil, fmt.Errorf("quantizing the float model with its new head: %w", err)
	}
	q := r.Model
	return q, nil
}

// isFloatModel reports whether m computes in float: no operator reads int8
// weights.
func isFloatModel(m *resnet.Model) bool {
	for _, op := range m.Operators {
		for _, t := range op.Inputs {
			if t >= 0 && len(m.Tensors[t].Data) != 0 && m.Tensors[t].Type == resnet.Int8 {
				return false
			}
		}
	}
	return true
}

// checkHeadModel loads the bytes about to be written in our runtime, as the
// agent will, and checks they describe h's classes.
func checkHeadModel(b []byte, h *head.Head) error {
	back, err := resnet.Load(b)
	if err != nil {
		return fmt.Errorf("the written model does not load back: %w", err)
	}
	mio, err := modelio.Describe(back)
	if err != nil {
		return fmt.Errorf("the written model breaks the model contract: %w", err)
	}
	if !slices.Equal(mio.Labels, h.Labels()) || mio.Embedding == nil {
		return fmt.Errorf("the written model has labels %q and embedding %v; want the head's %q and an embedding", mio.Labels, mio.Embedding != nil, h.Labels())
	}
	it, err := interp.New(back, interp.Options{Threads: 1})
	if err != nil {
		return fmt.Errorf("the written model does not run in our runtime: %w", err)
	}
	defer it.Close()
	if err := it.Invoke(); err != nil {
		return fmt.Errorf("the written model does not run in our runtime: %w", err)
	}
	return nil
}

// writeFileAtomic writes b to path through a temporary file in the same
// directory, so that a failure leaves nothing (or the old file) behind.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("--out %s: %w", path, err)
	}
	return nil
}

// printHeadReport prints what the trainer reports: the held-out accuracy per
// class and the confusion matrix (rows: true class, columns: predicted).
func printHeadReport(w io.Writer, h *head.Head) {
	r := h.Report()
	fmt.Fprintf(w, "head: %s, %d classes, %d training images, %d L-BFGS iterations, loss %.4f, %.0f ms\n",
		r.Mode, r.Classes, r.TrainExamples, r.Iterations, r.Loss, r.Milliseconds)
	if len(r.Imprinted) > 0 {
		fmt.Fprintf(w, "imprinted (too few images to train): %s\n", strings.Join(r.Imprinted, ", "))
	}
	if r.ValidationExamples == 0 {
		fmt.Fprintln(w, "validation: none held out")
		return
	}
	fmt.Fprintf(w, "validation accuracy: %.4f (%d images held out, seed %d)\n", r.ValidationAccuracy, r.ValidationExamples, r.Seed)
	labels := h.Labels()
	width := 5
	for _, l := range labels {
		width = max(width, len(l))
	}
	for _, la := range r.PerLabel {
		fmt.Fprintf(w, "  %-*s  %.4f  (%d/%d)\n", width, la.Label, la.Accuracy, la.Correct, la.Total)
	}
	fmt.Fprintln(w, "confusion matrix (rows: true class, columns: predicted class, numbered as the rows):")
	fmt.Fprintf(w, "  %*s", width+4, "")
	for j := range labels {
		fmt.Fprintf(w, " %5d", j)
	}
	fmt.Fprintln(w)
	for i, row := range r.Confusion {
		n := 0
		for _, v := range row {
			n += v
		}
		if n == 0 {
			continue // a base class without held-out images
		}
		fmt.Fprintf(w, "  %2d  %-*s", i, width, labels[i])
		for _, v := range row {
			fmt.Fprintf(w, " %5d", v)
		}
		fmt.Fprintln(w)
	}
}
