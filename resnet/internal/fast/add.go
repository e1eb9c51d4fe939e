package fast

import (
	"unsafe"

	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// Add is a prepared int8 ADD of two same-shaped tensors. The reference
// arithmetic (ref.AddInt8) makes each output byte a function of the two
// input bytes alone, so Prepare evaluates it once for all 65536 pairs and
// the kernel is a table lookup: exact by construction.
type Add struct {
	table *[1 << 16]int8 // [uint8(in1)<<8 | uint8(in2)]
	// comp, where not nil, computes the arithmetic in SIMD (amd64:
	// add_amd64.go, TFLite's and XNNPACK's), bit for bit; the table does
	// the tail and whatever comp does not cover.
	comp *addParams
	// tableT is table transposed, [uint8(in2)<<8 | uint8(in1)], made by
	// transposed when first needed (a convolution fused with the ADD as
	// its second input: Conv.FuseAdd).
	tableT *[1 << 16]int8
}

// transposed returns a's table indexed [uint8(in2)<<8 | uint8(in1)].
func (a *Add) transposed() *[1 << 16]int8 {
	if a.tableT == nil {
		t := new([1 << 16]int8)
		for i, v := range a.table {
			t[uint16(i)<<8|uint16(i)>>8] = v
		}
		a.tableT = t
	}
	return a.tableT
}

// NewAdd tabulates p. Tables are cached by parameters in cache when it is
// not nil, as a network's residual adds often share them.
func NewAdd(p *ref.Add, cache map[ref.Add]*Add) *Add {
	if a, ok := cache[*p]; ok {
		return a
	}
	var in1, in2 [1 << 16]int8
	for i := range in1 {
		in1[i] = int8(i >> 8)
		in2[i] = int8(i)
	}
	a := &Add{table: new([1 << 16]int8), comp: newAddParams(p)}
	ref.AddInt8(p, in1[:], in2[:], a.table[:])
	if cache != nil {
		cache[*p] = a
	}
	return a
}

// addChunk is the number of elements per unit of parallel work.
const addChunk = 16 << 10

// run computes units [lo, hi) of addChunk elements.
func (a *Add) run(in1, in2, out []int8, lo, hi int) {
	start, end := lo*addChunk, min(hi*addChunk, len(out))
	t := a.table
	x := unsafe.Slice((*uint8)(unsafe.Pointer(unsafe.SliceData(in1))), len(in1))[start:end]
	y := unsafe.Slice((*uint8)(unsafe.Pointer(unsafe.SliceData(in2))), len(in2))[start:end]
	o := out[start:end]
	y, o = y[:len(x)], o[:len(x)]
	if a.comp != nil {
		n := addCompute(a.comp, x, y, o)
		x, y, o = x[n:], y[n:], o[n:]
	}
	addTable(t, x, y, o)
}

// addTableGo is the table lookup in Go: the fallback, and the tail of the
// arm64 kernel.
func addTableGo(t *[1 << 16]int8, x, y []uint8, o []int8) {
	y = y[:len(x)]
	o = o[:len(x)]
	for i, v := range x {
		o[i] = t[uint16(v)<<8|uint16(y[i])]
	}
}
