package fast

import (
	"math"
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

// addParams is an ADD's constants for the computed kernels (add_amd64.s,
// written by gen_add.go, which reads the fields by offset: 64 bytes each,
// one value broadcast to every lane; AVX2 reads the first 32). The
// kernels compute ref.AddInt8 in 32-bit lanes, bit for bit.
//
// The TFLite arithmetic (LeftShift 20, every shift a right shift,
// multipliers normalized to [2^30, 2^31)). With k = x + off in [-255, 255]
// and an input multiplier m with right shift e:
//
//   - SaturatingRoundingDoublingHighMul(k<<20, m) is floor((k*m + 2^10) /
//     2^11) (floor((a*m + 2^30) / 2^31) for every a, m but a == m ==
//     MinInt32, m > 0 here: for a*m >= 0 truncation is floor; for a*m < 0
//     the nudge 1-2^30 plus the 2^31-1 that turns truncation into floor is
//     2^30 again), call it v; v < 0 exactly when k < 0 (m > 2^10).
//   - RoundingDivideByPOT(v, e) is floor((v + 2^(e-1) - [v < 0]) / 2^e) for
//     e >= 1 (ties away from zero), v for e == 0. Floors of floors nest, so
//     the input's term is u = floor((k*m + c - [k < 0]*2^11) / 2^(11+e)),
//     c = 2^10 + 2^(10+e) (2^10 and no [k < 0] term for e == 0).
//   - With S = 11+e and m = mh<<S + ml: u = k*mh + (k*ml + c - [k < 0]*2^11)
//     >> S, and k*mh = x*mh + off*mh. The kernel computes x*mh + (x*ml +
//     cB) >> sh, cB = off*ml + c less 2^11 where x <= thr = -off-1 (cBneg),
//     and leaves off*mh to the output. For e <= 12 nothing leaves 32 bits:
//     |k*ml| < 255*2^23 = 2^31 - 2^23, c <= 2^22 + 2^10.
//   - An input of multiplier 2^30 and shift 0 (real multiplier exactly 0.5:
//     the input of the larger scale) has u = k<<19: the half kernels
//     compute y<<19 and leave off<<19 to the output.
//   - The sum's constant part K (off*mh and off<<19 of both inputs, |K| <
//     2^28) left out, the kernel sums s' = s - K: |s'| < 2^29 (|x*mh| <=
//     2^27, |(x*ml + cB) >> sh| < 2^20), so 2*s' fits 32 bits too. The
//     output multiply w = floor((s*mo + 2^30) / 2^31) and its
//     RoundingDivideByPOT by eo with half h = 2^(eo-1) (0 for eo == 0) is
//     (w' - [w' < tho]) >> eo, w' = w + h = floor((s'*mo + nudge) / 2^31),
//     nudge = 2^30 + h*2^31 + K*mo (64 bits, below 2^62; AVX-512 multiplies
//     2*s' and adds 2*nudge: w' is the product's high half), tho = h (w < 0
//     exactly when w' < h) or MinInt32 for eo == 0 (no correction). |s| <
//     2^29 (each term < 255*2^20), so |w| < 2^29 and w' < 2^31.
//   - The zero point is added with saturation to the words that packing
//     saturated to int16, which are then packed to bytes with saturation
//     and clamped to the activation range: the bytes of adding it in 32
//     bits and clamping (a value that saturates to int16 saturates to
//     int8 the same way with any zero point of int8 added).
//
// The xnnpack arithmetic (ref.NewAddXNNPACK's) is bias + x*m1 + y*m2 in int32
// (wrapping the same way in Go and in the lanes), shifted right by its
// shift, then the zero point and the range as above.
type addParams struct {
	ml1, mh1, cBneg1, cBpos1, thr1, sh1 [16]int32
	ml2, mh2, cBneg2, cBpos2, thr2, sh2 [16]int32
	mo                                  [16]int32
	nudge, nudge2                       [8]int64
	tho, eo                             [16]int32
	zp                                  [32]int16
	actMin, actMax                      [64]int8
	perm8, perm16                       [16]int32 // the packing's order of dwords
	xm1, xm2, xbias, xshift             [16]int32
	// kernel indexes addKernels; swap: the operands trade places so that
	// the second is the half one (ADD's arithmetic is symmetric in the two
	// (input, parameters) pairs).
	kernel int
	swap   bool
}

// The kernels (add_amd64.s), out[i] = ADD(x[i], y[i]) for i < n, n a
// multiple of their addKernels step. Called through addKernels' function
// values, which the compiler cannot see into: go:noescape would change
// nothing.
func addTFLiteAVX2(p *addParams, x, y, out *int8, n int)
func addTFLiteAVX2Clamp(p *addParams, x, y, out *int8, n int)
func addHalfAVX2(p *addParams, x, y, out *int8, n int)
func addHalfAVX2Clamp(p *addParams, x, y, out *int8, n int)
func addXNNPACKAVX2(p *addParams, x, y, out *int8, n int)
func addXNNPACKAVX2Clamp(p *addParams, x, y, out *int8, n int)
func addTFLiteAVX512(p *addParams, x, y, out *int8, n int)
func addTFLiteAVX512Clamp(p *addParams, x, y, out *int8, n int)
func addHalfAVX512(p *addParams, x, y, out *int8, n int)
func addHalfAVX512Clamp(p *addParams, x, y, out *int8, n int)
func addXNNPACKAVX512(p *addParams, x, y, out *int8, n int)
func addXNNPACKAVX512Clamp(p *addParams, x, y, out *int8, n int)

// addKernels is indexed by ISA (AVX2, AVX-512), arithmetic (addTFLite,
// addHalf, addXNNPACK) and clamp, as addKernelIndex computes.
var addKernels = [...]struct {
	name string
	f    func(p *addParams, x, y, out *int8, n int)
	step int
}{
	{"addTFLiteAVX2", addTFLiteAVX2, 32},
	{"addTFLiteAVX2Clamp", addTFLiteAVX2Clamp, 32},
	{"addHalfAVX2", addHalfAVX2, 32},
	{"addHalfAVX2Clamp", addHalfAVX2Clamp, 32},
	{"addXNNPACKAVX2", addXNNPACKAVX2, 32},
	{"addXNNPACKAVX2Clamp", addXNNPACKAVX2Clamp, 32},
	{"addTFLiteAVX512", addTFLiteAVX512, 64},
	{"addTFLiteAVX512Clamp", addTFLiteAVX512Clamp, 64},
	{"addHalfAVX512", addHalfAVX512, 64},
	{"addHalfAVX512Clamp", addHalfAVX512Clamp, 64},
	{"addXNNPACKAVX512", addXNNPACKAVX512, 64},
	{"addXNNPACKAVX512Clamp", addXNNPACKAVX512Clamp, 64},
}

const (
	addTFLite = iota
	addHalf
	addXNNPACK
)

func addKernelIndex(avx512 bool, arith int, clamp bool) int {
	i := 2 * arith
	if avx512 {
		i += 6
	}
	if clamp {
		i++
	}
	return i
}

// newAddParams prepares p for the computed kernels, AVX-512 where the CPU
// has it (F and BW), or returns nil where there is no AVX2 or p is not
// the arithmetic the rewrite covers: the table serves those.
func newAddParams(p *ref.Add) *addParams { return newAddParamsFor(p, hasAVX512BW) }

// newAddParamsFor is newAddParams with the ISA chosen: AVX-512 or AVX2.
// It returns nil outside the rewrite: a zero point outside int8 or an
// activation range outside it; for the xnnpack arithmetic a shift outside
// [0, 31]; for TFLite's another left shift, a left-shifting or
// unnormalized multiplier, an input shift beyond 12 (other than the half
// input's 0: input scales 2^12 times apart) or offsets outside int8's zero
// points.
func newAddParamsFor(p *ref.Add, avx512 bool) *addParams {
	if !hasAVX2 || p.ActMin < -128 || p.ActMax > 127 || p.OutputOffset < -128 || p.OutputOffset > 127 {
		return nil
	}
	clamp := p.ActMin > -128 || p.ActMax < 127
	a := &addParams{
		perm8:  [16]int32{0, 4, 1, 5, 2, 6, 3, 7},
		perm16: [16]int32{0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15},
	}
	for i := range a.zp {
		a.zp[i] = int16(p.OutputOffset)
	}
	for i := range a.actMin {
		a.actMin[i], a.actMax[i] = int8(p.ActMin), int8(p.ActMax)
	}
	if p.XNNPACK {
		if p.OutputShift < 0 || p.OutputShift > 31 {
			return nil
		}
		a.xm1, a.xm2, a.xbias, a.xshift = bcast(p.Input1Multiplier), bcast(p.Input2Multiplier), bcast(p.XNNPACKBias), bcast(int32(p.OutputShift))
		a.kernel = addKernelIndex(avx512, addXNNPACK, clamp)
		return a
	}
	if p.LeftShift != 20 || p.OutputShift > 0 || p.OutputShift < -31 || p.OutputMultiplier < 1<<30 {
		return nil
	}
	off1, m1, s1, off2, m2, s2 := p.Input1Offset, p.Input1Multiplier, p.Input1Shift, p.Input2Offset, p.Input2Multiplier, p.Input2Shift
	for _, o := range []int32{off1, off2} {
		if o < -127 || o > 128 {
			return nil
		}
	}
	isHalf := func(m int32, s int) bool { return m == 1<<30 && s == 0 }
	if isHalf(m1, s1) && !isHalf(m2, s2) {
		off1, m1, s1, off2, m2, s2 = off2, m2, s2, off1, m1, s1
		a.swap = true
	}
	var k int64 // the sum's constant part
	input := func(off, m int32, shift int, ml, mh, cBneg, cBpos, thr, sh *[16]int32) bool {
		e := -shift
		if e < 0 || e > 12 || m < 1<<30 {
			return false
		}
		s := 11 + e
		c := int32(1 << 10)
		if e > 0 {
			c += 1 << (10 + e)
		}
		*ml, *mh, *sh, *thr = bcast(m&(1<<s-1)), bcast(m>>s), bcast(int32(s)), bcast(-off-1)
		*cBpos, *cBneg = bcast(off*(m&(1<<s-1))+c), bcast(off*(m&(1<<s-1))+c)
		if e > 0 {
			*cBneg = bcast(cBpos[0] - 1<<11)
		}
		k += int64(off) * int64(m>>s)
		return true
	}
	if !input(off1, m1, s1, &a.ml1, &a.mh1, &a.cBneg1, &a.cBpos1, &a.thr1, &a.sh1) {
		return nil
	}
	arith := addHalf
	if isHalf(m2, s2) {
		k += int64(off2) << 19
	} else {
		arith = addTFLite
		if !input(off2, m2, s2, &a.ml2, &a.mh2, &a.cBneg2, &a.cBpos2, &a.thr2, &a.sh2) {
			return nil
		}
	}
	eo := -p.OutputShift
	h, tho := int64(0), int32(math.MinInt32)
	if eo > 0 {
		h = 1 << (eo - 1)
		tho = int32(h)
	}
	nudge := 1<<30 + h<<31 + k*int64(p.OutputMultiplier)
	for i := range a.nudge {
		a.nudge[i], a.nudge2[i] = nudge, 2*nudge
	}
	a.mo, a.tho, a.eo = bcast(p.OutputMultiplier), bcast(tho), bcast(int32(eo))
	a.kernel = addKernelIndex(avx512, arith, clamp)
	return a
}

func bcast(v int32) (b [16]int32) {
	for i := range b {
		b[i] = v
	}
	return b
}

// addCompute computes the first elements (a multiple of the kernel's
// step) with c's kernel and returns how many it did.
func addCompute(c *addParams, x, y []uint8, o []int8) int {
	k := &addKernels[c.kernel]
	n := len(x) / k.step * k.step
	if n > 0 {
		if c.swap {
			x, y = y[:len(x)], x
		}
		k.f(c, (*int8)(unsafe.Pointer(&x[0])), (*int8)(unsafe.Pointer(&y[:len(x)][0])), &o[:len(x)][0], n)
	}
	return n
}
