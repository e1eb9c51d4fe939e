// Package build constructs float32 TFLite graphs in Go: single operators and
// chains for tests, and whole ResNets (CIFAR ResNet-20..110, ImageNet
// ResNet-18/34/50, and their plain twins) from given weights. Batch norm is
// expected to be folded into the convolution weights and biases already.
//
// The graphs it returns are float models; quant/ turns them into int8 ones.
// Weight layouts are TFLite's: convolution OHWI, depthwise [1,H,W,C*M],
// fully connected [out,in]; activations are NHWC.
package build

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/shortcut-edge/shortcut/resnet"
)

// Graph accumulates operators. Methods return the index of the tensor they
// produce; the first error sticks and is returned by Finish, so call sites
// can chain without checking each step.
type Graph struct {
	m   resnet.Model
	err error
}

// New starts an empty graph with a description.
func New(description string) *Graph {
	return &Graph{m: resnet.Model{Description: description}}
}

func (g *Graph) fail(format string, args ...any) int {
	if g.err == nil {
		g.err = fmt.Errorf("build: "+format, args...)
	}
	return -1
}

func (g *Graph) bad(ts ...int) bool {
	if g.err != nil {
		return true
	}
	for _, t := range ts {
		if t < 0 || t >= len(g.m.Tensors) {
			g.fail("tensor index %d out of range", t)
			return true
		}
	}
	return false
}

// Shape returns a copy of a tensor's shape.
func (g *Graph) Shape(t int) []int {
	if t < 0 || t >= len(g.m.Tensors) {
		return nil
	}
	return append([]int(nil), g.m.Tensors[t].Shape...)
}

func (g *Graph) tensor(name string, typ resnet.DType, shape []int, data []byte) int {
	g.m.Tensors = append(g.m.Tensors, resnet.Tensor{Name: name, Type: typ, Shape: append([]int(nil), shape...), Data: data})
	return len(g.m.Tensors) - 1
}

func (g *Graph) op(code resnet.OpCode, opts resnet.Options, ins []int, outName string, outShape []int) int {
	out := g.tensor(outName, resnet.Float32, outShape, nil)
	g.m.Operators = append(g.m.Operators, resnet.Operator{Op: code, Version: 1, Inputs: ins, Outputs: []int{out}, Options: opts})
	return out
}

