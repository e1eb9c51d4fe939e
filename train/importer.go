package train

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	gctx "github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/checkpoints"

	"github.com/shortcut-edge/shortcut/train/h5"
	"github.com/shortcut-edge/shortcut/train/models"
	"github.com/shortcut-edge/shortcut/train/pth"
)

// ImportOptions configure ImportWeights.
type ImportOptions struct {
	// Path of the weights file. Format is FormatAuto ("" too: detected from the file's first
	// bytes), FormatSafetensors or FormatPTH (torch.save's zip, e.g. torchvision's .pth files).
	Path, Format string
	// Arch of models (resnet50, resnet18, resnet34, or a CIFAR resnet<d>/plain<d>). The base
	// width and the input channels are read from conv1.weight.
	Arch string
	// Height, Width of the network input the run will train on (0: 224).
	Height, Width int
	// Classes names the outputs. Empty: fc.weight's row count, named "0", "1", ...
	// If their number differs from fc.weight's rows, NewHead must be set.
	Classes []string
	// NewHead skips fc.weight/fc.bias: the classifier starts from random weights (fine-tuning
	// on a dataset with other classes).
	NewHead bool
	// Mean, Std are the input normalization the weights were trained with, per channel on the
	// 0..1 scale (0 values: torchvision's ImageNet statistics for 3 channels).
	Mean, Std []float32
	// Run is the new run directory (must not hold checkpoints yet).
	Run string
	// Seed recorded for the run: `fit --resume` must use the same (0: 1, fit's default).
	Seed uint64
}

// Weight file formats ImportWeights reads.
const (
	FormatAuto        = "auto"
	FormatSafetensors = "safetensors"
	FormatPTH         = "pth"
)

// DetectWeightsFormat names the format of a weights file from its first bytes: a zip archive
// (what torch.save writes since PyTorch 1.6; its older formats too, which the pth reader
// recognises to say how to convert them) or an 8-byte little-endian header length followed by
// a JSON object (safetensors), or the HDF5 signature (Keras .h5 weights, --arch keras-resnet50).
func DetectWeightsFormat(head []byte) (string, error) {
	switch {
	case pth.Magic(head):
		return FormatPTH, nil
	case len(head) >= 9 && head[8] == '{' && binary.LittleEndian.Uint64(head) >= 2:
		return FormatSafetensors, nil
	case h5.IsHDF5(head):
		return FormatKerasH5, nil
	}
	return "", fmt.Errorf("neither safetensors (an 8-byte header length, then '{'), a torch.save .pth "+
		"(a zip archive, PK\\x03\\x04) nor Keras .h5 (HDF5, \\x89HDF); first bytes % x", head[:min(len(head), 12)])
}

// weightFile is a weights file read for import: its tensors by name, in their stored dtype.
type weightFile struct {
	format  string
	tensors map[string]SafeTensor
}

