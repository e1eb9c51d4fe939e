package quant

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/train/manifest"
)

// ExportFormat is the float export layout that FromExport reads (written by
// train.Export, described in train/EXPORT.md; schema in train/manifest).
const ExportFormat = manifest.Format

// Export is a validated float export: its preprocessing and the float model
// built from it.
type Export struct {
	Dir     string
	Arch    string
	Classes []string
	Input   ExportInput
	// Model is the float graph: input -> ... -> logits -> SOFTMAX, with two
	// outputs, class scores and the pooled embedding (the MEAN output).
	Model *resnet.Model
}

// ExportInput is the input section of model.json (manifest.Input).
type ExportInput = manifest.Input

// Limits on what an export may ask for, so that a damaged model.json cannot
// make us allocate without bound.
const (
	maxExportDim  = 1 << 16
	maxExportOps  = 100000
	maxInputElems = 1 << 26
)

// FromExport reads an export directory (model.json + weights) and builds the
// float model. See ReadExport.
func FromExport(dir string) (*resnet.Model, error) {
	e, err := ReadExport(dir)
	if err != nil {
		return nil, err
	}
	return e.Model, nil
}

// ReadExport reads and checks an export directory and builds its float model.
// Every problem is an error naming the file, tensor or op: an unknown format
// version, tensors whose shape or offset runs past the weights file, NaN or
// Inf weights, ops reading tensors nobody produced, shapes that do not fit.
//
// Convolutions with explicit padding become SAME when that is exactly what
// TFLite's SAME does for the shape at hand, VALID when there is none, and
// PAD + VALID otherwise. Max pools with padding become SAME likewise, or
// PAD + VALID when their input is known non-negative (after a ReLU), where
// zero padding cannot win the max.
func ReadExport(dir string) (*Export, error) {
	path := filepath.Join(dir, "model.json")
	js, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w (give the directory that `shortcut-train export` wrote)", dir, err)
	}
	var m manifest.Manifest
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, fmt.Errorf("export %s: %v", path, err)
	}
	if m.Format != ExportFormat {
		if m.Format == "" {
			return nil, fmt.Errorf("export %s: no \"format\" field; this is not a shortcut float export (want %q)", path, ExportFormat)
		}
		return nil, fmt.Errorf("export %s: unknown format version %q; this shortcut-train reads %q: re-export the run with a matching shortcut-train", path, m.Format, ExportFormat)
	}
	if m.Weights == "" || m.Weights != filepath.Base(m.Weights) || m.Weights == "." || m.Weights == ".." {
		return nil, fmt.Errorf("export %s: weights file %q must be a plain file name in the same directory", path, m.Weights)
	}
	wpath := filepath.Join(dir, m.Weights)
	blob, err := os.ReadFile(wpath)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", dir, err)
	}
	b := &exportBuilder{m: &m, dir: dir, path: path, wpath: wpath, blob: blob, cache: map[string][]float32{}}
	if err := b.checkTensors(); err != nil {
		return nil, err
	}
	if err := b.checkInput(); err != nil {
		return nil, err
	}
	model, err := b.build()
	if err != nil {
		return nil, err
	}
	return &Export{Dir: dir, Arch: m.Arch, Classes: m.Classes, Input: m.Input, Model: model}, nil
}

type exportBuilder struct {
	m           *manifest.Manifest
	dir, path   string
	wpath       string
	blob        []byte
	cache       map[string][]float32
	g           *build.Graph
	vals        map[string]int  // export tensor name -> graph tensor
	nonNegative map[string]bool // outputs of ReLU-activated ops
}