// Float32Bytes encodes values little-endian, as TFLite buffers hold them.
func Float32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// Int32Bytes encodes values little-endian.
func Int32Bytes(v []int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

func product(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// Input adds a float32 graph input.
func (g *Graph) Input(name string, shape ...int) int {
	t := g.tensor(name, resnet.Float32, shape, nil)
	g.m.Inputs = append(g.m.Inputs, t)
	return t
}

// Output marks a tensor as a graph output, in call order.
func (g *Graph) Output(t int) {
	if g.bad(t) {
		return
	}
	g.m.Outputs = append(g.m.Outputs, t)
}

// Const adds a float32 constant.
func (g *Graph) Const(name string, shape []int, data []float32) int {
	if len(data) != product(shape) {
		return g.fail("constant %q: %d values for shape %v", name, len(data), shape)
	}
	return g.tensor(name, resnet.Float32, shape, Float32Bytes(data))
}

func (g *Graph) constInt32(name string, shape []int, data []int32) int {
	return g.tensor(name, resnet.Int32, shape, Int32Bytes(data))
}

// outSize is TFLite's output size rule for SAME and VALID padding.
func outSize(in, k, stride, dilation int, p resnet.Padding) int {
	ek := (k-1)*dilation + 1
	if p == resnet.PaddingSame {
		return (in + stride - 1) / stride
	}
	return (in - ek + stride) / stride
}

// ConvSpec describes a convolution; Weights are OHWI, Bias has Out values
// (nil means zeros).
type ConvSpec struct {
	Out, KH, KW      int
	StrideH, StrideW int
	Padding          resnet.Padding
	Act              resnet.Activation
	Weights, Bias    []float32
	Dilation         int
}

// Conv2D adds a CONV_2D.
func (g *Graph) Conv2D(name string, x int, s ConvSpec) int {
	if g.bad(x) {
		return -1
	}
	in := g.m.Tensors[x].Shape
	if len(in) != 4 {
		return g.fail("conv %q: input must be NHWC, has shape %v", name, in)
	}
	if s.StrideH == 0 {
		s.StrideH = 1
	}
	if s.StrideW == 0 {
		s.StrideW = 1
	}
	if s.Dilation == 0 {
		s.Dilation = 1
	}
	if s.Bias == nil {
		s.Bias = make([]float32, s.Out)
	}
	wShape := []int{s.Out, s.KH, s.KW, in[3]}
	w := g.Const(name+"/weights", wShape, s.Weights)
	b := g.Const(name+"/bias", []int{s.Out}, s.Bias)
	if g.err != nil {
		return -1
	}
	oh := outSize(in[1], s.KH, s.StrideH, s.Dilation, s.Padding)
	ow := outSize(in[2], s.KW, s.StrideW, s.Dilation, s.Padding)
	if oh <= 0 || ow <= 0 {
		return g.fail("conv %q: input %v too small for kernel %dx%d", name, in, s.KH, s.KW)
	}
	return g.op(resnet.OpConv2D, &resnet.Conv2DOptions{Padding: s.Padding, StrideW: s.StrideW, StrideH: s.StrideH,
		Activation: s.Act, DilationW: s.Dilation, DilationH: s.Dilation},
		[]int{x, w, b}, name, []int{in[0], oh, ow, s.Out})
}

// DepthwiseSpec describes a depthwise convolution; Weights are [1,KH,KW,C*Mult].
type DepthwiseSpec struct {
	KH, KW           int
	Mult             int
	StrideH, StrideW int
	Padding          resnet.Padding
	Act              resnet.Activation
	Weights, Bias    []float32
}

// DepthwiseConv2D adds a DEPTHWISE_CONV_2D.
func (g *Graph) DepthwiseConv2D(name string, x int, s DepthwiseSpec) int {
	if g.bad(x) {
		return -1
	}
	in := g.m.Tensors[x].Shape
	if len(in) != 4 {
		return g.fail("depthwise %q: input must be NHWC, has shape %v", name, in)
	}
	if s.Mult == 0 {
		s.Mult = 1
	}
	if s.StrideH == 0 {
		s.StrideH = 1
	}
	if s.StrideW == 0 {
		s.StrideW = 1
	}
	oc := in[3] * s.Mult
	if s.Bias == nil {
		s.Bias = make([]float32, oc)
	}
	w := g.Const(name+"/weights", []int{1, s.KH, s.KW, oc}, s.Weights)
	b := g.Const(name+"/bias", []int{oc}, s.Bias)
	if g.err != nil {
		return -1
	}
	oh := outSize(in[1], s.KH, s.StrideH, 1, s.Padding)
	ow := outSize(in[2], s.KW, s.StrideW, 1, s.Padding)
	if oh <= 0 || ow <= 0 {
		return g.fail("depthwise %q: input %v too small for kernel %dx%d", name, in, s.KH, s.KW)
	}
	return g.op(resnet.OpDepthwiseConv2D, &resnet.DepthwiseConv2DOptions{Padding: s.Padding, StrideW: s.StrideW,
		StrideH: s.StrideH, DepthMultiplier: s.Mult, Activation: s.Act, DilationW: 1, DilationH: 1},
		[]int{x, w, b}, name, []int{in[0], oh, ow, oc})
}

// FullyConnected adds a FULLY_CONNECTED with weights [out,in]; the input is
// flattened to [batch, in].
func (g *Graph) FullyConnected(name string, x int, out int, weights, bias []float32, act resnet.Activation) int {
	if g.bad(x) {
		return -1
	}
	in := g.m.Tensors[x].Shape
	if len(in) < 1 {
		return g.fail("fully connected %q: scalar input", name)
	}
	batch := in[0]
	depth := product(in) / max(batch, 1)
	if bias == nil {
		bias = make([]float32, out)
	}
	w := g.Const(name+"/weights", []int{out, depth}, weights)
	b := g.Const(name+"/bias", []int{out}, bias)
	if g.err != nil {
		return -1
	}
	return g.op(resnet.OpFullyConnected, &resnet.FullyConnectedOptions{Activation: act}, []int{x, w, b}, name, []int{batch, out})
}

// Add adds an elementwise ADD of two tensors of the same shape.
func (g *Graph) Add(name string, a, b int, act resnet.Activation) int {
	if g.bad(a, b) {
		return -1
	}
	sa, sb := g.m.Tensors[a].Shape, g.m.Tensors[b].Shape
	if fmt.Sprint(sa) != fmt.Sprint(sb) {
		return g.fail("add %q: shapes %v and %v differ", name, sa, sb)
	}
	return g.op(resnet.OpAdd, &resnet.AddOptions{Activation: act}, []int{a, b}, name, sa)
}

func (g *Graph) pool(code resnet.OpCode, name string, x, k, stride int, p resnet.Padding) int {
	if g.bad(x) {
		return -1
	}
	in := g.m.Tensors[x].Shape
	if len(in) != 4 {
		return g.fail("pool %q: input must be NHWC, has shape %v", name, in)
	}
	oh, ow := outSize(in[1], k, stride, 1, p), outSize(in[2], k, stride, 1, p)
	if oh <= 0 || ow <= 0 {
		return g.fail("pool %q: input %v too small for window %d", name, in, k)
	}
	return g.op(code, &resnet.Pool2DOptions{Padding: p, StrideW: stride, StrideH: stride, FilterW: k, FilterH: k},
		[]int{x}, name, []int{in[0], oh, ow, in[3]})
}

// MaxPool2D adds a square MAX_POOL_2D.
func (g *Graph) MaxPool2D(name string, x, k, stride int, p resnet.Padding) int {
	return g.pool(resnet.OpMaxPool2D, name, x, k, stride, p)
}

// AveragePool2D adds a square AVERAGE_POOL_2D.
func (g *Graph) AveragePool2D(name string, x, k, stride int, p resnet.Padding) int {
	return g.pool(resnet.OpAveragePool2D, name, x, k, stride, p)
}

// SpatialMean adds a MEAN over H and W (global average pooling).
func (g *Graph) SpatialMean(name string, x int, keepDims bool) int {
	if g.bad(x) {
		return -1
	}
	in := g.m.Tensors[x].Shape
	if len(in) != 4 {
		return g.fail("mean %q: input must be NHWC, has shape %v", name, in)
	}
	axes := g.constInt32(name+"/axes", []int{2}, []int32{1, 2})
	out := []int{in[0], in[3]}
	if keepDims {
		out = []int{in[0], 1, 1, in[3]}
	}
	return g.op(resnet.OpMean, &resnet.ReducerOptions{KeepDims: keepDims}, []int{x, axes}, name, out)
}

// Pad adds a PAD with per-dimension (before, after) amounts.
func (g *Graph) Pad(name string, x int, pads [][2]int) int {
	if g.bad(x) {
		return -1
	}
	in := g.m.Tensors[x].Shape
	if len(pads) != len(in) {
		return g.fail("pad %q: %d paddings for rank %d", name, len(pads), len(in))
	}
	flat := make([]int32, 0, 2*len(in))
	out := make([]int, len(in))
	for i, p := range pads {
		if p[0] < 0 || p[1] < 0 {
			return g.fail("pad %q: negative padding %v", name, p)
		}
		flat = append(flat, int32(p[0]), int32(p[1]))
		out[i] = in[i] + p[0] + p[1]
	}
	pt := g.constInt32(name+"/paddings", []int{len(in), 2}, flat)
	return g.op(resnet.OpPad, nil, []int{x, pt}, name, out)
}

// Reshape adds a RESHAPE to a fully specified shape.
func (g *Graph) Reshape(name string, x int, shape []int) int {
	if g.bad(x) {
		return -1
	}
	if product(shape) != g.m.Tensors[x].NumElements() {
		return g.fail("reshape %q: %v does not hold %v", name, shape, g.m.Tensors[x].Shape)
	}
	s32 := make([]int32, len(shape))
	for i, d := range shape {
		s32[i] = int32(d)
	}
	st := g.constInt32(name+"/shape", []int{len(shape)}, s32)
	return g.op(resnet.OpReshape, &resnet.ReshapeOptions{NewShape: append([]int(nil), shape...)}, []int{x, st}, name, shape)
}

// Squeeze adds a SQUEEZE of the given size-1 dimensions.
func (g *Graph) Squeeze(name string, x int, dims []int) int {
	if g.bad(x) {
		return -1
	}
	in := g.m.Tensors[x].Shape
	drop := map[int]bool{}
	for _, d := range dims {
		if d < 0 {
			d += len(in)
		}
		if d < 0 || d >= len(in) || in[d] != 1 {
			return g.fail("squeeze %q: dimension %d of %v is not 1", name, d, in)
		}
		drop[d] = true
	}
	var out []int
	for i, d := range in {
		if !drop[i] {
			out = append(out, d)
		}
	}
	return g.op(resnet.OpSqueeze, &resnet.SqueezeOptions{SqueezeDims: append([]int(nil), dims...)}, []int{x}, name, out)
}

// Softmax adds a SOFTMAX over the last dimension.
func (g *Graph) Softmax(name string, x int, beta float32) int {
	if g.bad(x) {
		return -1
	}
	return g.op(resnet.OpSoftmax, &resnet.SoftmaxOptions{Beta: beta}, []int{x}, name, g.m.Tensors[x].Shape)
}

// SetMeta records labels and input normalization in the model.
func (g *Graph) SetMeta(meta resnet.Metadata) { g.m.Meta = meta }

// Finish returns the model, or the first error met while building.
func (g *Graph) Finish() (*resnet.Model, error) {
	if g.err != nil {
		return nil, g.err
	}
	if len(g.m.Inputs) == 0 || len(g.m.Outputs) == 0 {
		return nil, fmt.Errorf("build: model %q needs at least one input and one output", g.m.Description)
	}
	m := g.m
	return &m, nil
}