func (w *weightFile) names() []string {
	out := make([]string, 0, len(w.tensors))
	for n := range w.tensors {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// readWeights reads a safetensors or .pth file; format "" or "auto" detects which.
func readWeights(path, format string) (*weightFile, error) {
	switch format {
	case "", FormatAuto, FormatSafetensors, FormatPTH:
	case FormatKerasH5:
		return nil, fmt.Errorf("import %s: Keras .h5 weights are read onto Keras' own ResNet50 only: use `shortcut-train pretrained --arch %s`", path, models.KerasResNet50Arch)
	default:
		return nil, fmt.Errorf("import: format %q is not supported; use auto, safetensors or pth (keras-h5 with --arch %s)", format, models.KerasResNet50Arch)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	detected, detectErr := DetectWeightsFormat(b)
	switch {
	case format == "" || format == FormatAuto:
		if detectErr != nil {
			return nil, fmt.Errorf("import %s: %w", path, detectErr)
		}
		format = detected
	case detectErr == nil && detected == FormatKerasH5:
		format = detected
	case detectErr == nil && detected != format:
		return nil, fmt.Errorf("import %s: --format %s, but the file is %s", path, format, map[string]string{
			FormatPTH: "a torch.save zip (.pth); use --format pth or auto", FormatSafetensors: "safetensors; use --format safetensors or auto"}[detected])
	}
	if format == FormatKerasH5 {
		// Keras' layout has its own network: ExportWeights with --arch keras-resnet50.
		return nil, fmt.Errorf("import %s: the file is Keras .h5 (HDF5) weights, which torchvision's architectures do not read; use `shortcut-train pretrained --arch %s`", path, models.KerasResNet50Arch)
	}
	w := &weightFile{format: format, tensors: map[string]SafeTensor{}}
	if format == FormatPTH {
		f, err := pth.Parse(b)
		if err != nil {
			return nil, fmt.Errorf("pth %s: %w", path, err)
		}
		for name, t := range f.Tensors {
			w.tensors[name] = SafeTensor{DType: t.DType, Shape: t.Shape, raw: t.Data}
		}
		return w, nil
	}
	f, err := ParseSafetensors(b)
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	w.tensors = f.Tensors
	return w, nil
}

// ImageNetMean and ImageNetStd are torchvision's normalization of pretrained models.
var (
	ImageNetMean = []float32{0.485, 0.456, 0.406}
	ImageNetStd  = []float32{0.229, 0.224, 0.225}
)

// importedAvgWeight is written to every batch norm's avg_weight: GoMLX's moving averages then
// blend new batches in with the full momentum (0.9, PyTorch's 0.1) instead of replacing the
// imported statistics by the first batch's.
const importedAvgWeight = 1e4

// ImportSummary says what ImportWeights wrote.
type ImportSummary struct {
	Meta       ModelMeta
	Tensors    int // tensors mapped
	Ignored    []string
	NewHead    bool
	Checkpoint string
	Format     string // the file's: FormatSafetensors, FormatPTH or FormatKerasH5
	// Notes are what the user must know about the model written (a Keras notop file's
	// placeholder classifier); pretrained prints them.
	Notes []string
}

// ExpectedTensorNames lists the names (and PyTorch shapes, OIHW for convolutions) that
// ImportWeights maps for a network: torchvision's state_dict layout.
func ExpectedTensorNames(net *models.Net) (names []string, shapes map[string][]int) {
	shapes = map[string][]int{}
	add := func(n string, s ...int) {
		names = append(names, n)
		shapes[n] = s
	}
	for _, l := range net.Layers {
		switch l.Kind {
		case models.OpConv:
			add(l.Name+".weight", l.Out, l.In, l.Kernel, l.Kernel)
		case models.OpBatchNorm:
			for _, s := range []string{"weight", "bias", "running_mean", "running_var"} {
				add(l.Name+"."+s, l.Out)
			}
		case models.OpDense:
			add(l.Name+".weight", l.Out, l.In)
			add(l.Name+".bias", l.Out)
		}
	}
	return names, shapes
}

// ImportWeights turns a pretrained weights file into a run directory holding a GoMLX
// checkpoint that `fit --resume` continues (fine-tuning) and `export` exports.
func ImportWeights(opt ImportOptions) (sum *ImportSummary, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("import %s: %v", opt.Path, r)
		}
	}()
	if opt.Run == "" {
		return nil, errors.New("import: no run directory")
	}
	if strings.EqualFold(opt.Arch, models.KerasResNet50Arch) {
		return nil, fmt.Errorf("import %s: %s cannot be imported into a training run (its convolutions have biases, the trainer's ResNets have none); "+
			"`shortcut-train pretrained --arch %s` makes runnable models from it, and `shortcut-train head` adapts them", opt.Path, models.KerasResNet50Arch, models.KerasResNet50Arch)
	}
	if existing, _ := filepath.Glob(filepath.Join(opt.Run, "checkpoint-*.json")); len(existing) > 0 {
		return nil, fmt.Errorf("import: run directory %s already holds checkpoints; choose an empty one", opt.Run)
	}
	im, err := importTensors(opt)
	if err != nil {
		return nil, err
	}
	ctx, meta := im.ctx, im.meta
	seed := opt.Seed
	if seed == 0 {
		seed = 1
	}
	if err := setJSONParam(ctx, metaParam, meta); err != nil {
		return nil, err
	}
	if err := setJSONParam(ctx, stateParam, RunState{Seed: seed, Recipe: "imported", BestValAcc: -1}); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opt.Run, 0o755); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	h2, err := checkpoints.Build(ctx).Dir(opt.Run).Keep(3).Immediate().Done()
	if err != nil {
		return nil, fmt.Errorf("import: checkpoint in %s: %w", opt.Run, err)
	}
	if err := h2.Save(); err != nil {
		return nil, fmt.Errorf("import: saving checkpoint in %s: %w", opt.Run, err)
	}
	list, _ := h2.ListCheckpoints()
	sum = &ImportSummary{Meta: meta, Tensors: im.tensors, Ignored: im.ignored, NewHead: opt.NewHead, Format: im.format}
	if len(list) > 0 {
		sum.Checkpoint = list[len(list)-1]
	}
	return sum, nil
}