// checkTensors checks every tensor's shape and extent, and that its values
// are finite.
func (b *exportBuilder) checkTensors() error {
	size := int64(len(b.blob))
	for name, t := range b.m.Tensors {
		n := int64(1)
		for _, d := range t.Shape {
			if d < 1 || d > maxExportDim {
				return fmt.Errorf("export %s: tensor %q has shape %v; every dimension must be in 1..%d", b.path, name, t.Shape, maxExportDim)
			}
			n *= int64(d)
			if n > size/4+1 {
				break // already past the file; reported below without overflow
			}
		}
		if t.Offset < 0 || n > (size-t.Offset)/4 || t.Offset > size {
			return fmt.Errorf("export %s: tensor %q (shape %v at byte %d) runs past the end of %s (%d bytes); the export is truncated or damaged: export it again",
				b.path, name, t.Shape, t.Offset, b.wpath, size)
		}
		v := make([]float32, n)
		for i := range v {
			x := math.Float32frombits(binary.LittleEndian.Uint32(b.blob[t.Offset+4*int64(i):]))
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("export %s: tensor %q holds %v at element %d (index %v); the training diverged or the file is damaged: retrain or re-export",
					b.path, name, x, i, unravel(i, t.Shape))
			}
			v[i] = x
		}
		b.cache[name] = v
	}
	return nil
}

func unravel(i int, shape []int) []int {
	idx := make([]int, len(shape))
	for k := len(shape) - 1; k >= 0; k-- {
		idx[k] = i % shape[k]
		i /= shape[k]
	}
	return idx
}

func (b *exportBuilder) checkInput() error {
	in := &b.m.Input
	if in.Name == "" {
		return fmt.Errorf("export %s: input.name is empty", b.path)
	}
	if len(in.Shape) != 4 || in.Shape[0] != 1 {
		return fmt.Errorf("export %s: input.shape %v, want [1, H, W, C]", b.path, in.Shape)
	}
	n := 1
	for _, d := range in.Shape {
		if d < 1 || d > maxExportDim {
			return fmt.Errorf("export %s: input.shape %v has a dimension outside 1..%d", b.path, in.Shape, maxExportDim)
		}
		n *= d
		if n > maxInputElems {
			return fmt.Errorf("export %s: input.shape %v is larger than %d values", b.path, in.Shape, maxInputElems)
		}
	}
	c := in.Shape[3]
	if len(in.Mean) != c || len(in.Std) != c {
		return fmt.Errorf("export %s: input has %d channels but %d mean and %d std values", b.path, c, len(in.Mean), len(in.Std))
	}
	for k := range c {
		if math.IsNaN(float64(in.Mean[k])) || math.IsInf(float64(in.Mean[k]), 0) || !(in.Std[k] > 0) || math.IsInf(float64(in.Std[k]), 0) {
			return fmt.Errorf("export %s: channel %d normalization mean %v std %v; want a finite mean and a positive finite std", b.path, k, in.Mean[k], in.Std[k])
		}
	}
	if in.PadTo < 0 || in.ImageH < 0 || in.ImageW < 0 {
		return fmt.Errorf("export %s: input pad_to %d, image %dx%d must not be negative", b.path, in.PadTo, in.ImageH, in.ImageW)
	}
	// The dataset images, padded as pad_to says, must give the input size.
	if in.ImageH > 0 && in.ImageW > 0 {
		h, w := in.ImageH, in.ImageW
		if in.PadTo > 0 {
			h, w = max(h, in.PadTo), max(w, in.PadTo)
		}
		if h != in.Shape[1] || w != in.Shape[2] {
			return fmt.Errorf("export %s: images of %dx%d padded to %d give %dx%d, but input.shape is %v",
				b.path, in.ImageH, in.ImageW, in.PadTo, h, w, in.Shape)
		}
	}
	if len(b.m.Classes) == 0 {
		return fmt.Errorf("export %s: no classes", b.path)
	}
	if len(b.m.Ops) == 0 || len(b.m.Ops) > maxExportOps {
		return fmt.Errorf("export %s: %d ops; want 1..%d", b.path, len(b.m.Ops), maxExportOps)
	}
	return nil
}

func (b *exportBuilder) opErr(i int, op *manifest.Op, format string, args ...any) error {
	return fmt.Errorf("export %s: op %d %q (%s): %s", b.path, i, op.Name, op.Op, fmt.Sprintf(format, args...))
}

