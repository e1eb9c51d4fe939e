package interp

import (
	"slices"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// ADD: Prepare and Eval.

func init() {
	register(resnet.OpAdd, func(c *opContext) (kernel, error) { return c.prepareAdd() })
}

func (c *opContext) prepareAdd() (kernel, error) {
	var o resnet.AddOptions
	switch opt := c.op.Options.(type) {
	case *resnet.AddOptions:
		o = *opt
	case nil:
	default:
		return nil, c.errorf("options are %T; want *resnet.AddOptions", opt)
	}
	in1, out, err := c.unaryIO(2, 2, resnet.Int8, resnet.Float32)
	if err != nil {
		return nil, err
	}
	in2, err := c.input(1, "input 2", false)
	if err != nil {
		return nil, err
	}
	typ := c.tensor(in1).Type
	if err := c.sameType("input 2", in2, typ); err != nil {
		return nil, err
	}
	s1, s2 := c.tensor(in1).Shape, c.tensor(in2).Shape
	if !slices.Equal(s1, s2) {
		return nil, c.errorf("inputs %s %v and %s %v differ in shape; broadcasting is not supported", c.b.tensorRef(in1), s1, c.b.tensorRef(in2), s2)
	}
	if err := c.checkOutputShape(out, slices.Clone(s1)); err != nil {
		return nil, err
	}
	quantized := typ == resnet.Int8
	k := &addKernel{in1: in1, in2: in2, out: out, quantized: quantized}
	lo, hi, flo, fhi, err := c.activation(o.Activation, out, quantized)
	if err != nil {
		return nil, err
	}
	if !quantized {
		k.p = ref.Add{FloatMin: flo, FloatMax: fhi}
		return k, nil
	}
	sc1, z1, err := c.activationQuant("input 1", in1)
	if err != nil {
		return nil, err
	}
	sc2, z2, err := c.activationQuant("input 2", in2)
	if err != nil {
		return nil, err
	}
	so, zo, err := c.activationQuant("output", out)
	if err != nil {
		return nil, err
	}
	if k.p, err = ref.NewAddInt8(sc1, z1, sc2, z2, so, zo, lo, hi); err != nil {
		return nil, c.errorf("scales %g + %g -> %g: %v", sc1, sc2, so, err)
	}
	if c.b.xnnpack {
		// Where XNNPACK refuses the scales, TFLite's own kernel runs it.
		if x, err := ref.NewAddXNNPACK(sc1, z1, sc2, z2, so, zo, lo, hi); err == nil {
			k.p = x
		}
	}
	if c.b.useFast {
		if c.b.addCache == nil {
			c.b.addCache = make(map[ref.Add]*fast.Add)
		}
		return &fastAddKernel{in1: in1, in2: in2, out: out, a: fast.NewAdd(&k.p, c.b.addCache)}, nil
	}
	return k, nil
}

// fastAddKernel is an int8 ADD run by resnet/internal/fast: its exact SIMD
// arithmetic where the CPU has one (amd64), else a table of all 65,536
// input pairs (exact by construction).
type fastAddKernel struct {
	in1, in2, out int
	a             *fast.Add
}

func (k *fastAddKernel) eval(ts []Tensor, run *fast.Runner) {
	run.Add(k.a, ts[k.in1].Int8(), ts[k.in2].Int8(), ts[k.out].Int8())
}

type addKernel struct {
	in1, in2, out int
	quantized     bool
	p             ref.Add
}

func (k *addKernel) eval(ts []Tensor, _ *fast.Runner) {
	if k.quantized {
		ref.AddInt8(&k.p, ts[k.in1].Int8(), ts[k.in2].Int8(), ts[k.out].Int8())
	} else {
		ref.AddFloat(&k.p, ts[k.in1].Float32(), ts[k.in2].Float32(), ts[k.out].Float32())
	}
}

// fuseAdds gives an ADD to the convolution just before it when that
// convolution's output is one of the ADD's inputs and read by nothing else
// (ResNet's last convolution of a block and the shortcut): the
// convolution's output stage adds the other input, and the convolution's
// output is never written nor read back. Float: fast.Runner.FConvAdd, the
// same float32 operations ref.AddFloat performs and the clamp. int8: where
// the convolution's kernel family has a fused path (fast.Conv.FuseAdd),
// fast.Runner.ConvAdd, bit-exact with the convolution followed by the ADD.
// Either way the ADD's output is unchanged. The ADD's kernel becomes a
// fusedKernel, and its output is written at the convolution's step: it
// takes over the residual's bytes where nothing reads the residual
// afterwards (b.aliasOf; the residual is alive at the convolution's step,
// so apart from its input), otherwise planMemory keeps it apart from the
// convolution's input (b.writtenFrom). Not with Options.KeepAll, whose
// point is that every tensor keeps its value.
func (b *builder) fuseAdds(prog *program) {
	if b.opts.KeepAll {
		return
	}
	lastRead := make(map[int]int) // activation tensor -> the last operator reading it
	for oi := range b.m.Operators {
		for _, t := range b.m.Operators[oi].Inputs {
			if t >= 0 {
				lastRead[t] = oi
			}
		}
	}
	for i := 0; i+1 < len(prog.kernels); i++ {
		var cin, cout, in1, in2, aout int
		switch cv := prog.kernels[i].(type) {
		case *fastFConvKernel:
			ad, ok := prog.kernels[i+1].(*addKernel)
			if !ok || ad.quantized {
				continue
			}
			cin, cout, in1, in2, aout = cv.in, cv.out, ad.in1, ad.in2, ad.out
		case *fastConvKernel:
			ad, ok := prog.kernels[i+1].(*fastAddKernel)
			if !ok {
				continue
			}
			cin, cout, in1, in2, aout = cv.in, cv.out, ad.in1, ad.in2, ad.out
		default:
			continue
		}
		var res int
		switch {
		case in1 == in2:
			continue
		case cout == in1:
			res = in2
		case cout == in2:
			res = in1
		default:
			continue
		}
		if b.uses[cout] != 1 || slices.Contains(prog.outputs, cout) || aout == cin || aout == res {
			continue
		}
		switch cv := prog.kernels[i].(type) {
		case *fastFConvKernel:
			ad := prog.kernels[i+1].(*addKernel)
			prog.kernels[i] = &fastFConvAddKernel{in: cin, res: res, out: aout, c: cv.c, lo: ad.p.FloatMin, hi: ad.p.FloatMax}
		case *fastConvKernel:
			if !cv.c.FuseAdd(prog.kernels[i+1].(*fastAddKernel).a, cout == in1) {
				continue
			}
			prog.kernels[i] = &fastConvAddKernel{in: cin, res: res, out: aout, c: cv.c}
		}
		prog.kernels[i+1] = &fusedKernel{with: i}
		i++ // the ADD
		if b.m.Tensors[res].Data == nil && !b.isInput[res] && lastRead[res] == i && res != cin && !slices.Contains(prog.outputs, res) {
			// The ADD (step i after this loop's i++) is the residual's last
			// reader and the convolution does not read it: the sum replaces
			// it in place (each value read just before its sum is written),
			// which spares the memory traffic of a third tensor (ResNet's
			// identity shortcuts: the block input, read by the first
			// convolution earlier and by the ADD last).
			if b.aliasOf == nil {
				b.aliasOf = make(map[int]int)
			}
			b.aliasOf[aout] = res
			continue
		}
		if b.writtenFrom == nil {
			b.writtenFrom = make(map[int]int)
		}
		b.writtenFrom[aout] = i - 1
	}
}

// fastConvAddKernel is an int8 CONV_2D and the ADD that follows it (see
// fuseAdds).
type fastConvAddKernel struct {
	in, res, out int
	c            *fast.Conv
}

func (k *fastConvAddKernel) eval(ts []Tensor, run *fast.Runner) {
	run.ConvAdd(k.c, ts[k.in].Int8(), ts[k.res].Int8(), ts[k.out].Int8())
}

// fastFConvAddKernel is a float CONV_2D and the float ADD that follows it
// (see fuseAdds).
type fastFConvAddKernel struct {
	in, res, out int
	c            *fast.FConv
	lo, hi       float32
}

func (k *fastFConvAddKernel) eval(ts []Tensor, run *fast.Runner) {
	run.FConvAdd(k.c, ts[k.in].Float32(), ts[k.res].Float32(), ts[k.out].Float32(), k.lo, k.hi)
}
