package train

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/shortcut-edge/shortcut/train/h5"
	"github.com/shortcut-edge/shortcut/train/models"
)

// FormatKerasH5 is Keras 2's HDF5 weights file (model.save_weights, keras-applications'
// downloads), read by train/h5.
const FormatKerasH5 = "keras-h5"

// Keras' ResNet50 expects "caffe" preprocessing (keras.applications.resnet.preprocess_input):
// the image in BGR channel order, 0..255, minus the ImageNet mean per channel
// [103.939, 116.779, 123.68] (B, G, R), no division. Our models take RGB x = (pixel/255 -
// mean)/std; with the channel swap folded into conv1 (input channel c of our model reads the
// kernel of Keras' channel 2-c) these mean and std give exactly Keras' input:
// (p/255 - m/255)/(1/255) = p - m.
var (
	KerasCaffeMean = []float32{123.68 / 255, 116.779 / 255, 103.939 / 255}
	KerasCaffeStd  = []float32{1.0 / 255, 1.0 / 255, 1.0 / 255}
)

// kerasTensor is one weight of a Keras file: the dataset and the names it was found under.
type kerasTensor struct {
	layer, name string // the layer group and its weight_names entry (conv1_conv/kernel:0)
	d           *h5.Dataset
}

// kerasFile is a Keras weights file: its tensors by "<layer>/<variable>" (conv1_conv/kernel),
// and the layers in the file's order.
type kerasFile struct {
	path    string
	layers  []string
	tensors map[string]*kerasTensor
	order   []string // keys in file order
}

var kerasVarSuffix = regexp.MustCompile(`:\d+$`)

// kerasKey reduces a weight name to "<layer>/<variable>": Keras 2 names weights
// "conv1_conv/kernel:0"; a model nested in another may prefix its own name
// ("resnet50/conv1_conv/kernel:0").
func kerasKey(name string) string {
	name = kerasVarSuffix.ReplaceAllString(name, "")
	parts := strings.Split(name, "/")
	if len(parts) > 2 {
		parts = parts[len(parts)-2:]
	}
	return strings.Join(parts, "/")
}

// readKerasH5 reads the layout Keras 2 writes (at the root of a weights file, in the group
// model_weights of a whole saved model): the attribute layer_names (split into
// layer_names0, layer_names1, ... when it is too large for an object header), a group per
// layer with the attribute weight_names, and a dataset per weight at <layer>/<weight name>.
// Values are read later, tensor by tensor.
func readKerasH5(path string, b []byte) (*kerasFile, error) {
	f, err := h5.Open(b)
	if err != nil {
		return nil, fmt.Errorf("keras-h5 %s: %w", path, err)
	}
	root, err := f.Root()
	if err != nil {
		return nil, fmt.Errorf("keras-h5 %s: %w", path, err)
	}
	kf := &kerasFile{path: path, tensors: map[string]*kerasTensor{}}
	if _, err := root.Attr("layer_names"); errors.Is(err, h5.ErrNotFound) {
		// A whole model saved by Keras 2's model.save: the weights file's layout sits in the
		// group model_weights.
		if g, err := root.Open("model_weights"); err == nil && g.IsGroup() {
			root = g
		}
	}
	names, err := root.Attr("layer_names")
	switch {
	case err == nil:
		kf.layers = names.Strings
		if names.Strings == nil && len(names.Numbers) > 0 {
			return nil, fmt.Errorf("keras-h5 %s: attribute layer_names holds %s, want strings", path, names.Type)
		}
	case errors.Is(err, h5.ErrNotFound):
		for k := 0; ; k++ {
			a, err := root.Attr(fmt.Sprintf("layer_names%d", k))
			if errors.Is(err, h5.ErrNotFound) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("keras-h5 %s: %w", path, err)
			}
			kf.layers = append(kf.layers, a.Strings...)
		}
		if len(kf.layers) == 0 {
			return nil, fmt.Errorf("keras-h5 %s: no layer_names attribute: not a Keras 2 weights file (Keras 3's .weights.h5 layout is not supported)", path)
		}
	default:
		return nil, fmt.Errorf("keras-h5 %s: %w", path, err)
	}
	for _, l := range kf.layers {
		g, err := root.Open(l)
		if err != nil {
			return nil, fmt.Errorf("keras-h5 %s: layer %s (from layer_names): %w", path, quoteNames([]string{l})[0], err)
		}
		wn, err := g.Attr("weight_names")
		if errors.Is(err, h5.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("keras-h5 %s: %w", path, err)
		}
		for _, w := range wn.Strings {
			o, err := g.Open(w)
			if err != nil {
				return nil, fmt.Errorf("keras-h5 %s: weight %s of layer %s: %w", path, quoteNames([]string{w})[0], l, err)
			}
			d, err := o.Dataset()
			if err != nil {
				return nil, fmt.Errorf("keras-h5 %s: %w", path, err)
			}
			key := kerasKey(w)
			if prev, dup := kf.tensors[key]; dup {
				return nil, fmt.Errorf("keras-h5 %s: two weights read as %s (%s/%s and %s/%s)", path, key, prev.layer, prev.name, l, w)
			}
			kf.tensors[key] = &kerasTensor{layer: l, name: w, d: d}
			kf.order = append(kf.order, key)
		}
	}
	return kf, nil
}

