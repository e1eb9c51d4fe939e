package witness

import (
	"encoding/binary"
	"math"

	flatbuffers "github.com/google/flatbuffers/go"
)

// A hand-written .tflite writer for the few tiny models these tests need, so
// that the witness can be tested without Shortcut's own writer. Field slots
// follow TFLite's schema.fbs (Model, SubGraph, Tensor, Operator, ...).

const (
	tfFloat32 = 0
	tfInt8    = 9

	opAdd            = 0
	opDequantize     = 6
	opFullyConnected = 9
	opQuantize       = 114
)

type tinyTensor struct {
	name  string
	typ   int8
	shape []int32
	data  []byte // constant contents; nil for activations
	scale float32
	zero  int64
	quant bool
}

type tinyOp struct {
	code    int32
	inputs  []int32
	outputs []int32
}

type tinyModel struct {
	tensors []tinyTensor
	ops     []tinyOp
	inputs  []int32
	outputs []int32
}

func f32bytes(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func int32Vector(b *flatbuffers.Builder, v []int32) flatbuffers.UOffsetT {
	b.StartVector(4, len(v), 4)
	for i := len(v) - 1; i >= 0; i-- {
		b.PrependInt32(v[i])
	}
	return b.EndVector(len(v))
}

func tableVector(b *flatbuffers.Builder, offs []flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	b.StartVector(4, len(offs), 4)
	for i := len(offs) - 1; i >= 0; i-- {
		b.PrependUOffsetT(offs[i])
	}
	return b.EndVector(len(offs))
}

func (m tinyModel) bytes() []byte {
	b := flatbuffers.NewBuilder(1024)

	// Buffers: 0 is the empty sentinel, then one per constant tensor.
	bufOffs := []flatbuffers.UOffsetT{}
	b.StartObject(1)
	bufOffs = append(bufOffs, b.EndObject())
	bufIndex := make([]uint32, len(m.tensors))
	for i, t := range m.tensors {
		if t.data == nil {
			continue
		}
		b.StartVector(1, len(t.data), 16)
		for j := len(t.data) - 1; j >= 0; j-- {
			b.PrependByte(t.data[j])
		}
		data := b.EndVector(len(t.data))
		b.StartObject(1)
		b.PrependUOffsetTSlot(0, data, 0)
		bufIndex[i] = uint32(len(bufOffs))
		bufOffs = append(bufOffs, b.EndObject())
	}
	buffers := tableVector(b, bufOffs)

	tensorOffs := make([]flatbuffers.UOffsetT, len(m.tensors))
	for i, t := range m.tensors {
		name := b.CreateString(t.name)
		shape := int32Vector(b, t.shape)
		var q flatbuffers.UOffsetT
		if t.quant {
			b.StartVector(4, 1, 4)
			b.PrependFloat32(t.scale)
			scale := b.EndVector(1)
			b.StartVector(8, 1, 8)
			b.PrependInt64(t.zero)
			zero := b.EndVector(1)
			b.StartObject(7)
			b.PrependUOffsetTSlot(2, scale, 0)
			b.PrependUOffsetTSlot(3, zero, 0)
			q = b.EndObject()
		}
		b.StartObject(8)
		b.PrependUOffsetTSlot(0, shape, 0)
		b.PrependInt8Slot(1, t.typ, 0)
		b.PrependUint32Slot(2, bufIndex[i], 0)
		b.PrependUOffsetTSlot(3, name, 0)
		if t.quant {
			b.PrependUOffsetTSlot(4, q, 0)
		}
		tensorOffs[i] = b.EndObject()
	}
	tensors := tableVector(b, tensorOffs)

	codes := []int32{}
	codeIndex := map[int32]uint32{}
	opOffs := make([]flatbuffers.UOffsetT, len(m.ops))
	for i, op := range m.ops {
		idx, ok := codeIndex[op.code]
		if !ok {
			idx = uint32(len(codes))
			codeIndex[op.code] = idx
			codes = append(codes, op.code)
		}
		in := int32Vector(b, op.inputs)
		out := int32Vector(b, op.outputs)
		b.StartObject(9)
		b.PrependUint32Slot(0, idx, 0)
		b.PrependUOffsetTSlot(1, in, 0)
		b.PrependUOffsetTSlot(2, out, 0)
		opOffs[i] = b.EndObject()
	}
	ops := tableVector(b, opOffs)

	in := int32Vector(b, m.inputs)
	out := int32Vector(b, m.outputs)
	sgName := b.CreateString("main")
	b.StartObject(5)
	b.PrependUOffsetTSlot(0, tensors, 0)
	b.PrependUOffsetTSlot(1, in, 0)
	b.PrependUOffsetTSlot(2, out, 0)
	b.PrependUOffsetTSlot(3, ops, 0)
	b.PrependUOffsetTSlot(4, sgName, 0)
	subgraphs := tableVector(b, []flatbuffers.UOffsetT{b.EndObject()})

	codeOffs := make([]flatbuffers.UOffsetT, len(codes))
	for i, c := range codes {
		b.StartObject(4)
		b.PrependInt8Slot(0, int8(c), 0) // deprecated_builtin_code: codes below 127
		b.PrependInt32Slot(2, 1, 1)      // version
		b.PrependInt32Slot(3, c, 0)      // builtin_code
		codeOffs[i] = b.EndObject()
	}
	opcodes := tableVector(b, codeOffs)

	desc := b.CreateString("shortcut witness test model")
	b.StartObject(8)
	b.PrependUint32Slot(0, 3, 0)
	b.PrependUOffsetTSlot(1, opcodes, 0)
	b.PrependUOffsetTSlot(2, subgraphs, 0)
	b.PrependUOffsetTSlot(3, desc, 0)
	b.PrependUOffsetTSlot(4, buffers, 0)
	b.FinishWithFileIdentifier(b.EndObject(), []byte("TFL3"))
	return b.FinishedBytes()
}

// fcAddModel: out[1,3] = FULLY_CONNECTED(x[1,4], w, bias) + y[1,3], all float32.
var (
	fcWeights = []float32{ // [3,4], row per output
		0.5, -1, 2, 0.25,
		-0.75, 1.5, 0, 1,
		1, 1, -1, -0.5,
	}
	fcBias = []float32{0.1, -0.2, 0.3}
)

func fcAddModel() tinyModel {
	return tinyModel{
		tensors: []tinyTensor{
			{name: "x", typ: tfFloat32, shape: []int32{1, 4}},
			{name: "y", typ: tfFloat32, shape: []int32{1, 3}},
			{name: "w", typ: tfFloat32, shape: []int32{3, 4}, data: f32bytes(fcWeights...)},
			{name: "bias", typ: tfFloat32, shape: []int32{3}, data: f32bytes(fcBias...)},
			{name: "fc", typ: tfFloat32, shape: []int32{1, 3}},
			{name: "out", typ: tfFloat32, shape: []int32{1, 3}},
		},
		ops: []tinyOp{
			{code: opFullyConnected, inputs: []int32{0, 2, 3}, outputs: []int32{4}},
			{code: opAdd, inputs: []int32{4, 1}, outputs: []int32{5}},
		},
		inputs:  []int32{0, 1},
		outputs: []int32{5},
	}
}

func fcAddExpected(x, y []float32) []float32 {
	out := make([]float32, 3)
	for o := range 3 {
		s := fcBias[o]
		for i := range 4 {
			s += x[i] * fcWeights[o*4+i]
		}
		out[o] = s + y[o]
	}
	return out
}

// Quantization of quantIOModel's int8 input a and int8 output q.
const (
	qaScale, qaZero = 0.5, -2
	qqScale, qqZero = 0.25, 3
)

// quantIOModel has int8 input and output:
// sum[1,8] = DEQUANTIZE(a int8[1,8]) + b[1,8]; q = QUANTIZE(sum) int8[1,8].
// Outputs: q (int8), sum (float32).
func quantIOModel() tinyModel {
	return tinyModel{
		tensors: []tinyTensor{
			{name: "a", typ: tfInt8, shape: []int32{1, 8}, quant: true, scale: qaScale, zero: qaZero},
			{name: "b", typ: tfFloat32, shape: []int32{1, 8}},
			{name: "a_float", typ: tfFloat32, shape: []int32{1, 8}},
			{name: "sum", typ: tfFloat32, shape: []int32{1, 8}},
			{name: "q", typ: tfInt8, shape: []int32{1, 8}, quant: true, scale: qqScale, zero: qqZero},
		},
		ops: []tinyOp{
			{code: opDequantize, inputs: []int32{0}, outputs: []int32{2}},
			{code: opAdd, inputs: []int32{2, 1}, outputs: []int32{3}},
			{code: opQuantize, inputs: []int32{3}, outputs: []int32{4}},
		},
		inputs:  []int32{0, 1},
		outputs: []int32{4, 3},
	}
}

func quantIOExpected(a []int8, b []float32) (q []int8, sum []float32) {
	q = make([]int8, len(a))
	sum = make([]float32, len(a))
	for i := range a {
		sum[i] = float32(int32(a[i])-qaZero)*qaScale + b[i]
		v := math.Round(float64(sum[i]/qqScale)) + qqZero
		q[i] = int8(max(-128, min(127, v)))
	}
	return q, sum
}