// weights returns a tensor's values and checks its shape.
func (b *exportBuilder) weights(i int, op *manifest.Op, role, name string, want []int) ([]float32, error) {
	if name == "" {
		return nil, b.opErr(i, op, "no %s tensor named", role)
	}
	t, ok := b.m.Tensors[name]
	if !ok {
		return nil, b.opErr(i, op, "%s tensor %q is not in the tensors table", role, name)
	}
	if len(t.Shape) != len(want) {
		return nil, b.opErr(i, op, "%s tensor %q has shape %v, want %v", role, name, t.Shape, want)
	}
	for k, d := range want {
		if d >= 0 && t.Shape[k] != d {
			return nil, b.opErr(i, op, "%s tensor %q has shape %v, want %v", role, name, t.Shape, want)
		}
	}
	return b.cache[name], nil
}

func (b *exportBuilder) activation(i int, op *manifest.Op, allowRelu bool) (resnet.Activation, error) {
	switch op.Activation {
	case "", "none":
		return resnet.ActNone, nil
	case "relu":
		if allowRelu {
			return resnet.ActRelu, nil
		}
		return 0, b.opErr(i, op, "a fused relu is not supported on %s", op.Op)
	}
	return 0, b.opErr(i, op, "unknown activation %q (want none or relu)", op.Activation)
}

// window reads stride and padding: two strides >= 1, four paddings >= 0.
func (b *exportBuilder) window(i int, op *manifest.Op) (sh, sw int, pad [4]int, err error) {
	if len(op.Stride) != 2 || op.Stride[0] < 1 || op.Stride[1] < 1 || op.Stride[0] > maxExportDim || op.Stride[1] > maxExportDim {
		return 0, 0, pad, b.opErr(i, op, "stride %v, want [SH, SW] with each at least 1", op.Stride)
	}
	switch len(op.Padding) {
	case 0:
	case 4:
		for k, p := range op.Padding {
			if p < 0 || p > maxExportDim {
				return 0, 0, pad, b.opErr(i, op, "padding %v, want [top, bottom, left, right] >= 0", op.Padding)
			}
			pad[k] = p
		}
	default:
		return 0, 0, pad, b.opErr(i, op, "padding %v, want [top, bottom, left, right]", op.Padding)
	}
	return op.Stride[0], op.Stride[1], pad, nil
}

// padding picks how to express explicit padding in TFLite for one spatial
// axis of size n, kernel k, stride s: explicit output size, and whether
// VALID or SAME computes exactly the same windows.
func padding(n, k, s, before, after int) (out int, valid, same bool) {
	out = (n+before+after-k)/s + 1
	if n+before+after < k {
		return 0, false, false
	}
	valid = before == 0 && out == (n-k)/s+1 && n >= k
	sameOut := (n + s - 1) / s
	total := max((sameOut-1)*s+k-n, 0)
	same = out == sameOut && before == total/2
	return out, valid, same
}

// spatialPadding chooses VALID, SAME or an explicit PAD for a window op.
// It returns the padding for the TFLite op and the PAD amounts (nil when no
// PAD op is needed).
func spatialPadding(h, w, kh, kw, sh, sw int, pad [4]int) (p resnet.Padding, explicit [][2]int, oh, ow int) {
	oh, vh, sah := padding(h, kh, sh, pad[0], pad[1])
	ow, vw, saw := padding(w, kw, sw, pad[2], pad[3])
	switch {
	case vh && vw:
		return resnet.PaddingValid, nil, oh, ow
	case sah && saw:
		return resnet.PaddingSame, nil, oh, ow
	}
	return resnet.PaddingValid, [][2]int{{0, 0}, {pad[0], pad[1]}, {pad[2], pad[3]}, {0, 0}}, oh, ow
}

func (b *exportBuilder) input(i int, op *manifest.Op, k int) (int, []int, error) {
	if k >= len(op.Inputs) {
		return -1, nil, b.opErr(i, op, "has %d inputs, needs %d", len(op.Inputs), k+1)
	}
	t, ok := b.vals[op.Inputs[k]]
	if !ok {
		return -1, nil, b.opErr(i, op, "input %q is neither the model input nor the output of an earlier op", op.Inputs[k])
	}
	return t, b.g.Shape(t), nil
}