// heads lists the layers that may be the classifier: outside ResNet50's convolutions and batch
// norms, with a 2-d kernel, whatever their name (predictions in Keras' own file with its top).
func (kf *kerasFile) heads() ([]string, error) {
	probe, err := models.KerasResNet50(32, 32, 3, 1)
	if err != nil {
		return nil, err
	}
	backbone := map[string]bool{}
	for _, l := range probe.Layers {
		if l.Kind != models.OpDense {
			backbone[l.Name] = true
		}
	}
	var heads []string
	for _, k := range kf.order {
		layer, v, _ := strings.Cut(k, "/")
		if !backbone[layer] && v == "kernel" && len(kf.tensors[k].d.Shape) == 2 {
			heads = append(heads, layer)
		}
	}
	return heads, nil
}

// exportKeras maps a Keras weights file onto Keras' ResNet50 and writes the float export
// (model.json, weights.bin) in out, batch norms and conv biases folded, the BGR input swapped
// into conv1 (see KerasCaffeMean). Every tensor is checked: name, shape, type, finite values;
// the error names the first that is missing or wrong, in the network's order.
func exportKeras(opt ImportOptions, out string) (*ImportSummary, *Manifest, error) {
	kf, err := openKeras(opt)
	if err != nil {
		return nil, nil, err
	}
	h, w := opt.Height, opt.Width
	if h == 0 {
		h = 224
	}
	if w == 0 {
		w = h
	}
	head, classes, notes, err := kerasClasses(opt, kf)
	if err != nil {
		return nil, nil, err
	}
	mean, std := opt.Mean, opt.Std
	if len(mean) == 0 && len(std) == 0 {
		mean, std = KerasCaffeMean, KerasCaffeStd
	}
	if len(mean) != 3 || len(std) != 3 {
		return nil, nil, fmt.Errorf("import %s: Keras' ResNet50 has 3 input channels; give 3 mean and std values (got %d and %d)", opt.Path, len(mean), len(std))
	}
	net, err := models.KerasResNet50(h, w, 3, len(classes))
	if err != nil {
		return nil, nil, err
	}
	kw, err := readKerasWeights(opt, kf, net, head, len(classes))
	if err != nil {
		return nil, nil, err
	}
	m, blob, err := foldKeras(opt, net, kw, classes, h, w, mean, std)
	if err != nil {
		return nil, nil, err
	}
	if err := writeExport(out, m, blob); err != nil {
		return nil, nil, err
	}
	meta := ModelMeta{Arch: net.Arch, Height: h, Width: w, Channels: 3, Classes: classes, Mean: mean, Std: std,
		DataHeight: h, DataWidth: w, Dataset: "imported:" + filepath.Base(opt.Path)}
	return &ImportSummary{Meta: meta, Tensors: kw.count, Format: FormatKerasH5, Notes: notes}, m, nil
}

