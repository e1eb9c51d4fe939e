package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/train/data"
	"github.com/shortcut-edge/shortcut/train/evaluate"
)

// Calibration sources for quantize and pretrained. Both stream: quant reads
// one sample at a time (quant.Samples), as often as its options need, and
// keeps only range statistics, so a source holds one decoded image (a folder
// of JPEGs) or one batch of 64 (a dataset split) at a time, never the whole
// set as floats.

// datasetSamples is a dataset's images (a subset drawn for calibration) as
// the export's input section prepares them: evaluate.ForEachImage's path,
// the same as training's.
type datasetSamples struct {
	ctx  context.Context
	d    *data.Dataset
	spec evaluate.Spec
}

func (s datasetSamples) Len() int { return s.d.Len() }

func (s datasetSamples) Each(fn func(i int, x quant.Sample) error) error {
	return evaluate.ForEachImage(s.ctx, s.d, s.spec, func(i int, x []float32, _ int) error {
		return fn(i, quant.Sample{x})
	})
}

// imageSamples is a list of image files, each decoded, resized whole to the
// input and normalized when its turn comes (data.ReadImageInput).
type imageSamples struct {
	ctx   context.Context
	files []string
	h, w  int
	norm  data.Normalization
}

func (s imageSamples) Len() int { return len(s.files) }

func (s imageSamples) Each(fn func(i int, x quant.Sample) error) error {
	for i, p := range s.files {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		x, err := data.ReadImageInput(p, s.h, s.w, s.norm)
		if err != nil {
			return fmt.Errorf("--calibration: %w", err)
		}
		if err := fn(i, quant.Sample{x}); err != nil {
			return err
		}
	}
	return nil
}

// calibrationSamples draws n images of the training split (a seeded random
// choice) and streams them prepared as the export's input section says.
func calibrationSamples(ctx context.Context, d *data.Dataset, spec evaluate.Spec, n int, seed uint64) (quant.Samples, error) {
	if n < quant.RecommendedMinSamples {
		return nil, fmt.Errorf("--calibration %d: at least %d images are needed for ranges that do not depend on which images were drawn (a few hundred is typical)",
			n, quant.RecommendedMinSamples)
	}
	if d.Len() < n {
		return nil, fmt.Errorf("--calibration %d: the training split of %s has only %d images; ask for at most %d (and at least %d)",
			n, d.Name, d.Len(), d.Len(), quant.RecommendedMinSamples)
	}
	sub := d.Subset(d.Name+"/calibration", evaluate.DrawCalibration(d.Len(), n, seed))
	return datasetSamples{ctx: ctx, d: sub, spec: spec}, nil
}

// quantizeExport is the quantize command without flag parsing: calibrate the
// export's float model on n images of train and quantize it.
func quantizeExport(ctx context.Context, e *quant.Export, train *data.Dataset, n int, seed uint64, o quant.Options) (*quant.Result, error) {
	samples, err := calibrationSamples(ctx, train, evaluate.SpecFromExport(e), n, seed)
	if err != nil {
		return nil, err
	}
	o.MinSamples = quant.RecommendedMinSamples
	return quant.RunSamples(e.Model, samples, o)
}

// pretrainedCalibration chooses the calibration inputs: the files of an images: source (each
// read when calibration reaches it), or a seeded draw from a dataset's training split.
func pretrainedCalibration(ctx context.Context, e *quant.Export, o pretrainedOptions) (quant.Samples, calibrationRecord, error) {
	rec := calibrationRecord{Source: o.calibration, Count: o.calibrationCount, DefaultCount: o.calibrationCount == 0, Seed: o.seed}
	if dir, ok := strings.CutPrefix(o.calibration, imagesPrefix); ok {
		files, err := data.ImageFiles(dir)
		if err != nil {
			return nil, rec, fmt.Errorf("--calibration: %w", err)
		}
		rec.Available = len(files)
		if rec.DefaultCount {
			rec.Count = min(len(files), defaultCalibrationCount)
		}
		if rec.Count > len(files) {
			return nil, rec, fmt.Errorf("--calibration-count %d: %s holds only %d images", rec.Count, o.calibration, len(files))
		}
		if rec.Count < quant.RecommendedMinSamples {
			return nil, rec, fmt.Errorf("--calibration %s: %d images, at least %d are needed for ranges that do not depend on which images were drawn (a few hundred is typical)",
				o.calibration, rec.Count, quant.RecommendedMinSamples)
		}
		idx := evaluate.DrawCalibration(len(files), rec.Count, o.seed)
		slices.Sort(idx)
		for _, i := range idx {
			rec.Images = append(rec.Images, files[i])
		}
		in := e.Input
		return imageSamples{ctx: ctx, files: rec.Images, h: in.Shape[1], w: in.Shape[2], norm: data.Normalization{Mean: in.Mean, Std: in.Std}}, rec, nil
	}
	spec := evaluate.SpecFromExport(e)
	spec.Classes = nil // any labelled dataset calibrates; its classes need not be the model's
	d, err := evaluate.LoadSplit(o.calibration, "train", 1, &spec)
	if err != nil {
		return nil, rec, fmt.Errorf("--calibration: %w", err)
	}
	rec.Available = d.Len()
	if rec.DefaultCount {
		rec.Count = defaultCalibrationCount
	}
	samples, err := calibrationSamples(ctx, d, spec, rec.Count, o.seed)
	if err != nil {
		return nil, rec, err
	}
	rec.Indices = evaluate.DrawCalibration(d.Len(), rec.Count, o.seed)
	return samples, rec, nil
}