func (b *exportBuilder) build() (*resnet.Model, error) {
	m := b.m
	in := m.Input
	b.g = build.New(fmt.Sprintf("%s %dx%dx%d", m.Arch, in.Shape[1], in.Shape[2], in.Shape[3]))
	b.vals = map[string]int{in.Name: b.g.Input(in.Name, in.Shape...)}
	b.nonNegative = map[string]bool{}
	embedding := ""
	for i := range m.Ops {
		op := &m.Ops[i]
		if op.Output == "" {
			return nil, b.opErr(i, op, "no output name")
		}
		if _, dup := b.vals[op.Output]; dup {
			return nil, b.opErr(i, op, "output %q is already produced by the input or an earlier op", op.Output)
		}
		y, err := b.op(i, op)
		if err != nil {
			return nil, err
		}
		if op.Op == "mean" {
			embedding = op.Output
		}
		b.vals[op.Output] = y
		b.nonNegative[op.Output] = op.Activation == "relu"
	}
	logits, ok := b.vals[m.Output]
	if !ok {
		return nil, fmt.Errorf("export %s: output %q is not produced by any op", b.path, m.Output)
	}
	if s := b.g.Shape(logits); len(s) != 2 || s[0] != 1 || s[1] != len(m.Classes) {
		return nil, fmt.Errorf("export %s: output %q has shape %v, want [1, %d] (one logit per class)", b.path, m.Output, s, len(m.Classes))
	}
	if embedding == "" {
		return nil, fmt.Errorf("export %s: no mean op, so no embedding output; the model must end in global average pooling", b.path)
	}
	name := "scores"
	for k := 2; ; k++ {
		if _, taken := b.vals[name]; !taken {
			break
		}
		name = fmt.Sprintf("scores_%d", k)
	}
	b.g.Output(b.g.Softmax(name, logits, 1))
	b.g.Output(b.vals[embedding])
	b.g.SetMeta(resnet.Metadata{Name: m.Arch, Labels: append([]string(nil), m.Classes...),
		Mean: append([]float32(nil), in.Mean...), Std: append([]float32(nil), in.Std...),
		OutputNames: []string{"scores", "embedding"}, ImageSize: in.ContentSize()})
	model, err := b.g.Finish()
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", b.path, err)
	}
	if err := model.Validate(); err != nil {
		return nil, fmt.Errorf("export %s: the float model built from it is invalid: %w", b.path, err)
	}
	return model, nil
}