// openKeras reads opt.Path as a Keras .h5 file, refusing another format
// with what it is.
func openKeras(opt ImportOptions) (*kerasFile, error) {
	if opt.Format != "" && opt.Format != FormatAuto && opt.Format != FormatKerasH5 {
		return nil, fmt.Errorf("import %s: --arch %s reads Keras .h5 weights (--format auto or keras-h5), not %s", opt.Path, models.KerasResNet50Arch, opt.Format)
	}
	b, err := os.ReadFile(opt.Path)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if !h5.IsHDF5(b) {
		det, derr := DetectWeightsFormat(b)
		if derr == nil {
			return nil, fmt.Errorf("import %s: the file is %s, but --arch %s reads Keras .h5 (HDF5) weights; use a torchvision --arch for it", opt.Path, det, models.KerasResNet50Arch)
		}
		return nil, fmt.Errorf("import %s: not an HDF5 file (Keras .h5 weights start with \\x89HDF\\r\\n\\x1a\\n); first bytes % x", opt.Path, b[:min(len(b), 8)])
	}
	return readKerasH5(opt.Path, b)
}

// kerasClasses finds the file's classifier (none in a notop file) and the
// class names: the Dense layer's width, or --classes (a notop file's
// placeholder head, with a note saying so).
func kerasClasses(opt ImportOptions, kf *kerasFile) (head string, classes, notes []string, err error) {
	heads, err := kf.heads()
	if err != nil {
		return "", nil, nil, err
	}
	if len(heads) > 1 {
		return "", nil, nil, fmt.Errorf("import %s: %d Dense layers after ResNet50 (%s); want one classifier", opt.Path, len(heads), strings.Join(quoteNames(heads), ", "))
	}
	classes = opt.Classes
	if len(heads) == 1 {
		head = heads[0]
		ks := kf.tensors[head+"/kernel"].d.Shape
		if len(classes) == 0 {
			for i := range ks[1] {
				classes = append(classes, fmt.Sprint(i))
			}
		} else if ks[1] != len(classes) {
			return "", nil, nil, fmt.Errorf("import %s: the classifier %s has %d outputs but %d classes were asked for; give %d classes",
				opt.Path, head, ks[1], len(classes), ks[1])
		}
	} else {
		if len(classes) == 0 {
			return "", nil, nil, fmt.Errorf("import %s: no classifier in the file (a notop file: ResNet50 without its Dense layer); "+
				"give --classes N (or names): the model then gets a placeholder classifier with zero weights (every score 1/N) "+
				"and its embedding output is the network's real output, for `shortcut-train head` or on-device learning (train/IMPORT.md)", opt.Path)
		}
		notes = append(notes, fmt.Sprintf("%s has no classifier (notop): the %d-class head is a PLACEHOLDER with zero weights, every score is 1/%d; "+
			"output 1 (the embedding) is meaningful: train a head with `shortcut-train head --mode replace` or on the device", opt.Path, len(classes), len(classes)))
	}
	if len(classes) < 2 {
		return "", nil, nil, fmt.Errorf("import %s: %d classes; a classifier needs at least 2", opt.Path, len(classes))
	}
	return head, classes, notes, nil
}

type convW struct{ kernel, bias []float32 }
type bnW struct{ gamma, beta, mean, variance []float32 }

// kerasWeights are a Keras ResNet50's tensors by layer, read and checked.
type kerasWeights struct {
	convs        map[string]convW
	bns          map[string]bnW
	headW, headB []float32 // the classifier (zeros for a notop file)
	count        int       // tensors read from the file
}

