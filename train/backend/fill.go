package backend

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// filledBackend wraps GoMLX's pure-Go backend (simplego) and supplies the ops that
// convolutional-net training needs but simplego v0.26.0 lacks, each composed of ops it has:
//
//   - Pad: the gradient of every Slice (strided subsampling, im2col patches, shortcuts).
//   - Reverse: the convolution input gradient flips the kernel.
//   - BatchNormForTraining / BatchNormGradient / BatchNormForInference: the fused batch norm
//     that layers/batchnorm uses, so gradients flow through the batch statistics exactly as
//     on XLA.
//
// Everything else (buffers, compilation, execution) is simplego's own.
type filledBackend struct {
	backends.Backend
}

func (b *filledBackend) Name() string   { return b.Backend.Name() }
func (b *filledBackend) String() string { return b.Backend.Name() }
func (b *filledBackend) Description() string {
	return b.Backend.Description() + " (with Pad, Reverse and batch-norm ops composed by shortcut/train/backend)"
}

func (b *filledBackend) Capabilities() backends.Capabilities {
	c := b.Backend.Capabilities().Clone()
	for _, op := range []backends.OpType{backends.OpTypePad, backends.OpTypeReverse,
		backends.OpTypeBatchNormForTraining, backends.OpTypeBatchNormGradient, backends.OpTypeBatchNormForInference,
		backends.OpTypeSelectAndScatterMax} {
		c.Operations[op] = true
	}
	return c
}

func (b *filledBackend) Builder(name string) backends.Builder {
	return &filledBuilder{Builder: b.Backend.Builder(name)}
}

// filledBuilder forwards every op to simplego's builder except the ones composed here.
type filledBuilder struct {
	backends.Builder
}

// ops chains builder calls and keeps the first error, so the composed ops read as formulas.
type ops struct {
	b   backends.Builder
	err error
}

func (o *ops) shape(x backends.Op) shapes.Shape {
	if o.err != nil {
		return shapes.Shape{}
	}
	s, err := o.b.OpShape(x)
	if err != nil {
		o.err = err
	}
	return s
}

func (o *ops) do(f func() (backends.Op, error)) backends.Op {
	if o.err != nil {
		return nil
	}
	r, err := f()
	if err != nil {
		o.err = err
		return nil
	}
	return r
}

// scalar returns a scalar constant v of the given dtype.
func (o *ops) scalar(dtype dtypes.DType, v float64) backends.Op {
	c := o.do(func() (backends.Op, error) { return o.b.Constant([]float64{v}) })
	if dtype == dtypes.Float64 {
		return c
	}
	return o.do(func() (backends.Op, error) { return o.b.ConvertDType(c, dtype) })
}

// broadcast expands x (whose axes map to outAxes of shape) to shape.
func (o *ops) broadcast(x backends.Op, shape shapes.Shape, outAxes ...int) backends.Op {
	return o.do(func() (backends.Op, error) { return o.b.BroadcastInDim(x, shape, outAxes) })
}

func (o *ops) slice(x backends.Op, axis, start, limit int) backends.Op {
	s := o.shape(x)
	if o.err != nil {
		return nil
	}
	starts := make([]int, s.Rank())
	limits := append([]int(nil), s.Dimensions...)
	strides := make([]int, s.Rank())
	for i := range strides {
		strides[i] = 1
	}
	starts[axis], limits[axis] = start, limit
	return o.do(func() (backends.Op, error) { return o.b.Slice(x, starts, limits, strides) })
}

func (o *ops) concat(axis int, xs ...backends.Op) backends.Op {
	if len(xs) == 1 {
		return xs[0]
	}
	return o.do(func() (backends.Op, error) { return o.b.Concatenate(axis, xs...) })
}

func (o *ops) reshape(x backends.Op, dims ...int) backends.Op {
	return o.do(func() (backends.Op, error) { return o.b.Reshape(x, dims...) })
}

func (o *ops) add(a, b backends.Op) backends.Op {
	return o.do(func() (backends.Op, error) { return o.b.Add(a, b) })
}
func (o *ops) sub(a, b backends.Op) backends.Op {
	return o.do(func() (backends.Op, error) { return o.b.Sub(a, b) })
}
func (o *ops) mul(a, b backends.Op) backends.Op {
	return o.do(func() (backends.Op, error) { return o.b.Mul(a, b) })
}
func (o *ops) rsqrt(a backends.Op) backends.Op {
	return o.do(func() (backends.Op, error) { return o.b.Rsqrt(a) })
}
func (o *ops) sum(x backends.Op, axes ...int) backends.Op {
	return o.do(func() (backends.Op, error) { return o.b.ReduceSum(x, axes...) })
}

