package train

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	gctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/shortcut-edge/shortcut/train/manifest"
	"github.com/shortcut-edge/shortcut/train/models"
)

// The model.json schema lives in train/manifest, shared with quant's reader;
// these names are the ones train's callers have always used.
const ExportFormat = manifest.Format

type (
	Manifest    = manifest.Manifest
	ExportInput = manifest.Input
	Tensor      = manifest.Tensor
	ExportOp    = manifest.Op
)

// ExportOptions select the checkpoint and the output directory.
type ExportOptions struct {
	Backend string
	Dir     string // run directory (best/ checkpoint unless Latest)
	Latest  bool
	Out     string // output directory: model.json and weights.bin
}

// Export writes the model of a run as float32 weights with batch norm folded into the
// convolutions, plus an explicit op list, for quant/ to quantize and convert to .tflite.
func Export(opt ExportOptions) (m *Manifest, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("exporting %s: %v", opt.Dir, r)
		}
	}()
	if opt.Out == "" {
		return nil, fmt.Errorf("export: no output directory")
	}
	s, err := loadModel(opt.Backend, "", opt.Dir, opt.Latest)
	if err != nil {
		return nil, err
	}
	m, blob, err := fold(s.ctx, s.net, s.meta)
	if err != nil {
		return nil, err
	}
	if err := writeExport(opt.Out, m, blob); err != nil {
		return nil, err
	}
	return m, nil
}