// readKerasWeights reads every tensor net needs from kf, in the network's
// order, and reports every missing, mis-shaped, non-finite or unused one at
// once (the first named first).
func readKerasWeights(opt ImportOptions, kf *kerasFile, net *models.Net, head string, nclasses int) (*kerasWeights, error) {
	used := map[string]bool{}
	var missing, wrong []string
	read := func(key string, shape ...int) []float32 {
		t, ok := kf.tensors[key]
		if !ok {
			missing = append(missing, key)
			return nil
		}
		used[key] = true
		if !slices.Equal(t.d.Shape, shape) {
			wrong = append(wrong, fmt.Sprintf("%s/%s is %v, want %v", t.layer, t.name, t.d.Shape, shape))
			return nil
		}
		v, err := t.d.Float32s()
		if err != nil {
			wrong = append(wrong, err.Error())
			return nil
		}
		for i, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				wrong = append(wrong, fmt.Sprintf("%s/%s[%d] is %g (weights must be finite)", t.layer, t.name, i, x))
				return nil
			}
		}
		return v
	}
	// Read every tensor in the network's order first, so the error names the first problem.
	kw := &kerasWeights{convs: map[string]convW{}, bns: map[string]bnW{}}
	convs, bns := kw.convs, kw.bns
	for _, l := range net.Layers {
		switch l.Kind {
		case models.OpConv:
			convs[l.Name] = convW{read(l.Name+"/kernel", l.Kernel, l.Kernel, l.In, l.Out), read(l.Name+"/bias", l.Out)}
		case models.OpBatchNorm:
			bn := bnW{read(l.Name+"/gamma", l.Out), read(l.Name+"/beta", l.Out), read(l.Name+"/moving_mean", l.Out), read(l.Name+"/moving_variance", l.Out)}
			for i, v := range bn.variance {
				if v < 0 {
					wrong = append(wrong, fmt.Sprintf("%s/moving_variance[%d] = %g is negative", l.Name, i, v))
					break
				}
			}
			bns[l.Name] = bn
		case models.OpDense:
			if head != "" {
				kw.headW, kw.headB = read(head+"/kernel", l.In, l.Out), read(head+"/bias", l.Out)
			} else {
				kw.headW, kw.headB = make([]float32, l.In*l.Out), make([]float32, l.Out)
			}
		}
	}
	var extra []string
	for _, k := range kf.order {
		if !used[k] {
			t := kf.tensors[k]
			extra = append(extra, t.layer+"/"+t.name)
		}
	}
	var errs []string
	if len(missing) > 0 {
		errs = append(errs, fmt.Sprintf("%d tensors missing: %s", len(missing), sample(quoteNames(missing), 8)))
	}
	if len(wrong) > 0 {
		errs = append(errs, fmt.Sprintf("%d tensors of the wrong shape, type or values: %s", len(wrong), sample(quoteNames(wrong), 6)))
	}
	if len(extra) > 0 {
		errs = append(errs, fmt.Sprintf("%d tensors %s does not have: %s", len(extra), net.Arch, sample(quoteNames(extra), 8)))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("import %s as %s (Keras layer names, %d classes): %s", opt.Path, net.Arch, nclasses, strings.Join(errs, "; "))
	}

	kw.count = len(used)
	return kw, nil
}

