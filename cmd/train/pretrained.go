package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/train"
	"github.com/shortcut-edge/shortcut/train/models"
)

func init() {
	commands["pretrained"] = command{"turn pretrained torchvision or Keras ResNet weights into runnable .tflite models (float, and int8 with --calibration)", runPretrained}
}

// pretrainedArchs are the torchvision ResNets (v1.5: the stride of a bottleneck sits on its 3x3)
// and Keras' ResNet50 (v1, from Keras .h5 weights; train/models/keras.go).
var pretrainedArchs = []string{"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", models.KerasResNet50Arch}

// Calibration defaults: quantize's count for datasets; for an image folder, all of it up to
// this many.
const (
	defaultCalibrationCount = 500
	imagesPrefix            = "images:"
)

// pretrainedOptions is the pretrained command without flag parsing.
type pretrainedOptions struct {
	arch, weights, sha, format string
	classes                    string // imagenet, @FILE, N or names; "" = imagenet for 1000 outputs
	h, w                       int
	mean, std                  []float32
	calibration                string
	calibrationCount           int // 0: the default
	seed                       uint64
	out                        string
	stderr                     io.Writer // download progress and warnings (--weights URL); nil: os.Stderr
}

// calibrationRecord is what the int8 model's report says about its calibration images.
type calibrationRecord struct {
	Source       string   `json:"source"`
	Count        int      `json:"count"`
	DefaultCount bool     `json:"default_count"`
	Available    int      `json:"available"`
	Seed         uint64   `json:"seed"`
	Images       []string `json:"images,omitempty"`  // images: sources, the files used
	Indices      []int    `json:"indices,omitempty"` // datasets, the training-split indices used
}

type pretrainedReport struct {
	Weights     string            `json:"weights"`
	URL         string            `json:"url,omitempty"` // --weights URL: Weights is its file in the cache
	SHA256      string            `json:"sha256"`
	Arch        string            `json:"arch"`
	Calibration calibrationRecord `json:"calibration"`
	Quant       *quant.Report     `json:"quantization"`
}

func runPretrained(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("pretrained")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: shortcut-train pretrained --arch resnet50 --weights FILE|URL --out DIR [--classes imagenet|@labels.txt|N]\n"+
			"    [--input 224] [--sha256 HEX] [--format auto|safetensors|pth|keras-h5] [--calibration SOURCE [--calibration-count N]]\n\n"+
			"Reads torchvision ResNet weights (state_dict names and shapes; .pth or safetensors), or with\n"+
			"--arch keras-resnet50 the Keras 2 .h5 weights of keras.applications.ResNet50 (with its Dense top, a\n"+
			"Dense(N) you added, or the notop file with --classes N: then the classifier is a zero placeholder).\n"+
			"See train/IMPORT.md.\n"+
			"An http(s) URL is downloaded (resumed after a cut) into $XDG_CACHE_HOME/shortcut/weights (default\n"+
			"~/.cache/shortcut/weights) and checked against --sha256 before use; a second run with the same\n"+
			"--sha256 reads the cached file without a request. Without --sha256 the file's SHA-256 is printed.\n"+
			"It writes DIR/model-float.tflite, DIR/labels.txt and, with --calibration, DIR/model-int8.tflite and\n"+
			"DIR/model-int8.report.json. Both models take the normalised NHWC float image (mean/std and image_size\n"+
			"in their metadata) and have two outputs: class scores after SOFTMAX, and the embedding (the pooled\n"+
			"features the classifier reads). DIR must be new or empty; on any error nothing is left in it.\n"+
			"Calibration sources: images:DIR or images:'GLOB' (JPEG/PNG, any folder, no class folders; each image\n"+
			"is resized whole to the input size), or a dataset FORMAT[:DIR] as quantize --data takes (its train split).\n\n")
		fs.PrintDefaults()
	}
	var o pretrainedOptions
	fs.StringVar(&o.arch, "arch", "", "architecture: "+strings.Join(pretrainedArchs, ", ")+" (torchvision's, and Keras' ResNet50)")
	fs.StringVar(&o.weights, "weights", "", "weights file (.pth or safetensors with torchvision's names), or its http(s) URL (downloaded into the cache)")
	fs.StringVar(&o.sha, "sha256", "", "expected SHA-256 of the weights file (hex); a mismatch is an error. Strongly recommended with a URL")
	fs.StringVar(&o.format, "format", train.FormatAuto, "weights format: auto (from the content), safetensors, pth, keras-h5 (--arch keras-resnet50)")
	fs.StringVar(&o.classes, "classes", "", "class names: imagenet (the 1,000 ImageNet names), @FILE (one a line), N (named 0..N-1) or a,b,c; default imagenet when the classifier has 1000 outputs, else 0..N-1")
	input := fs.String("input", "224", "network input size H or H,W")
	mean := fs.String("mean", "", "input mean per channel on the 0..1 scale (default for 3 channels: ImageNet 0.485,0.456,0.406; keras-resnet50: Keras' caffe mean, 123.68,116.779,103.939 / 255)")
	std := fs.String("std", "", "input std per channel (default for 3 channels: ImageNet 0.229,0.224,0.225; keras-resnet50: 1/255)")
	fs.StringVar(&o.calibration, "calibration", "", "calibration images for the int8 model: images:DIR|GLOB, or a dataset FORMAT[:DIR]; none: no int8 model")
	fs.IntVar(&o.calibrationCount, "calibration-count", 0, fmt.Sprintf("calibration images to use (at least %d); default %d, or all of an images: source up to %d", quant.RecommendedMinSamples, defaultCalibrationCount, defaultCalibrationCount))
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the calibration draw")
	fs.StringVar(&o.out, "out", "", "output directory (new or empty)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags only; see -h)", fs.Arg(0))
	}
	var err error
	if o.h, o.w, err = parseHW(*input); err != nil {
		return err
	}
	mv, err1 := parseFloat32s("mean", *mean)
	sv, err2 := parseFloat32s("std", *std)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	o.mean, o.std = mv, sv
	sum, err := pretrained(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, sum)
	return nil
}