// fillBlock is the scalar fill broadcast to x's shape with dimension n on axis.
func (o *ops) fillBlock(fill backends.Op, like shapes.Shape, axis, n int) backends.Op {
	dims := append([]int(nil), like.Dimensions...)
	dims[axis] = n
	return o.broadcast(fill, shapes.Make(like.DType, dims...))
}

// Pad composes XLA's Pad from Reshape, Concatenate, Slice and broadcast constants.
// Interior padding interleaves a fill block after every element (then drops the last one);
// negative start/end padding crops.
func (fb *filledBuilder) Pad(x, fillValue backends.Op, axesConfig ...backends.PadAxis) (backends.Op, error) {
	o := &ops{b: fb.Builder}
	s := o.shape(x)
	if o.err != nil {
		return nil, o.err
	}
	if len(axesConfig) > s.Rank() {
		return nil, fmt.Errorf("Pad: %d axis configurations for an operand of rank %d (%s)", len(axesConfig), s.Rank(), s)
	}
	for axis, cfg := range axesConfig {
		if cfg.Interior < 0 {
			return nil, fmt.Errorf("Pad: negative interior padding %d on axis %d of %s", cfg.Interior, axis, s)
		}
		s = o.shape(x)
		n := s.Dimensions[axis]
		if cfg.Interior > 0 && n > 1 {
			// [..., n, ...] -> [..., n, 1, ...] ++ fill[..., n, interior, ...] -> [..., n*(1+interior), ...].
			withUnit := append(append(append([]int(nil), s.Dimensions[:axis+1]...), 1), s.Dimensions[axis+1:]...)
			xu := o.reshape(x, withUnit...)
			fillDims := append([]int(nil), withUnit...)
			fillDims[axis+1] = cfg.Interior
			f := o.broadcast(fillValue, shapes.Make(s.DType, fillDims...))
			joined := o.concat(axis+1, xu, f)
			flat := append([]int(nil), s.Dimensions...)
			flat[axis] = n * (1 + cfg.Interior)
			x = o.reshape(joined, flat...)
			x = o.slice(x, axis, 0, (n-1)*(1+cfg.Interior)+1)
			s = o.shape(x)
			n = s.Dimensions[axis]
		}
		// Crops first, so a negative pad at one end and a positive one at the other compose.
		lo, hi := 0, n
		if cfg.Start < 0 {
			lo = -cfg.Start
		}
		if cfg.End < 0 {
			hi = n + cfg.End
		}
		if lo > hi {
			return nil, fmt.Errorf("Pad: axis %d of %s cropped below zero size (start %d, end %d)", axis, s, cfg.Start, cfg.End)
		}
		if lo != 0 || hi != n {
			x = o.slice(x, axis, lo, hi)
			s = o.shape(x)
		}
		parts := make([]backends.Op, 0, 3)
		if cfg.Start > 0 {
			parts = append(parts, o.fillBlock(fillValue, s, axis, cfg.Start))
		}
		parts = append(parts, x)
		if cfg.End > 0 {
			parts = append(parts, o.fillBlock(fillValue, s, axis, cfg.End))
		}
		x = o.concat(axis, parts...)
	}
	return x, o.err
}

// Reverse composes the flip of each axis from unit slices concatenated in reverse order.
// It is meant for small tensors (convolution kernels, whose spatial axes are 1 to 7 long).
func (fb *filledBuilder) Reverse(x backends.Op, axes ...int) (backends.Op, error) {
	o := &ops{b: fb.Builder}
	for _, axis := range axes {
		s := o.shape(x)
		if o.err != nil {
			return nil, o.err
		}
		if axis < 0 || axis >= s.Rank() {
			return nil, fmt.Errorf("Reverse: axis %d out of range for %s", axis, s)
		}
		n := s.Dimensions[axis]
		if n <= 1 {
			continue
		}
		parts := make([]backends.Op, n)
		for i := range n {
			parts[n-1-i] = o.slice(x, axis, i, i+1)
		}
		x = o.concat(axis, parts...)
	}
	return x, o.err
}

// bnAxes returns every axis but the feature axis and the number of elements they hold.
func bnAxes(s shapes.Shape, featureAxis int) (axes []int, count int, err error) {
	if featureAxis < 0 || featureAxis >= s.Rank() {
		return nil, 0, fmt.Errorf("batch norm: feature axis %d out of range for %s", featureAxis, s)
	}
	count = 1
	for i, d := range s.Dimensions {
		if i != featureAxis {
			axes = append(axes, i)
			count *= d
		}
	}
	return axes, count, nil
}

