package fast

import (
	"unsafe"

	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// addTableAVX2 is out[i] = t[uint8(x[i])<<8|uint8(y[i])] for i < n, n a
// multiple of 16 (add_amd64.s).
//
//go:noescape
func addTableAVX2(t *[1 << 16]int8, x, y, out *int8, n int)

func addTable(t *[1 << 16]int8, x, y []uint8, o []int8) {
	n := 0
	if hasAVX2 {
		n = len(x) &^ 15
		if n > 0 {
			addTableAVX2(t, (*int8)(unsafe.Pointer(&x[0])), (*int8)(unsafe.Pointer(&y[:len(x)][0])), &o[:len(x)][0], n)
		}
	}
	addTableGo(t, x[n:], y[n:], o[n:])
}

// addParams is ref.AddInt8's TFLite arithmetic (LeftShift 20, every shift
// a right shift, multipliers normalized to [2^30, 2^31)) rewritten for
// 32-bit lanes, each field broadcast to 8 lanes (add_amd64.s reads it by
// offset). With k = x + offset in [-255, 255], v = k<<20:
//
//   - SaturatingRoundingDoublingHighMul(a, m) is floor((a*m + 2^30) / 2^31)
//     for every a, m but a == m == MinInt32 (m > 0 here): for a*m >= 0
//     truncation is floor; for a*m < 0 the nudge 1-2^30 plus the 2^31-1 that
//     turns truncation into floor is 2^30 again.
//   - For v it is u = floor((k*m + 2^10) / 2^11) = k*mh + (k*ml + 2^10)>>11,
//     m = mh<<11 + ml (2^20 divides out; k*mh*2^11 is a multiple of 2^11):
//     x*mh + off*mh and x*ml + off*ml + 2^10, every term within 32 bits.
//   - RoundingDivideByPOT(u, e) is (u + 2^(e-1) - [u < 0]) >> e for e >= 1
//     (ties away from zero: the remainder must exceed 2^(e-1)-1, or 2^(e-1)
//     when u < 0), u for e == 0. u < 0 exactly when k < 0 (m > 2^10), i.e.
//     not x > -off-1: the compare's -1 for k >= 0 is subtracted and the
//     constant off*mh + 2^(e-1) - 1 added (for e == 0 the threshold -129
//     makes it -1 always and the constant off*mh - 1). |u| < 2^28.
//   - The output multiply is the 64-bit product per even and odd lane
//     (VPMULDQ) plus 2^30, shifted right 31 (the 32 bits kept are the same
//     for a logical shift); its RoundingDivideByPOT subtracts w>>>31 (a
//     shift by 32 gives 0: e == 0), adds the half, shifts, adds the zero
//     point.
type addParams struct {
	mh1, ml1, cB1, thr1, cA1, e1 [8]int32
	mh2, ml2, cB2, thr2, cA2, e2 [8]int32
	mo                           [8]int32
	nudge                        [4]int64 // 2^30
	cnto, halfo, eo              [8]int32
	zp, actMin, actMax           [8]int32
	perm                         [8]int32
	c19                          [8]int32 // off2<<19 (cheap)
	clamp                        bool     // the activation range is narrower than int8's
	// cheap: the second input's multiplier is 2^30 with shift 0 (the input
	// of the larger scale: its real multiplier is exactly 0.5), so its
	// term is exactly k<<19 (floor((k*2^30 + 2^10) / 2^11)); swap: the
	// operands trade places for that (ADD's arithmetic is symmetric in
	// the two (input, parameters) pairs).
	cheap, swap bool
}

//go:noescape
func addComputeAVX2(p *addParams, x, y, out *int8, n int)

//go:noescape
func addComputeAVX2Full(p *addParams, x, y, out *int8, n int)

//go:noescape
func addComputeAVX2Half(p *addParams, x, y, out *int8, n int)

//go:noescape
func addComputeAVX2HalfFull(p *addParams, x, y, out *int8, n int)

func bcast(v int32) (b [8]int32) {
	for i := range b {
		b[i] = v
	}
	return b
}

// newAddParams prepares p for addComputeAVX2, or returns nil where p is
// not the arithmetic the rewrite covers (XNNPACK's, another left shift, a
// left-shifting or unnormalized multiplier, offsets outside int8's zero
// points) or there is no AVX2: the table serves those.
func newAddParams(p *ref.Add) *addParams {
	if !hasAVX2 || p.XNNPACK || p.LeftShift != 20 || p.ActMin < -128 || p.ActMax > 127 {
		return nil
	}
	for _, s := range []int{p.Input1Shift, p.Input2Shift, p.OutputShift} {
		if s > 0 || s < -31 {
			return nil
		}
	}
	for _, m := range []int32{p.Input1Multiplier, p.Input2Multiplier, p.OutputMultiplier} {
		if m < 1<<30 {
			return nil
		}
	}
	for _, o := range []int32{p.Input1Offset, p.Input2Offset} {
		if o < -127 || o > 128 {
			return nil
		}
	}
	a := &addParams{
		mo:    bcast(p.OutputMultiplier),
		nudge: [4]int64{1 << 30, 1 << 30, 1 << 30, 1 << 30},
		cnto:  bcast(32), eo: bcast(int32(-p.OutputShift)),
		zp: bcast(p.OutputOffset), actMin: bcast(p.ActMin), actMax: bcast(p.ActMax),
		perm:  [8]int32{0, 4, 1, 5, 2, 6, 3, 7},
		clamp: p.ActMin > -128 || p.ActMax < 127,
	}
	if e := -p.OutputShift; e > 0 {
		a.cnto, a.halfo = bcast(31), bcast(1<<(e-1))
	}
	input := func(off, m int32, shift int, mh, ml, cB, thr, cA, e *[8]int32) {
		hi, lo := m>>11, m&2047
		*mh, *ml, *cB, *e = bcast(hi), bcast(lo), bcast(off*lo+1<<10), bcast(int32(-shift))
		if shift == 0 {
			*thr, *cA = bcast(-129), bcast(off*hi-1)
		} else {
			*thr, *cA = bcast(-off-1), bcast(off*hi+1<<(-shift-1)-1)
		}
	}
	off1, m1, s1, off2, m2, s2 := p.Input1Offset, p.Input1Multiplier, p.Input1Shift, p.Input2Offset, p.Input2Multiplier, p.Input2Shift
	half := func(m int32, s int) bool { return m == 1<<30 && s == 0 }
	if half(m1, s1) && !half(m2, s2) {
		off1, m1, s1, off2, m2, s2 = off2, m2, s2, off1, m1, s1
		a.swap = true
	}
	a.cheap = half(m2, s2)
	a.c19 = bcast(off2 << 19)
	input(off1, m1, s1, &a.mh1, &a.ml1, &a.cB1, &a.thr1, &a.cA1, &a.e1)
	input(off2, m2, s2, &a.mh2, &a.ml2, &a.cB2, &a.thr2, &a.cA2, &a.e2)
	return a
}

// addCompute computes the first n &^ 31 elements with addComputeAVX2 and
// returns how many it did.
func addCompute(c *addParams, x, y []uint8, o []int8) int {
	n := len(x) &^ 31
	if n > 0 {
		f := addComputeAVX2Full
		switch {
		case c.cheap && c.clamp:
			f = addComputeAVX2Half
		case c.cheap:
			f = addComputeAVX2HalfFull
		case c.clamp:
			f = addComputeAVX2
		}
		if c.swap {
			x, y = y[:len(x)], x
		}
		f(c, (*int8)(unsafe.Pointer(&x[0])), (*int8)(unsafe.Pointer(&y[:len(x)][0])), &o[:len(x)][0], n)
	}
	return n
}