// checkPretrainedOptions refuses what cannot work before any file is read.
func checkPretrainedOptions(o pretrainedOptions) error {
	switch {
	case o.arch == "":
		return fmt.Errorf("--arch is required: %s", strings.Join(pretrainedArchs, ", "))
	case !slices.Contains(pretrainedArchs, strings.ToLower(o.arch)):
		return fmt.Errorf("--arch %q: want one of %s", o.arch, strings.Join(pretrainedArchs, ", "))
	case o.weights == "":
		return errors.New("--weights FILE|URL is required")
	case o.format != train.FormatAuto && o.format != "" && o.format != train.FormatPTH && o.format != train.FormatSafetensors && o.format != train.FormatKerasH5:
		return fmt.Errorf("--format %q: want auto, safetensors, pth or keras-h5", o.format)
	case o.format == train.FormatKerasH5 && !strings.EqualFold(o.arch, models.KerasResNet50Arch):
		return fmt.Errorf("--format keras-h5 goes with --arch %s (Keras' ResNet50), not %s", models.KerasResNet50Arch, o.arch)
	case strings.EqualFold(o.arch, models.KerasResNet50Arch) && (o.format == train.FormatPTH || o.format == train.FormatSafetensors):
		return fmt.Errorf("--arch %s reads Keras .h5 weights (--format auto or keras-h5), not %s", models.KerasResNet50Arch, o.format)
	case o.out == "":
		return errors.New("--out DIR is required")
	case o.calibrationCount < 0:
		return fmt.Errorf("--calibration-count %d must not be negative", o.calibrationCount)
	case o.calibrationCount > 0 && o.calibration == "":
		return errors.New("--calibration-count needs --calibration SOURCE")
	}
	if o.sha != "" {
		if b, err := hex.DecodeString(o.sha); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("--sha256 %q: want 64 hex digits", o.sha)
		}
	}
	if entries, err := os.ReadDir(o.out); err == nil && len(entries) > 0 {
		return fmt.Errorf("--out %s already holds %d entries (%s, ...); give a new or empty directory", o.out, len(entries), entries[0].Name())
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("--out: %w", err)
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--weights: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("--weights %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// pretrained builds the models in a hidden folder next to o.out and renames it into place only
// when everything is written, so a failure leaves nothing in o.out. It returns what to print.
func pretrained(ctx context.Context, o pretrainedOptions) (string, error) {
	if err := checkPretrainedOptions(o); err != nil {
		return "", err
	}
	arch := strings.ToLower(o.arch)
	weights, url := o.weights, ""
	var digest string
	var err error
	if isURL(o.weights) {
		stderr := o.stderr
		if stderr == nil {
			stderr = os.Stderr
		}
		url = o.weights
		weights, digest, err = fetchWeights(ctx, o, stderr)
	} else {
		digest, err = fileSHA256(o.weights)
	}
	if err != nil {
		return "", err
	}
	if o.sha != "" && !strings.EqualFold(o.sha, digest) {
		return "", fmt.Errorf("--weights %s: SHA-256 is %s, --sha256 says %s; the file is not the one expected (re-download it)", o.weights, digest, strings.ToLower(o.sha))
	}
	var classes []string
	if strings.EqualFold(o.classes, "imagenet") {
		classes = train.ImageNetClasses()
	} else if classes, err = parseClasses(o.classes); err != nil {
		return "", err
	}
	out := filepath.Clean(o.out)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", fmt.Errorf("--out: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+".partial-")
	if err != nil {
		return "", fmt.Errorf("--out: %w", err)
	}
	defer os.RemoveAll(tmp) // gone already after the rename; cleans up after an error
	exportDir := filepath.Join(tmp, "export")
	sum, _, err := train.ExportWeights(train.ImportOptions{Path: weights, Format: o.format, Arch: arch, Height: o.h, Width: o.w,
		Classes: classes, Mean: o.mean, Std: o.std}, exportDir)
	if err != nil {
		return "", err
	}
	e, err := quant.ReadExport(exportDir)
	if err != nil {
		return "", err
	}
	if o.classes == "" && len(e.Classes) == 1000 {
		// The classifier reads ImageNet's 1,000 classes: name them.
		e.Classes = train.ImageNetClasses()
		e.Model.Meta.Labels = e.Classes
	}
	e.Model.Description = fmt.Sprintf("%s from %s (sha256 %s), %dx%d", arch, filepath.Base(o.weights), digest[:16], o.h, o.w)
	var b strings.Builder
	floatPath := filepath.Join(tmp, "model-float.tflite")
	if err := e.Model.WriteFile(floatPath); err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "read %d tensors of %s (%s, sha256 %s) as %s, input %dx%dx%d, %d classes\n", sum.Tensors, o.weights, sum.Format, digest,
		arch, o.h, o.w, sum.Meta.Channels, len(e.Classes))
	for _, n := range sum.Notes {
		fmt.Fprintf(&b, "NOTE: %s\n", n)
	}
	files := []string{"model-float.tflite", "labels.txt"}
	if o.calibration != "" {
		samples, rec, err := pretrainedCalibration(ctx, e, o)
		if err != nil {
			return "", err
		}
		res, err := quant.RunSamples(e.Model, samples, quant.Options{MinSamples: quant.RecommendedMinSamples})
		if err != nil {
			return "", fmt.Errorf("quantizing %s: %w", arch, err)
		}
		res.Model.Description = e.Model.Description + ", int8"
		if err := res.Model.WriteFile(filepath.Join(tmp, "model-int8.tflite")); err != nil {
			return "", err
		}
		rep := pretrainedReport{Weights: weights, URL: url, SHA256: digest, Arch: arch, Calibration: rec, Quant: res.Report}
		if err := writeEvalJSON(filepath.Join(tmp, "model-int8.report.json"), rep); err != nil {
			return "", err
		}
		printQuantReport(&b, res.Report, false)
		files = append(files, "model-int8.tflite", "model-int8.report.json")
	}
	if err := os.WriteFile(filepath.Join(tmp, "labels.txt"), []byte(strings.Join(e.Classes, "\n")+"\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.RemoveAll(exportDir); err != nil {
		return "", err
	}
	// An empty --out (checked above) may exist: rename cannot replace it.
	if err := os.Remove(out); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("--out %s: %w (it must be new or empty)", out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("--out: %w", err)
	}
	for _, f := range files {
		fmt.Fprintf(&b, "wrote %s\n", filepath.Join(out, f))
	}
	return b.String(), nil
}