// BatchNormForTraining normalizes with the batch statistics (biased variance, as XLA does).
func (fb *filledBuilder) BatchNormForTraining(operand, scale, offset backends.Op, epsilon float32, featureAxis int) (
	normalized, batchMean, batchVariance backends.Op, err error) {
	o := &ops{b: fb.Builder}
	s := o.shape(operand)
	if o.err != nil {
		return nil, nil, nil, o.err
	}
	axes, n, err := bnAxes(s, featureAxis)
	if err != nil {
		return nil, nil, nil, err
	}
	invN := o.scalar(s.DType, 1/float64(n))
	featShape := shapes.Make(s.DType, s.Dimensions[featureAxis])
	mean := o.mul(o.sum(operand, axes...), o.broadcast(invN, featShape))
	centered := o.sub(operand, o.broadcast(mean, s, featureAxis))
	variance := o.mul(o.sum(o.mul(centered, centered), axes...), o.broadcast(invN, featShape))
	inv := o.rsqrt(o.add(variance, o.broadcast(o.scalar(s.DType, float64(epsilon)), featShape)))
	normalized = o.add(o.mul(centered, o.broadcast(o.mul(inv, scale), s, featureAxis)), o.broadcast(offset, s, featureAxis))
	return normalized, mean, variance, o.err
}

// BatchNormForInference normalizes with given statistics.
func (fb *filledBuilder) BatchNormForInference(operand, scale, offset, mean, variance backends.Op, epsilon float32, featureAxis int) (backends.Op, error) {
	o := &ops{b: fb.Builder}
	s := o.shape(operand)
	if o.err != nil {
		return nil, o.err
	}
	if _, _, err := bnAxes(s, featureAxis); err != nil {
		return nil, err
	}
	featShape := shapes.Make(s.DType, s.Dimensions[featureAxis])
	inv := o.rsqrt(o.add(variance, o.broadcast(o.scalar(s.DType, float64(epsilon)), featShape)))
	centered := o.sub(operand, o.broadcast(mean, s, featureAxis))
	return o.add(o.mul(centered, o.broadcast(o.mul(inv, scale), s, featureAxis)), o.broadcast(offset, s, featureAxis)), o.err
}

// BatchNormGradient is the gradient of BatchNormForTraining with respect to operand, scale and
// offset, including the paths through the batch mean and variance:
//
//	xhat = (x-mean)/sqrt(var+eps); dOffset = sum(dy); dScale = sum(dy*xhat)
//	dx = scale/sqrt(var+eps) * (dy - dOffset/N - xhat*dScale/N)
func (fb *filledBuilder) BatchNormGradient(operand, scale, mean, variance, gradOutput backends.Op, epsilon float32, featureAxis int) (
	gradOperand, gradScale, gradOffset backends.Op, err error) {
	o := &ops{b: fb.Builder}
	s := o.shape(operand)
	if o.err != nil {
		return nil, nil, nil, o.err
	}
	axes, n, err := bnAxes(s, featureAxis)
	if err != nil {
		return nil, nil, nil, err
	}
	featShape := shapes.Make(s.DType, s.Dimensions[featureAxis])
	inv := o.rsqrt(o.add(variance, o.broadcast(o.scalar(s.DType, float64(epsilon)), featShape)))
	xhat := o.mul(o.sub(operand, o.broadcast(mean, s, featureAxis)), o.broadcast(inv, s, featureAxis))
	gradOffset = o.sum(gradOutput, axes...)
	gradScale = o.sum(o.mul(gradOutput, xhat), axes...)
	invN := o.broadcast(o.scalar(s.DType, 1/float64(n)), featShape)
	meanDy := o.broadcast(o.mul(gradOffset, invN), s, featureAxis)
	meanDyXhat := o.broadcast(o.mul(gradScale, invN), s, featureAxis)
	inner := o.sub(o.sub(gradOutput, meanDy), o.mul(xhat, meanDyXhat))
	gradOperand = o.mul(inner, o.broadcast(o.mul(scale, inv), s, featureAxis))
	return gradOperand, gradScale, gradOffset, o.err
}

// ConvGeneral forwards to simplego after filling in unit strides and dilations: simplego
// v0.26.0's shape inference reads nil strides as 0, and its dilated-convolution loop indexes
// nil kernel dilations (a panic in a worker goroutine, which kills the process); GoMLX's own
// convolution gradient builds its reverse convolutions with exactly those nil values.
func (fb *filledBuilder) ConvGeneral(input, kernel backends.Op, axes backends.ConvolveAxesConfig,
	strides []int, paddings [][2]int, inputDilations, kernelDilations []int,
	channelGroupCount, batchGroupCount int) (backends.Op, error) {
	ones := func(v []int) []int {
		if len(v) != 0 {
			return v
		}
		v = make([]int, len(axes.InputSpatial))
		for i := range v {
			v[i] = 1
		}
		return v
	}
	strides, inputDilations, kernelDilations = ones(strides), ones(inputDilations), ones(kernelDilations)
	return fb.Builder.ConvGeneral(input, kernel, axes, strides, paddings, inputDilations, kernelDilations,
		channelGroupCount, batchGroupCount)
}