// writeExport writes the float export's model.json and weights into out.
func writeExport(out string, m *Manifest, blob []byte) error {
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := os.WriteFile(filepath.Join(out, m.Weights), blob, 0o644); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := os.WriteFile(filepath.Join(out, "model.json"), js, 0o644); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// fold walks the layer list, folding each conv -> batchnorm (-> relu) and add (-> relu).
func fold(ctx *gctx.Context, net *models.Net, meta ModelMeta) (*Manifest, []byte, error) {
	m := &Manifest{Format: ExportFormat, Arch: net.Arch, Classes: meta.Classes, Weights: "weights.bin",
		Tensors: map[string]Tensor{}, BNEpsilon: models.BNEpsilon,
		Input: ExportInput{Name: models.InputName, Shape: []int{1, net.Height, net.Width, net.Channels}, Mean: meta.Mean,
			Std: meta.Std, PadTo: meta.PadTo, ImageH: meta.DataHeight, ImageW: meta.DataWidth}}
	var blob []byte
	addTensor := func(name string, shape []int, v []float32) {
		m.Tensors[name] = Tensor{Shape: shape, Offset: int64(len(blob))}
		for _, f := range v {
			blob = binary.LittleEndian.AppendUint32(blob, math.Float32bits(f))
		}
	}
	read := func(scope, name string) ([]float32, []int, error) {
		v := ctx.GetVariableByScopeAndName(scope, name)
		if v == nil {
			return nil, nil, fmt.Errorf("checkpoint lacks variable %s/%s", scope, name)
		}
		t, err := v.Value()
		if err != nil {
			return nil, nil, err
		}
		return tensors.MustCopyFlatData[float32](t), t.Shape().Dimensions, nil
	}
	// alias maps a layer name to the exported tensor holding its value.
	alias := map[string]string{models.InputName: models.InputName}
	consumers := map[string]int{}
	for _, l := range net.Layers {
		for _, in := range l.Inputs {
			consumers[in]++
		}
	}
	layers := net.Layers
	// nextIs returns layer i+1 if it has the given kind and consumes only layers[i] (which nothing else reads).
	nextIs := func(i int, kind models.Kind) (models.Layer, bool) {
		if i+1 < len(layers) && layers[i+1].Kind == kind && len(layers[i+1].Inputs) == 1 &&
			layers[i+1].Inputs[0] == layers[i].Name && consumers[layers[i].Name] == 1 {
			return layers[i+1], true
		}
		return models.Layer{}, false
	}
	for i := 0; i < len(layers); i++ {
		l := layers[i]
		ins := make([]string, len(l.Inputs))
		for k, in := range l.Inputs {
			a, ok := alias[in]
			if !ok {
				return nil, nil, fmt.Errorf("export: layer %s reads %s, which no exported op produces", l.Name, in)
			}
			ins[k] = a
		}
		op := ExportOp{Name: l.Name, Inputs: ins, Activation: "none"}
		last := l.Name
		switch l.Kind {
		case models.OpConv:
			w, dims, err := read("/"+l.Name, "weights") // [kh, kw, in, out]
			if err != nil {
				return nil, nil, err
			}
			kh, kw, cin, cout := dims[0], dims[1], dims[2], dims[3]
			scale := make([]float32, cout)
			bias := make([]float32, cout)
			for o := range scale {
				scale[o] = 1
			}
			if bn, ok := nextIs(i, models.OpBatchNorm); ok {
				bs := "/" + bn.Name + "/batch_normalization"
				gamma, _, err1 := read(bs, "scale")
				beta, _, err2 := read(bs, "offset")
				mean, _, err3 := read(bs, "mean")
				variance, _, err4 := read(bs, "variance")
				for _, e := range []error{err1, err2, err3, err4} {
					if e != nil {
						return nil, nil, e
					}
				}
				for o := range cout {
					scale[o] = gamma[o] / float32(math.Sqrt(float64(variance[o])+models.BNEpsilon))
					bias[o] = beta[o] - mean[o]*scale[o]
				}
				i++
				last = bn.Name
			}
			if r, ok := nextIs(i, models.OpReLU); ok {
				op.Activation = "relu"
				i++
				last = r.Name
			}
			ohwi := make([]float32, len(w))
			for a := range kh {
				for b := range kw {
					for c := range cin {
						for o := range cout {
							ohwi[((o*kh+a)*kw+b)*cin+c] = w[((a*kw+b)*cin+c)*cout+o] * scale[o]
						}
					}
				}
			}
			op.Op, op.Weights, op.Bias = "conv2d", l.Name+".weights", l.Name+".bias"
			op.Stride, op.Padding = []int{l.Stride, l.Stride}, []int{l.Pad, l.Pad, l.Pad, l.Pad}
			addTensor(op.Weights, []int{cout, kh, kw, cin}, ohwi)
			addTensor(op.Bias, []int{cout}, bias)
		case models.OpShortcutA:
			// Subsample by Stride and append zero channels: a 1x1 conv with identity weights.
			w := make([]float32, l.Out*l.In)
			for c := range l.In {
				w[c*l.In+c] = 1
			}
			op.Op, op.Weights, op.Bias, op.Synthesized = "conv2d", l.Name+".weights", l.Name+".bias", true
			op.Stride, op.Padding = []int{l.Stride, l.Stride}, []int{0, 0, 0, 0}
			addTensor(op.Weights, []int{l.Out, 1, 1, l.In}, w)
			addTensor(op.Bias, []int{l.Out}, make([]float32, l.Out))
		case models.OpAdd:
			op.Op = "add"
			if r, ok := nextIs(i, models.OpReLU); ok {
				op.Activation = "relu"
				i++
				last = r.Name
			}
		case models.OpMaxPool:
			op.Op, op.Kernel = "max_pool", []int{l.Kernel, l.Kernel}
			op.Stride, op.Padding = []int{l.Stride, l.Stride}, []int{l.Pad, l.Pad, l.Pad, l.Pad}
		case models.OpGlobalAvgPool:
			op.Op = "mean"
		case models.OpDense:
			w, dims, err := read("/"+l.Name, "weights") // [in, out]
			if err != nil {
				return nil, nil, err
			}
			b, _, err := read("/"+l.Name, "biases")
			if err != nil {
				return nil, nil, err
			}
			in, out := dims[0], dims[1]
			oi := make([]float32, len(w))
			for a := range in {
				for o := range out {
					oi[o*in+a] = w[a*out+o]
				}
			}
			op.Op, op.Weights, op.Bias = "fully_connected", l.Name+".weights", l.Name+".bias"
			addTensor(op.Weights, []int{out, in}, oi)
			addTensor(op.Bias, []int{out}, b)
		default:
			// A batch norm or ReLU that does not follow a conv / add has no folded form yet.
			return nil, nil, fmt.Errorf("export: layer %s (%s) cannot be folded into a preceding op", l.Name, l.Kind)
		}
		op.Output = last
		alias[last] = last
		alias[l.Name] = last
		m.Ops = append(m.Ops, op)
	}
	m.Output = m.Ops[len(m.Ops)-1].Output
	return m, blob, nil
}
