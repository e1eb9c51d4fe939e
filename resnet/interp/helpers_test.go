package interp

import (
	"encoding/binary"
	"math"
	"math/rand/v2"

	"github.com/shortcut-edge/shortcut/resnet"
)

// graph builds small resnet.Model values for tests.
type graph struct{ m resnet.Model }

func quant(scale float32, zp int64) *resnet.Quant {
	return &resnet.Quant{Scale: []float32{scale}, ZeroPoint: []int64{zp}}
}

// act adds an activation (no data) tensor.
func (g *graph) act(name string, typ resnet.DType, shape []int, q *resnet.Quant) int {
	g.m.Tensors = append(g.m.Tensors, resnet.Tensor{Name: name, Type: typ, Shape: shape, Quant: q})
	return len(g.m.Tensors) - 1
}

func (g *graph) constant(name string, typ resnet.DType, shape []int, data []byte, q *resnet.Quant) int {
	g.m.Tensors = append(g.m.Tensors, resnet.Tensor{Name: name, Type: typ, Shape: shape, Data: data, Quant: q})
	return len(g.m.Tensors) - 1
}

func (g *graph) constInt8(name string, shape []int, v []int8, q *resnet.Quant) int {
	b := make([]byte, len(v))
	for i, x := range v {
		b[i] = byte(x)
	}
	return g.constant(name, resnet.Int8, shape, b, q)
}

func (g *graph) constInt32(name string, shape []int, v []int32) int {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return g.constant(name, resnet.Int32, shape, b, nil)
}

func (g *graph) constFloat(name string, shape []int, v []float32) int {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return g.constant(name, resnet.Float32, shape, b, nil)
}

func (g *graph) op(code resnet.OpCode, opts resnet.Options, inputs []int, output int) {
	g.m.Operators = append(g.m.Operators, resnet.Operator{Op: code, Version: 1, Inputs: inputs, Outputs: []int{output}, Options: opts})
}

func (g *graph) io(inputs, outputs []int) *resnet.Model {
	g.m.Inputs, g.m.Outputs = inputs, outputs
	return &g.m
}

func randInt8s(r *rand.Rand, n int) []int8 {
	s := make([]int8, n)
	for i := range s {
		s[i] = int8(r.IntN(256) - 128)
	}
	return s
}

// randWeights gives zero-mean int8 weights (so ReLUs do not all die).
func randWeights(r *rand.Rand, n int) []int8 {
	s := make([]int8, n)
	for i := range s {
		s[i] = int8(r.IntN(201) - 100)
	}
	return s
}

func perChannel(r *rand.Rand, n, dim int) *resnet.Quant {
	q := &resnet.Quant{Dim: dim}
	for range n {
		q.Scale = append(q.Scale, float32(0.002+0.01*r.Float64()))
		q.ZeroPoint = append(q.ZeroPoint, 0)
	}
	return q
}

// convModel is one int8 CONV_2D: input [1,h,w,inC] -> output, with
// per-channel weights and bias.
func convModel(r *rand.Rand, h, w, inC, outC int, opts *resnet.Conv2DOptions) *resnet.Model {
	var g graph
	in := g.act("input", resnet.Int8, []int{1, h, w, inC}, quant(0.05, -3))
	filt := g.constInt8("filter", []int{outC, 3, 3, inC}, randWeights(r, outC*9*inC), perChannel(r, outC, 0))
	bias := make([]int32, outC)
	for i := range bias {
		bias[i] = int32(r.IntN(200) - 100)
	}
	b := g.constInt32("bias", []int{outC}, bias)
	oh := (h + opts.StrideH - 1) / opts.StrideH
	ow := (w + opts.StrideW - 1) / opts.StrideW
	out := g.act("output", resnet.Int8, []int{1, oh, ow, outC}, quant(0.1, 5))
	g.op(resnet.OpConv2D, opts, []int{in, filt, b}, out)
	return g.io([]int{in}, []int{out})
}