// foldKeras writes net as the float export: each batch norm folded into
// its convolution with the convolution's bias, ReLUs fused, the input's
// BGR order folded into conv1, the Dense kernel transposed.
func foldKeras(opt ImportOptions, net *models.Net, kw *kerasWeights, classes []string, h, w int, mean, std []float32) (m *Manifest, blob []byte, err error) {
	m = &Manifest{Format: ExportFormat, Arch: net.Arch, Classes: classes, Weights: "weights.bin", Output: net.Output(),
		Tensors: map[string]Tensor{}, BNEpsilon: models.KerasBNEpsilon,
		Input: ExportInput{Name: models.InputName, Shape: []int{1, h, w, 3}, Mean: mean, Std: std, ImageH: h, ImageW: w}}
	addTensor := func(name string, shape []int, v []float32) {
		m.Tensors[name] = Tensor{Shape: shape, Offset: int64(len(blob))}
		for _, x := range v {
			blob = binary.LittleEndian.AppendUint32(blob, math.Float32bits(x))
		}
	}
	alias := map[string]string{models.InputName: models.InputName}
	layers := net.Layers
	next := func(i int, kind models.Kind) bool { return i+1 < len(layers) && layers[i+1].Kind == kind }
	for i := 0; i < len(layers); i++ {
		l := layers[i]
		op := ExportOp{Name: l.Name, Activation: "none"}
		for _, in := range l.Inputs {
			op.Inputs = append(op.Inputs, alias[in])
		}
		last := l.Name
		switch l.Kind {
		case models.OpConv:
			// Keras: y = BN(conv(x) + b) = gamma*(conv(x) + b - mean)/sqrt(var + eps) + beta.
			cw := kw.convs[l.Name]
			k, cin, cout := l.Kernel, l.In, l.Out
			scale, bias := make([]float32, cout), slices.Clone(cw.bias)
			for o := range scale {
				scale[o] = 1
			}
			if next(i, models.OpBatchNorm) {
				bn := kw.bns[layers[i+1].Name]
				for o := range cout {
					s := float64(bn.gamma[o]) / math.Sqrt(float64(bn.variance[o])+models.KerasBNEpsilon)
					scale[o] = float32(s)
					bias[o] = float32(float64(bn.beta[o]) + (float64(cw.bias[o])-float64(bn.mean[o]))*s)
				}
				i++
				last = layers[i].Name
			}
			if next(i, models.OpReLU) {
				op.Activation = "relu"
				i++
				last = layers[i].Name
			}
			ohwi := make([]float32, len(cw.kernel))
			for a := range k {
				for bb := range k {
					for c := range cin {
						src := c
						if l.Inputs[0] == models.InputName {
							src = cin - 1 - c // our RGB channel c is Keras' BGR channel 2-c
						}
						for o := range cout {
							ohwi[((o*k+a)*k+bb)*cin+c] = cw.kernel[((a*k+bb)*cin+src)*cout+o] * scale[o]
						}
					}
				}
			}
			op.Op, op.Weights, op.Bias = "conv2d", l.Name+".weights", l.Name+".bias"
			op.Stride, op.Padding = []int{l.Stride, l.Stride}, []int{l.Pad, l.Pad, l.Pad, l.Pad}
			addTensor(op.Weights, []int{cout, k, k, cin}, ohwi)
			addTensor(op.Bias, []int{cout}, bias)
		case models.OpAdd:
			op.Op = "add"
			if next(i, models.OpReLU) {
				op.Activation = "relu"
				i++
				last = layers[i].Name
			}
		case models.OpMaxPool:
			op.Op, op.Kernel = "max_pool", []int{l.Kernel, l.Kernel}
			op.Stride, op.Padding = []int{l.Stride, l.Stride}, []int{l.Pad, l.Pad, l.Pad, l.Pad}
		case models.OpGlobalAvgPool:
			op.Op = "mean"
		case models.OpDense:
			oi := make([]float32, len(kw.headW))
			for a := range l.In {
				for o := range l.Out {
					oi[o*l.In+a] = kw.headW[a*l.Out+o]
				}
			}
			op.Op, op.Weights, op.Bias = "fully_connected", l.Name+".weights", l.Name+".bias"
			addTensor(op.Weights, []int{l.Out, l.In}, oi)
			addTensor(op.Bias, []int{l.Out}, kw.headB)
		default:
			return nil, nil, fmt.Errorf("export %s: layer %s (%s) cannot be folded into a preceding op", opt.Path, l.Name, l.Kind)
		}
		op.Output = last
		alias[l.Name], alias[last] = last, last
		m.Ops = append(m.Ops, op)
	}
	return m, blob, nil
}
