package interp

import (
	"unsafe"

	"github.com/shortcut-edge/shortcut/resnet"
)

// Tensor is one tensor of a prepared model as the interpreter holds it: the
// model's description plus its bytes. Activation tensors live in the
// interpreter's arena; constant tensors share the model's data (read-only:
// never write through a constant tensor's views), except weights the
// optimized kernels packed, which have no data unless Options.KeepAll.
//
// The typed views alias the same little-endian bytes, with no copy. They
// stay valid for the interpreter's life; with arena reuse, an intermediate
// tensor's contents are only meaningful until a later operator overwrites
// its region (see Options.KeepAll).
type Tensor struct {
	Name  string
	Type  resnet.DType
	Shape []int
	Quant *resnet.Quant

	data []byte
}

// NumElements is the product of Shape (1 for a scalar).
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Bytes is the tensor's raw little-endian contents.
func (t *Tensor) Bytes() []byte { return t.data }

// Int8 views the contents as int8, or returns nil when Type is not INT8.
func (t *Tensor) Int8() []int8 {
	if t.Type != resnet.Int8 || len(t.data) == 0 {
		return nil
	}
	return unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(t.data))), len(t.data))
}

// Float32 views the contents as float32, or returns nil when Type is not
// FLOAT32.
func (t *Tensor) Float32() []float32 {
	if t.Type != resnet.Float32 || len(t.data) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(t.data))), len(t.data)/4)
}

// Int32 views the contents as int32, or returns nil when Type is not INT32.
func (t *Tensor) Int32() []int32 {
	if t.Type != resnet.Int32 || len(t.data) == 0 {
		return nil
	}
	return unsafe.Slice((*int32)(unsafe.Pointer(unsafe.SliceData(t.data))), len(t.data)/4)
}

// The typed views below are for constants converted at Prepare; they read
// bytes that alignedCopy made suitably aligned.

func int8View(b []byte) []int8 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(b))), len(b))
}

func int32View(b []byte) []int32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*int32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}

func float32View(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}

// alignment is the arena's and constants' alignment: a cache line, which is
// also enough for any SIMD load a faster kernel will do.
const alignment = 64

// alignedBytes returns n zeroed bytes starting at a multiple of alignment.
func alignedBytes(n int64) []byte {
	if n == 0 {
		return nil
	}
	buf := make([]byte, n+alignment-1)
	off := (alignment - int(uintptr(unsafe.Pointer(unsafe.SliceData(buf)))%alignment)) % alignment
	return buf[off : off+int(n) : off+int(n)]
}

// alignedConst returns b itself when it already starts on an alignment
// boundary, or an aligned copy. Model data sliced out of a file buffer may sit at any
// offset, and unaligned typed views are not allowed on every CPU Go runs on.
// constAlignment is what constant data needs to be read in place through the
// typed views (the widest element is 4 bytes; 16 keeps vector loads aligned).
// Files we write align every buffer to 16 bytes, so weights of a model read
// into memory are used where they lie instead of being copied again.
const constAlignment = 16

func alignedConst(b []byte) []byte {
	if len(b) == 0 || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%constAlignment == 0 {
		return b
	}
	c := alignedBytes(int64(len(b)))
	copy(c, b)
	return c
}
