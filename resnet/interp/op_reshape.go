package interp

import (
	"fmt"
	"slices"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
)

// RESHAPE and SQUEEZE (copies): Prepare and Eval.

func init() {
	register(resnet.OpReshape, func(c *opContext) (kernel, error) { return c.prepareReshape() })
	register(resnet.OpSqueeze, func(c *opContext) (kernel, error) { return c.prepareSqueeze() })
}

// prepareCopy finishes RESHAPE and SQUEEZE: same type and element count,
// bytes copied as they are.
func (c *opContext) prepareCopy(in, out int, want []int) (kernel, error) {
	if err := c.checkOutputShape(out, want); err != nil {
		return nil, err
	}
	if c.tensor(in).Type == resnet.Int8 {
		if err := c.sameQuant(in, out); err != nil {
			return nil, err
		}
	}
	return &copyKernel{in: in, out: out}, nil
}

func (c *opContext) prepareReshape() (kernel, error) {
	in, out, err := c.unaryIO(1, 2, resnet.Int8, resnet.Float32)
	if err != nil {
		return nil, err
	}
	// The new shape comes from a constant second input when there is one,
	// else from the options; with neither, the declared output shape stands
	// as long as the element count matches.
	var spec []int
	shapeIdx, err := c.input(1, "shape", true)
	if err != nil {
		return nil, err
	}
	switch {
	case shapeIdx >= 0:
		if spec, err = c.constInts("shape", shapeIdx); err != nil {
			return nil, err
		}
	default:
		if o, ok := c.op.Options.(*resnet.ReshapeOptions); ok && o != nil {
			spec = o.NewShape
		} else if c.op.Options != nil {
			return nil, c.errorf("options are %T; want *resnet.ReshapeOptions", c.op.Options)
		}
	}
	n := c.tensor(in).NumElements()
	want := slices.Clone(c.tensor(out).Shape)
	if spec != nil {
		want, err = resolveShape(spec, n)
		if err != nil {
			return nil, c.errorf("new shape %v for input %s with %d elements: %v", spec, c.b.tensorRef(in), n, err)
		}
	}
	if m := c.tensor(out).NumElements(); m != n {
		return nil, c.errorf("output %s has %d elements but input %s has %d", c.b.tensorRef(out), m, c.b.tensorRef(in), n)
	}
	return c.prepareCopy(in, out, want)
}

// resolveShape fills in at most one -1 dimension so that the shape has n
// elements.
func resolveShape(spec []int, n int) ([]int, error) {
	out := slices.Clone(spec)
	unknown := -1
	known := 1
	for k, d := range spec {
		switch {
		case d == -1 && unknown >= 0:
			return nil, fmt.Errorf("more than one -1")
		case d == -1:
			unknown = k
		case d < 1:
			return nil, fmt.Errorf("dimension %d is %d", k, d)
		default:
			if known > n/d+1 {
				return nil, fmt.Errorf("more elements than the input")
			}
			known *= d
		}
	}
	if unknown >= 0 {
		if known == 0 || n%known != 0 {
			return nil, fmt.Errorf("%d elements do not divide into %d", n, known)
		}
		out[unknown] = n / known
	} else if known != n {
		return nil, fmt.Errorf("it has %d elements, not %d", known, n)
	}
	return out, nil
}

func (c *opContext) prepareSqueeze() (kernel, error) {
	var o resnet.SqueezeOptions
	switch opt := c.op.Options.(type) {
	case *resnet.SqueezeOptions:
		o = *opt
	case nil:
	default:
		return nil, c.errorf("options are %T; want *resnet.SqueezeOptions", opt)
	}
	in, out, err := c.unaryIO(1, 1, resnet.Int8, resnet.Float32)
	if err != nil {
		return nil, err
	}
	s := c.tensor(in).Shape
	drop := make([]bool, len(s))
	if len(o.SqueezeDims) == 0 {
		for k, d := range s {
			drop[k] = d == 1
		}
	}
	for _, d := range o.SqueezeDims {
		k := d
		if k < 0 {
			k += len(s)
		}
		if k < 0 || k >= len(s) || s[k] != 1 {
			return nil, c.errorf("squeeze dims %v: dimension %d of input shape %v is not 1", o.SqueezeDims, d, s)
		}
		drop[k] = true
	}
	want := []int{}
	for k, d := range s {
		if !drop[k] {
			want = append(want, d)
		}
	}
	return c.prepareCopy(in, out, want)
}

// copyKernel is RESHAPE and SQUEEZE: same bytes, new shape.
type copyKernel struct{ in, out int }

func (k *copyKernel) eval(ts []Tensor, _ *fast.Runner) { copy(ts[k.out].data, ts[k.in].data) }