func (b *exportBuilder) op(i int, op *manifest.Op) (int, error) {
	g := b.g
	nIn := map[string]int{"conv2d": 1, "add": 2, "max_pool": 1, "mean": 1, "fully_connected": 1}
	want, known := nIn[op.Op]
	if !known {
		return -1, b.opErr(i, op, "unknown op; this reader knows conv2d, add, max_pool, mean and fully_connected")
	}
	if len(op.Inputs) != want {
		return -1, b.opErr(i, op, "has %d inputs, want %d", len(op.Inputs), want)
	}
	x, xs, err := b.input(i, op, 0)
	if err != nil {
		return -1, err
	}
	switch op.Op {
	case "conv2d":
		if len(xs) != 4 {
			return -1, b.opErr(i, op, "input %q has shape %v, want NHWC", op.Inputs[0], xs)
		}
		wt, ok := b.m.Tensors[op.Weights]
		if !ok || len(wt.Shape) != 4 {
			return -1, b.opErr(i, op, "weights %q must be a [O, KH, KW, I] tensor in the tensors table", op.Weights)
		}
		o, kh, kw := wt.Shape[0], wt.Shape[1], wt.Shape[2]
		w, err := b.weights(i, op, "weights", op.Weights, []int{o, kh, kw, xs[3]})
		if err != nil {
			return -1, err
		}
		bias, err := b.weights(i, op, "bias", op.Bias, []int{o})
		if err != nil {
			return -1, err
		}
		act, err := b.activation(i, op, true)
		if err != nil {
			return -1, err
		}
		sh, sw, pad, err := b.window(i, op)
		if err != nil {
			return -1, err
		}
		p, explicit, oh, ow := spatialPadding(xs[1], xs[2], kh, kw, sh, sw, pad)
		if oh < 1 || ow < 1 {
			return -1, b.opErr(i, op, "input %v with padding %v is smaller than the %dx%d kernel", xs, pad, kh, kw)
		}
		if explicit != nil {
			x = g.Pad(op.Output+"/pad", x, explicit)
		}
		return g.Conv2D(op.Output, x, build.ConvSpec{Out: o, KH: kh, KW: kw, StrideH: sh, StrideW: sw, Padding: p,
			Act: act, Weights: w, Bias: bias}), nil
	case "add":
		y, ys, err := b.input(i, op, 1)
		if err != nil {
			return -1, err
		}
		if fmt.Sprint(xs) != fmt.Sprint(ys) {
			return -1, b.opErr(i, op, "inputs %q %v and %q %v differ in shape", op.Inputs[0], xs, op.Inputs[1], ys)
		}
		act, err := b.activation(i, op, true)
		if err != nil {
			return -1, err
		}
		return g.Add(op.Output, x, y, act), nil
	case "max_pool":
		if len(xs) != 4 {
			return -1, b.opErr(i, op, "input %q has shape %v, want NHWC", op.Inputs[0], xs)
		}
		if len(op.Kernel) != 2 || op.Kernel[0] < 1 || op.Kernel[0] > maxExportDim || op.Kernel[0] != op.Kernel[1] {
			return -1, b.opErr(i, op, "kernel %v; only square kernels [K, K] are supported", op.Kernel)
		}
		if _, err := b.activation(i, op, false); err != nil {
			return -1, err
		}
		sh, sw, pad, err := b.window(i, op)
		if err != nil {
			return -1, err
		}
		if sh != sw {
			return -1, b.opErr(i, op, "stride %v; only equal strides are supported", op.Stride)
		}
		k := op.Kernel[0]
		p, explicit, oh, ow := spatialPadding(xs[1], xs[2], k, k, sh, sw, pad)
		if oh < 1 || ow < 1 {
			return -1, b.opErr(i, op, "input %v with padding %v is smaller than the %dx%d window", xs, pad, k, k)
		}
		if explicit != nil {
			if !b.nonNegative[op.Inputs[0]] {
				return -1, b.opErr(i, op, "padding %v is not what TFLite's SAME does on a %dx%d input, and zero padding could win the max of an input that is not after a ReLU",
					pad, xs[1], xs[2])
			}
			x = g.Pad(op.Output+"/pad", x, explicit)
		}
		return g.MaxPool2D(op.Output, x, k, sh, p), nil
	case "mean":
		if len(xs) != 4 {
			return -1, b.opErr(i, op, "input %q has shape %v, want NHWC", op.Inputs[0], xs)
		}
		if _, err := b.activation(i, op, false); err != nil {
			return -1, err
		}
		return g.SpatialMean(op.Output, x, false), nil
	case "fully_connected":
		depth := 1
		for _, d := range xs[1:] {
			depth *= d
		}
		wt, ok := b.m.Tensors[op.Weights]
		if !ok || len(wt.Shape) != 2 {
			return -1, b.opErr(i, op, "weights %q must be an [O, I] tensor in the tensors table", op.Weights)
		}
		o := wt.Shape[0]
		w, err := b.weights(i, op, "weights", op.Weights, []int{o, depth})
		if err != nil {
			return -1, err
		}
		bias, err := b.weights(i, op, "bias", op.Bias, []int{o})
		if err != nil {
			return -1, err
		}
		act, err := b.activation(i, op, true)
		if err != nil {
			return -1, err
		}
		return g.FullyConnected(op.Output, x, o, w, bias, act), nil
	}
	return -1, errors.New("unreachable")
}