// SelectAndScatterMax composes the max-pool gradient: every window offset is a strided slice
// of the (lowest-value padded) operand; the first offset holding the window maximum receives
// the source value, scattered back by an interior Pad, and the padding is cropped at the end.
func (fb *filledBuilder) SelectAndScatterMax(operand, source backends.Op, windowDimensions, windowStrides []int,
	paddings [][2]int) (backends.Op, error) {
	o := &ops{b: fb.Builder}
	s := o.shape(operand)
	src := o.shape(source)
	if o.err != nil {
		return nil, o.err
	}
	rank := s.Rank()
	if len(windowDimensions) != rank || (len(windowStrides) != 0 && len(windowStrides) != rank) ||
		(len(paddings) != 0 && len(paddings) != rank) || src.Rank() != rank {
		return nil, fmt.Errorf("SelectAndScatterMax: window %v, strides %v, paddings %v do not match operand %s / source %s",
			windowDimensions, windowStrides, paddings, s, src)
	}
	stride := func(a int) int {
		if len(windowStrides) == 0 {
			return 1
		}
		return windowStrides[a]
	}
	pad := func(a int) [2]int {
		if len(paddings) == 0 {
			return [2]int{}
		}
		return paddings[a]
	}
	padCfg := make([]backends.PadAxis, rank)
	for a := range rank {
		padCfg[a] = backends.PadAxis{Start: pad(a)[0], End: pad(a)[1]}
	}
	lowest := o.scalar(s.DType, math.Inf(-1))
	padded := o.do(func() (backends.Op, error) { return fb.Pad(operand, lowest, padCfg...) })
	ps := o.shape(padded)
	if o.err != nil {
		return nil, o.err
	}

	// Enumerate window offsets in row-major order (XLA selects the first maximum).
	offsets := [][]int{make([]int, rank)}
	for a := range rank {
		var next [][]int
		for _, off := range offsets {
			for k := range windowDimensions[a] {
				c := append([]int(nil), off...)
				c[a] = k
				next = append(next, c)
			}
		}
		offsets = next
	}
	cands := make([]backends.Op, len(offsets))
	var maxOp backends.Op
	for i, off := range offsets {
		starts := make([]int, rank)
		limits := make([]int, rank)
		strides := make([]int, rank)
		for a := range rank {
			starts[a] = off[a]
			limits[a] = off[a] + (src.Dimensions[a]-1)*stride(a) + 1
			strides[a] = stride(a)
		}
		cands[i] = o.do(func() (backends.Op, error) { return o.b.Slice(padded, starts, limits, strides) })
		if maxOp == nil {
			maxOp = cands[i]
		} else {
			maxOp = o.do(func() (backends.Op, error) { return o.b.Max(maxOp, cands[i]) })
		}
	}
	zero := o.broadcast(o.scalar(s.DType, 0), src)
	var taken, total backends.Op
	for i, off := range offsets {
		isMax := o.do(func() (backends.Op, error) { return o.b.Equal(cands[i], maxOp) })
		sel := isMax
		if taken != nil {
			notTaken := o.do(func() (backends.Op, error) { return o.b.LogicalNot(taken) })
			sel = o.do(func() (backends.Op, error) { return o.b.LogicalAnd(isMax, notTaken) })
			taken = o.do(func() (backends.Op, error) { return o.b.LogicalOr(taken, sel) })
		} else {
			taken = sel
		}
		contrib := o.do(func() (backends.Op, error) { return o.b.Where(sel, source, zero) })
		back := make([]backends.PadAxis, rank)
		for a := range rank {
			span := (src.Dimensions[a]-1)*stride(a) + 1
			back[a] = backends.PadAxis{Start: off[a], End: ps.Dimensions[a] - off[a] - span, Interior: stride(a) - 1}
		}
		scattered := o.do(func() (backends.Op, error) { return fb.Pad(contrib, o.scalar(s.DType, 0), back...) })
		if total == nil {
			total = scattered
		} else {
			total = o.add(total, scattered)
		}
	}
	crop := make([]backends.PadAxis, rank)
	for a := range rank {
		crop[a] = backends.PadAxis{Start: -pad(a)[0], End: -pad(a)[1]}
	}
	return o.do(func() (backends.Op, error) { return fb.Pad(total, o.scalar(s.DType, 0), crop...) }), o.err
}
