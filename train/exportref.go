package train

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// ExportedModel is an exported model loaded for reference inference: plain loops, float64
// accumulation, no speed. It is the specification quant/ can test a converted model against.
type ExportedModel struct {
	Manifest Manifest
	weights  []byte
}

// LoadExported reads model.json and its weights file from dir.
func LoadExported(dir string) (*ExportedModel, error) {
	js, err := os.ReadFile(filepath.Join(dir, "model.json"))
	if err != nil {
		return nil, fmt.Errorf("exported model: %w", err)
	}
	var m ExportedModel
	if err := json.Unmarshal(js, &m.Manifest); err != nil {
		return nil, fmt.Errorf("exported model %s/model.json: %w", dir, err)
	}
	if m.Manifest.Format != ExportFormat {
		return nil, fmt.Errorf("exported model %s: format %q, want %q", dir, m.Manifest.Format, ExportFormat)
	}
	if m.weights, err = os.ReadFile(filepath.Join(dir, m.Manifest.Weights)); err != nil {
		return nil, fmt.Errorf("exported model: %w", err)
	}
	for name, t := range m.Manifest.Tensors {
		if t.Offset < 0 || t.Offset+4*int64(prod(t.Shape)) > int64(len(m.weights)) {
			return nil, fmt.Errorf("exported model %s: tensor %s (shape %v at byte %d) runs past the end of %s (%d bytes)",
				dir, name, t.Shape, t.Offset, m.Manifest.Weights, len(m.weights))
		}
	}
	return &m, nil
}

func prod(s []int) int {
	p := 1
	for _, d := range s {
		p *= d
	}
	return p
}

func (e *ExportedModel) tensor(name string) ([]float32, []int, error) {
	t, ok := e.Manifest.Tensors[name]
	if !ok {
		return nil, nil, fmt.Errorf("exported model: no tensor %q", name)
	}
	v := make([]float32, prod(t.Shape))
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(e.weights[t.Offset+4*int64(i):]))
	}
	return v, t.Shape, nil
}

// act is an activation map: H x W x C (or 1 x 1 x C after mean).
type act struct {
	h, w, c int
	v       []float64
}

// Run computes the logits of one normalized NHWC image (H*W*C floats).
func (e *ExportedModel) Run(image []float32) ([]float32, error) {
	in := e.Manifest.Input
	h, w, c := in.Shape[1], in.Shape[2], in.Shape[3]
	if len(image) != h*w*c {
		return nil, fmt.Errorf("exported model: image has %d values, want %dx%dx%d", len(image), h, w, c)
	}
	x := act{h, w, c, make([]float64, len(image))}
	for i, f := range image {
		x.v[i] = float64(f)
	}
	vals := map[string]act{in.Name: x}
	for _, op := range e.Manifest.Ops {
		a := vals[op.Inputs[0]]
		var y act
		switch op.Op {
		case "conv2d":
			wt, ws, err := e.tensor(op.Weights)
			if err != nil {
				return nil, err
			}
			b, _, err := e.tensor(op.Bias)
			if err != nil {
				return nil, err
			}
			y = refConv2D(a, wt, ws, b, op.Stride, op.Padding)
		case "add":
			b := vals[op.Inputs[1]]
			y = act{a.h, a.w, a.c, make([]float64, len(a.v))}
			for i := range a.v {
				y.v[i] = a.v[i] + b.v[i]
			}
		case "max_pool":
			y = refMaxPool(a, op.Kernel, op.Stride, op.Padding)
		case "mean":
			y = act{1, 1, a.c, make([]float64, a.c)}
			for i, v := range a.v {
				y.v[i%a.c] += v / float64(a.h*a.w)
			}
		case "fully_connected":
			wt, ws, err := e.tensor(op.Weights)
			if err != nil {
				return nil, err
			}
			b, _, err := e.tensor(op.Bias)
			if err != nil {
				return nil, err
			}
			out, n := ws[0], ws[1]
			y = act{1, 1, out, make([]float64, out)}
			for o := range out {
				s := float64(b[o])
				for k := range n {
					s += float64(wt[o*n+k]) * a.v[k]
				}
				y.v[o] = s
			}
		default:
			return nil, fmt.Errorf("exported model: unknown op %q (%s)", op.Op, op.Name)
		}
		if op.Activation == "relu" {
			for i, v := range y.v {
				y.v[i] = math.Max(0, v)
			}
		}
		vals[op.Output] = y
	}
	out := vals[e.Manifest.Output]
	logits := make([]float32, len(out.v))
	for i, v := range out.v {
		logits[i] = float32(v)
	}
	return logits, nil
}

func refConv2D(a act, wt []float32, ws []int, b []float32, stride, pad []int) act {
	o, kh, kw, ci := ws[0], ws[1], ws[2], ws[3]
	oh := (a.h+pad[0]+pad[1]-kh)/stride[0] + 1
	ow := (a.w+pad[2]+pad[3]-kw)/stride[1] + 1
	y := act{oh, ow, o, make([]float64, oh*ow*o)}
	for yy := range oh {
		for xx := range ow {
			for oc := range o {
				s := float64(b[oc])
				for i := range kh {
					iy := yy*stride[0] + i - pad[0]
					if iy < 0 || iy >= a.h {
						continue
					}
					for j := range kw {
						ix := xx*stride[1] + j - pad[2]
						if ix < 0 || ix >= a.w {
							continue
						}
						for c := range ci {
							s += float64(wt[((oc*kh+i)*kw+j)*ci+c]) * a.v[(iy*a.w+ix)*a.c+c]
						}
					}
				}
				y.v[(yy*ow+xx)*o+oc] = s
			}
		}
	}
	return y
}

func refMaxPool(a act, k, stride, pad []int) act {
	oh := (a.h+pad[0]+pad[1]-k[0])/stride[0] + 1
	ow := (a.w+pad[2]+pad[3]-k[1])/stride[1] + 1
	y := act{oh, ow, a.c, make([]float64, oh*ow*a.c)}
	for yy := range oh {
		for xx := range ow {
			for c := range a.c {
				m := math.Inf(-1)
				for i := range k[0] {
					for j := range k[1] {
						iy, ix := yy*stride[0]+i-pad[0], xx*stride[1]+j-pad[2]
						if iy >= 0 && iy < a.h && ix >= 0 && ix < a.w {
							m = math.Max(m, a.v[(iy*a.w+ix)*a.c+c])
						}
					}
				}
				y.v[(yy*ow+xx)*a.c+c] = m
			}
		}
	}
	return y
}
