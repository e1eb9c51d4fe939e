package interp

import (
	"math"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// MEAN over the spatial axes: Prepare and Eval.

func init() {
	register(resnet.OpMean, func(c *opContext) (kernel, error) { return c.prepareMean() })
}

func (c *opContext) prepareMean() (kernel, error) {
	var o resnet.ReducerOptions
	switch opt := c.op.Options.(type) {
	case *resnet.ReducerOptions:
		o = *opt
	case nil:
	default:
		return nil, c.errorf("options are %T; want *resnet.ReducerOptions", opt)
	}
	in, out, err := c.unaryIO(2, 2, resnet.Int8, resnet.Float32)
	if err != nil {
		return nil, err
	}
	axesIdx, err := c.input(1, "axes", false)
	if err != nil {
		return nil, err
	}
	axes, err := c.constInts("axes", axesIdx)
	if err != nil {
		return nil, err
	}
	s, err := c.rank("input", in, 4)
	if err != nil {
		return nil, err
	}
	// Only the spatial mean (global average pooling) is supported: axes
	// must name H and W, in any order, possibly negative or repeated.
	var h, w, other bool
	for _, a := range axes {
		switch a {
		case 1, -3:
			h = true
		case 2, -2:
			w = true
		default:
			other = true
		}
	}
	if !h || !w || other {
		return nil, c.errorf("axes %v: only the mean over the spatial axes [1, 2] of an NHWC tensor is supported", axes)
	}
	want := []int{s[0], s[3]}
	if o.KeepDims {
		want = []int{s[0], 1, 1, s[3]}
	}
	if err := c.checkOutputShape(out, want); err != nil {
		return nil, err
	}
	k := &meanKernel{in: in, out: out, quantized: c.tensor(in).Type == resnet.Int8}
	if !k.quantized {
		k.p = ref.Mean{Batch: s[0], H: s[1], W: s[2], C: s[3]}
		return k, nil
	}
	inScale, inZP, err := c.activationQuant("input", in)
	if err != nil {
		return nil, err
	}
	outScale, outZP, err := c.activationQuant("output", out)
	if err != nil {
		return nil, err
	}
	k.p = ref.NewMeanInt8(s[0], s[1], s[2], s[3], inScale, inZP, outScale, outZP)
	if c.b.xnnpack {
		k.p = ref.NewMeanXNNPACK(s[0], s[1], s[2], s[3], inScale, inZP, outScale, outZP)
	}
	if k.p.Shift > 30 {
		return nil, c.errorf("input scale %g / output scale %g is far above 1; the quantization parameters are broken", inScale, outScale)
	}
	return k, nil
}

type meanKernel struct {
	in, out   int
	quantized bool
	p         ref.Mean
}

func (k *meanKernel) eval(ts []Tensor, _ *fast.Runner) {
	if k.quantized {
		meanInt8(&k.p, ts[k.in].Int8(), ts[k.out].Int8())
	} else {
		meanFloat(&k.p, ts[k.in].Float32(), ts[k.out].Float32())
	}
}

// meanFloat is ref.MeanFloat summed pixel by pixel over 64 channels at a
// time (contiguous floats) instead of channel by channel (a stride of C
// floats): each channel's float32 sum still adds its pixels in h, w order,
// so every rounding is the reference's, and so is the division.
func meanFloat(p *ref.Mean, input, output []float32) {
	hw := p.H * p.W
	n := float32(hw)
	for b := range p.Batch {
		for c0 := 0; c0 < p.C; c0 += 64 {
			var sums [64]float32
			w := min(64, p.C-c0)
			acc := sums[:w]
			for i := range hw {
				px := input[(b*hw+i)*p.C+c0:][:w]
				for c, x := range px {
					acc[c] += x
				}
			}
			out := output[b*p.C+c0:][:w]
			for c, s := range acc {
				out[c] = s / n
			}
		}
	}
}

// meanInt8 is ref.MeanInt8 with the sums taken pixel by pixel over up to
// 256 contiguous channels at a time (fast.SumPixelsInt8: NEON widening
// adds on arm64) instead of channel by channel (a stride of C bytes);
// int32 sums wrap alike in any order, and the requantization is ref's.
func meanInt8(p *ref.Mean, input, output []int8) {
	hw := p.H * p.W
	n := int64(hw)
	for b := range p.Batch {
		for c0 := 0; c0 < p.C; c0 += 256 {
			var sums [256]int32
			w := min(256, p.C-c0)
			acc := sums[:w]
			fast.SumPixelsInt8(acc, input[b*hw*p.C+c0:], hw, p.C)
			for k, sum := range acc {
				shifted := int32(int64(sum) - int64(p.InputZeroPoint)*n)
				var v int8
				if p.Scale != 0 {
					v = ref.RequantizeFP32(shifted, p.Scale, p.OutputZeroPoint, math.MinInt8, math.MaxInt8)
				} else {
					x := ref.MultiplyByQuantizedMultiplier(shifted, p.Multiplier, p.Shift) + p.OutputZeroPoint
					v = int8(min(max(x, math.MinInt8), math.MaxInt8))
				}
				output[b*p.C+c0+k] = v
			}
		}
	}
}
