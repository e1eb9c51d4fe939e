package onnx

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// The subset of ONNX's protobuf schema (onnx/onnx.proto, IR version 7) that
// the exporter writes, in our own words. Field numbers are the spec's; every
// message is encoded by hand with protowire, so no generated code is needed.
// Repeated scalars are written unpacked (the proto2 default, which every
// reader accepts).
//
//	ModelProto          1 ir_version int64, 2 producer_name string,
//	                    3 producer_version string, 6 doc_string string,
//	                    7 graph GraphProto, 8 opset_import OperatorSetIdProto*,
//	                    14 metadata_props StringStringEntryProto*
//	OperatorSetIdProto  1 domain string, 2 version int64
//	StringStringEntry   1 key string, 2 value string
//	GraphProto          1 node NodeProto*, 2 name string,
//	                    5 initializer TensorProto*, 11 input ValueInfoProto*,
//	                    12 output ValueInfoProto*
//	NodeProto           1 input string*, 2 output string*, 3 name string,
//	                    4 op_type string, 5 attribute AttributeProto*,
//	                    7 domain string
//	AttributeProto      1 name string, 2 f float, 3 i int64, 4 s bytes,
//	                    7 floats float*, 8 ints int64*, 20 type AttributeType
//	                    (FLOAT=1 INT=2 STRING=3 FLOATS=6 INTS=7)
//	TensorProto         1 dims int64*, 2 data_type int32, 8 name string,
//	                    9 raw_data bytes (little-endian, fixed width)
//	ValueInfoProto      1 name string, 2 type TypeProto
//	TypeProto           1 tensor_type TypeProto.Tensor
//	TypeProto.Tensor    1 elem_type int32, 2 shape TensorShapeProto
//	TensorShapeProto    1 dim Dimension*
//	Dimension           1 dim_value int64
//
// TensorProto.DataType values used: FLOAT=1 UINT8=2 INT8=3 INT32=6 INT64=7.

type dataType int32

const (
	dtFloat dataType = 1
	dtUint8 dataType = 2
	dtInt8  dataType = 3
	dtInt32 dataType = 6
	dtInt64 dataType = 7
)

func (d dataType) String() string {
	switch d {
	case dtFloat:
		return "float"
	case dtUint8:
		return "uint8"
	case dtInt8:
		return "int8"
	case dtInt32:
		return "int32"
	case dtInt64:
		return "int64"
	}
	return "unknown"
}

type attrType int32

const (
	attrFloat  attrType = 1
	attrInt    attrType = 2
	attrString attrType = 3
	attrInts   attrType = 7
)

type attribute struct {
	name string
	typ  attrType
	f    float32
	i    int64
	s    string
	ints []int64
}

type node struct {
	opType  string
	name    string
	inputs  []string
	outputs []string
	attrs   []attribute
}

type tensorProto struct {
	name string
	typ  dataType
	dims []int64
	raw  []byte
}

type valueInfo struct {
	name string
	typ  dataType
	dims []int64
}

type graphProto struct {
	name    string
	nodes   []node
	inits   []tensorProto
	inputs  []valueInfo
	outputs []valueInfo
}

type modelProto struct {
	irVersion       int64
	opset           int64
	producer        string
	producerVersion string
	doc             string
	metadata        [][2]string
	graph           graphProto
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, num protowire.Number, v int64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func (a *attribute) marshal() []byte {
	var b []byte
	b = appendString(b, 1, a.name)
	switch a.typ {
	case attrFloat:
		b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.f))
	case attrInt:
		b = appendVarint(b, 3, a.i)
	case attrString:
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendString(b, a.s)
	case attrInts:
		for _, v := range a.ints {
			b = appendVarint(b, 8, v)
		}
	}
	return appendVarint(b, 20, int64(a.typ))
}

func (n *node) marshal() []byte {
	var b []byte
	for _, in := range n.inputs {
		// An empty input name is ONNX's "optional input left out"; it must
		// still be written to keep the positions of later inputs.
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, in)
	}
	for _, out := range n.outputs {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, out)
	}
	b = appendString(b, 3, n.name)
	b = appendString(b, 4, n.opType)
	for i := range n.attrs {
		b = appendMessage(b, 5, n.attrs[i].marshal())
	}
	return b
}

func (t *tensorProto) marshal() []byte {
	var b []byte
	for _, d := range t.dims {
		b = appendVarint(b, 1, d)
	}
	b = appendVarint(b, 2, int64(t.typ))
	b = appendString(b, 8, t.name)
	b = protowire.AppendTag(b, 9, protowire.BytesType)
	return protowire.AppendBytes(b, t.raw)
}

func (v *valueInfo) marshal() []byte {
	var shape []byte
	for _, d := range v.dims {
		shape = appendMessage(shape, 1, appendVarint(nil, 1, d))
	}
	var tensor []byte
	tensor = appendVarint(tensor, 1, int64(v.typ))
	tensor = appendMessage(tensor, 2, shape)
	var b []byte
	b = appendString(b, 1, v.name)
	return appendMessage(b, 2, appendMessage(nil, 1, tensor))
}

func (g *graphProto) marshal() []byte {
	var b []byte
	for i := range g.nodes {
		b = appendMessage(b, 1, g.nodes[i].marshal())
	}
	b = appendString(b, 2, g.name)
	for i := range g.inits {
		b = appendMessage(b, 5, g.inits[i].marshal())
	}
	for i := range g.inputs {
		b = appendMessage(b, 11, g.inputs[i].marshal())
	}
	for i := range g.outputs {
		b = appendMessage(b, 12, g.outputs[i].marshal())
	}
	return b
}

func (m *modelProto) marshal() []byte {
	var b []byte
	b = appendVarint(b, 1, m.irVersion)
	b = appendString(b, 2, m.producer)
	b = appendString(b, 3, m.producerVersion)
	b = appendString(b, 6, m.doc)
	b = appendMessage(b, 7, m.graph.marshal())
	var opset []byte
	opset = appendVarint(opset, 2, m.opset) // domain "" is the default ONNX domain
	b = appendMessage(b, 8, opset)
	for _, kv := range m.metadata {
		var e []byte
		e = appendString(e, 1, kv[0])
		e = appendString(e, 2, kv[1])
		b = appendMessage(b, 14, e)
	}
	return b
}