// imported is a weights file mapped onto a network: a GoMLX context holding every variable the
// network reads (batch norm unfolded), before anything is written.
type imported struct {
	ctx     *gctx.Context
	net     *models.Net
	meta    ModelMeta
	tensors int      // tensors mapped
	ignored []string // num_batches_tracked counters
	format  string
}

// importTensors reads opt.Path and maps it onto opt.Arch, checking every name, shape and value;
// the error lists what is missing, mis-shaped or extra (see ImportWeights).
func importTensors(opt ImportOptions) (*imported, error) {
	f, err := readWeights(opt.Path, opt.Format)
	if err != nil {
		return nil, err
	}
	conv1, ok := f.tensors["conv1.weight"]
	if !ok || len(conv1.Shape) != 4 {
		return nil, fmt.Errorf("import %s: no 4-d conv1.weight (torchvision layout expected: conv1.weight, bn1.*, "+
			"layer1.0.conv1.weight, ..., fc.weight); found %s", opt.Path, sample(quoteNames(f.names()), 6))
	}
	width, channels := conv1.Shape[0], conv1.Shape[1]
	h, w := opt.Height, opt.Width
	if h == 0 {
		h = 224
	}
	if w == 0 {
		w = h
	}
	fc, hasFC := f.tensors["fc.weight"]
	classes := opt.Classes
	if len(classes) == 0 {
		if !hasFC || len(fc.Shape) != 2 {
			return nil, fmt.Errorf("import %s: no 2-d fc.weight to count the classes; give the class names", opt.Path)
		}
		for i := range fc.Shape[0] {
			classes = append(classes, fmt.Sprint(i))
		}
	}
	if hasFC && len(fc.Shape) == 2 && fc.Shape[0] != len(classes) && !opt.NewHead {
		return nil, fmt.Errorf("import %s: fc.weight has %d outputs but %d classes were asked for; "+
			"start a new classifier (--new-head) or give %d classes", opt.Path, fc.Shape[0], len(classes), fc.Shape[0])
	}
	mean, std := opt.Mean, opt.Std
	if len(mean) == 0 && len(std) == 0 && channels == 3 {
		mean, std = ImageNetMean, ImageNetStd
	}
	if len(mean) != channels || len(std) != channels {
		return nil, fmt.Errorf("import %s: the model has %d input channels; give %d mean and std values "+
			"(got %d and %d)", opt.Path, channels, channels, len(mean), len(std))
	}
	meta := ModelMeta{Arch: strings.ToLower(opt.Arch), BaseWidth: width, Height: h, Width: w, Channels: channels,
		Classes: classes, Mean: mean, Std: std, DataHeight: h, DataWidth: w,
		Dataset: "imported:" + filepath.Base(opt.Path)}
	net, err := meta.Net()
	if err != nil {
		return nil, err
	}
	// fit stores the default width as 0; so must we, or `fit --resume` sees another width.
	if def, _ := models.New(models.Config{Arch: meta.Arch, Height: h, Width: w, Channels: channels,
		NumClasses: len(classes)}); def != nil && def.Layers[0].Out == width {
		meta.BaseWidth = 0
	}

	_, want := ExpectedTensorNames(net)
	used := map[string]bool{}
	var missing, wrong []string
	ctx := gctx.New()
	read := func(name string) []float32 {
		t, ok := f.tensors[name]
		if !ok {
			missing = append(missing, name)
			return nil
		}
		used[name] = true
		if !sameInts(t.Shape, want[name]) {
			wrong = append(wrong, fmt.Sprintf("%s is %v, want %v", name, t.Shape, want[name]))
			return nil
		}
		v, err := t.Float32()
		if err != nil {
			wrong = append(wrong, name+": "+err.Error())
			return nil
		}
		for i, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				wrong = append(wrong, fmt.Sprintf("%s[%d] is %g (weights must be finite)", name, i, x))
				return nil
			}
		}
		return v
	}
	set := func(scope, name string, dims []int, v []float32) {
		if v != nil {
			ctx.InAbsPath(scope).VariableWithValue(name, tensors.FromFlatDataAndDimensions(v, dims...))
		}
	}
	skipped := []string{}
	for _, l := range net.Layers {
		switch l.Kind {
		case models.OpConv:
			oihw := read(l.Name + ".weight")
			if oihw == nil {
				continue
			}
			k := l.Kernel
			hwio := make([]float32, len(oihw))
			for o := range l.Out {
				for i := range l.In {
					for a := range k {
						for b := range k {
							hwio[((a*k+b)*l.In+i)*l.Out+o] = oihw[((o*l.In+i)*k+a)*k+b]
						}
					}
				}
			}
			set("/"+l.Name, "weights", []int{k, k, l.In, l.Out}, hwio)
		case models.OpBatchNorm:
			scope := "/" + l.Name + "/batch_normalization"
			set(scope, "scale", []int{l.Out}, read(l.Name+".weight"))
			set(scope, "offset", []int{l.Out}, read(l.Name+".bias"))
			set(scope, "mean", []int{l.Out}, read(l.Name+".running_mean"))
			variance := read(l.Name + ".running_var")
			for i, v := range variance {
				if v < 0 {
					wrong = append(wrong, fmt.Sprintf("%s.running_var[%d] = %g is negative", l.Name, i, v))
					variance = nil
					break
				}
			}
			set(scope, "variance", []int{l.Out}, variance)
			avg := make([]float32, l.Out)
			for i := range avg {
				avg[i] = importedAvgWeight
			}
			set(scope, "avg_weight", []int{l.Out}, avg)
		case models.OpDense:
			if opt.NewHead {
				for _, s := range []string{".weight", ".bias"} {
					if _, ok := f.tensors[l.Name+s]; ok {
						used[l.Name+s] = true
						skipped = append(skipped, l.Name+s)
					}
				}
				continue
			}
			oi := read(l.Name + ".weight")
			set("/"+l.Name, "biases", []int{l.Out}, read(l.Name+".bias"))
			if oi == nil {
				continue
			}
			io := make([]float32, len(oi))
			for o := range l.Out {
				for i := range l.In {
					io[i*l.Out+o] = oi[o*l.In+i]
				}
			}
			set("/"+l.Name, "weights", []int{l.In, l.Out}, io)
		}
	}
	var extra, ignored []string
	for _, n := range f.names() {
		switch {
		case used[n]:
		case strings.HasSuffix(n, ".num_batches_tracked"):
			ignored = append(ignored, n)
		default:
			extra = append(extra, n)
		}
	}
	var errs []string
	if len(missing) > 0 {
		errs = append(errs, fmt.Sprintf("%d tensors missing: %s", len(missing), sample(missing, 8)))
	}
	if len(wrong) > 0 {
		errs = append(errs, fmt.Sprintf("%d tensors of the wrong shape, type or values: %s", len(wrong), sample(wrong, 6)))
	}
	if len(extra) > 0 {
		errs = append(errs, fmt.Sprintf("%d tensors %s does not have: %s", len(extra), meta.Arch, sample(quoteNames(extra), 8)))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("import %s as %s (width %d, %d channels, %d classes): %s", opt.Path, meta.Arch, width,
			channels, len(classes), strings.Join(errs, "; "))
	}

	return &imported{ctx: ctx, net: net, meta: meta, tensors: len(used) - len(skipped), ignored: ignored, format: f.format}, nil
}

// quoteNames quotes the names (from the file) that hold control characters, which would break
// the one-line error.
func quoteNames(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n
		if strings.ContainsFunc(n, unicode.IsControl) {
			out[i] = strconv.Quote(n)
		}
	}
	return out
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sample joins the first n items and says how many more there are. Missing and mis-shaped
// tensors keep the architecture's order, so the first named is the first the network needs.
func sample(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}

// Tensor returns a float32 array of an exported model and its shape (for tests and tools).
func (e *ExportedModel) Tensor(name string) ([]float32, []int, error) { return e.tensor(name) }
