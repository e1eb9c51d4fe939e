package interp

import (
	"slices"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
)

// fusePadPools lets an int8 MAX_POOL_2D read the input of the PAD before it
// instead of the PAD's output (ResNet's stem: PAD then a 3x3 stride-2 max
// pool), with the PAD's top and left sizes as the pool's own padding: the
// pool skips the window positions outside the unpadded input, as TFLite's
// max pool does with SAME padding (ref.Pool.window), so the padded tensor is
// never written nor read back.
//
// It is exact only where the pad value is -128 (the PAD's zero point is
// -128, as after a ReLU whose output range starts at 0): the padded
// positions then hold -128, the least int8, so max(-128, v) == v for every
// int8 v and a padded position never changes a window's max over the real
// positions; a window with no real position would give -128 both ways
// (ref.MaxPoolInt8 starts its max at -128), but such windows are excluded
// all the same. Any other pad value can win a max and is left alone, as
// are float PADs (padding with 0.0 can win).
//
// Conditions: the PAD's output is read by this pool alone and is no graph
// output; the pad is spatial only (batch and channel pads zero; the rank is
// 4, which the pool requires); the pool has VALID padding (its output size
// is then that of the padded tensor's windows, PadH = PadW = 0); no window
// lies entirely in the padding; and the pool is the operator right after
// the PAD. That last one keeps the memory plan right without touching it:
// planMemory plans from the model's operators, where the PAD is the last
// reader of its input (the pool, which now reads it one step later, is not
// listed); b.writtenFrom makes the pool's output live from the PAD's step,
// so it never shares bytes with the PAD's input, and no other tensor is
// written at the pool's step, so nothing else can take those bytes either.
// The PAD's output keeps its planned bytes, which nobody writes or reads.
//
// The PAD's kernel becomes fusedKernel{with: the pool's index} (one kernel
// per model operator stays true). Not with Options.KeepAll, whose point is
// that every tensor keeps its value; and only on the fast max pool (the
// reference kernels, Options.Kernels "ref", run the model as it is). It
// must run while prog.kernels is still one kernel per model operator at the
// operator's index.
func (b *builder) fusePadPools(prog *program) {
	if b.opts.KeepAll {
		return
	}
	for i := 0; i+1 < len(prog.kernels); i++ {
		pd, ok := prog.kernels[i].(*padKernel)
		if !ok || !pd.quantized || pd.value != -128 {
			continue
		}
		j := i + 1
		mp, ok := prog.kernels[j].(*fastMaxPoolKernel)
		if !ok || mp.in != pd.out || b.uses[pd.out] != 1 || slices.Contains(prog.outputs, pd.out) {
			continue
		}
		o, ok := b.m.Operators[j].Options.(*resnet.Pool2DOptions)
		if !ok || o.Padding != resnet.PaddingValid || mp.p.PadH != 0 || mp.p.PadW != 0 {
			continue
		}
		in, out, bf := pd.p.InShape, pd.p.OutShape, pd.p.Before
		if bf[0] != 0 || in[0] != out[0] || bf[3] != 0 || in[3] != out[3] {
			continue
		}
		p := mp.p
		if p.Batch != out[0] || p.InH != out[1] || p.InW != out[2] || p.C != out[3] {
			continue // cannot happen: the pool checked its input's shape
		}
		p.InH, p.InW, p.PadH, p.PadW = in[1], in[2], bf[1], bf[2]
		if !windowsTouchInput(p.OutH, p.StrideH, p.FilterH, p.PadH, p.InH) || !windowsTouchInput(p.OutW, p.StrideW, p.FilterW, p.PadW, p.InW) {
			continue
		}
		prog.kernels[j] = &fastMaxPoolKernel{in: pd.in, out: mp.out, p: p, m: fast.NewMaxPool(&p)}
		prog.kernels[i] = &fusedKernel{with: j}
		if b.writtenFrom == nil {
			b.writtenFrom = make(map[int]int)
		}
		b.writtenFrom[mp.out] = i
		i++ // the pool
	}
}

// windowsTouchInput reports whether each of n windows of size filter,
// stride apart, starting pad before an input of size in, holds at least one
// input position (positions -pad + k*stride .. +filter-1 meet [0, in)).
// The windows' starts increase, so the first and the last decide.
func windowsTouchInput(n, stride, filter, pad, in int) bool {
	first, last := -pad, (n-1)*stride-pad
	return first+filter > 0 && last < in
}
