package fast

import (
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// TestAddTableAVX2CoversEveryPairAndLength looks up every (x, y) pair
// through the AVX2 gather (table entries random, so that a wrong byte
// shows) and lengths around the 16-element steps.
func TestAddTableAVX2CoversEveryPairAndLength(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2")
	}
	r := rand.New(rand.NewPCG(7, 7))
	tab := new([1 << 16]int8)
	for i := range tab {
		tab[i] = int8(r.Uint32())
	}
	x, y := make([]uint8, 1<<16), make([]uint8, 1<<16)
	for i := range x {
		x[i], y[i] = uint8(i>>8), uint8(i)
	}
	r.Shuffle(len(x), func(i, j int) { x[i], x[j], y[i], y[j] = x[j], x[i], y[j], y[i] })
	for _, n := range []int{1 << 16, 0, 1, 15, 16, 17, 31, 33, 1000} {
		want, got := make([]int8, n), make([]int8, n+16)
		addTableGo(tab, x[:n], y[:n], want)
		addTable(tab, x[:n], y[:n], got[:n])
		if !slices.Equal(got[:n], want) {
			t.Fatalf("%d elements: the AVX2 lookup differs from the table", n)
		}
		if slices.ContainsFunc(got[n:], func(v int8) bool { return v != 0 }) {
			t.Fatalf("%d elements: written past the end", n)
		}
	}
}

// TestAddParamsLayoutMatchesTheAssembly: gen_add.go reads addParams'
// fields at 64-byte steps in this order.
func TestAddParamsLayoutMatchesTheAssembly(t *testing.T) {
	var a addParams
	got := []uintptr{
		unsafe.Offsetof(a.ml1), unsafe.Offsetof(a.mh1), unsafe.Offsetof(a.cBneg1), unsafe.Offsetof(a.cBpos1), unsafe.Offsetof(a.thr1), unsafe.Offsetof(a.sh1),
		unsafe.Offsetof(a.ml2), unsafe.Offsetof(a.mh2), unsafe.Offsetof(a.cBneg2), unsafe.Offsetof(a.cBpos2), unsafe.Offsetof(a.thr2), unsafe.Offsetof(a.sh2),
		unsafe.Offsetof(a.mo), unsafe.Offsetof(a.nudge), unsafe.Offsetof(a.nudge2), unsafe.Offsetof(a.tho), unsafe.Offsetof(a.eo),
		unsafe.Offsetof(a.zp), unsafe.Offsetof(a.actMin), unsafe.Offsetof(a.actMax), unsafe.Offsetof(a.perm8), unsafe.Offsetof(a.perm16),
		unsafe.Offsetof(a.xm1), unsafe.Offsetof(a.xm2), unsafe.Offsetof(a.xbias), unsafe.Offsetof(a.xshift),
	}
	for i, o := range got {
		if o != uintptr(64*i) {
			t.Fatalf("addParams field %d at offset %d, want %d (regenerate add_amd64.s with gen_add.go)", i, o, 64*i)
		}
	}
}

// addISAs is the computed kernels' ISAs this CPU runs: AVX2, and AVX-512
// where it has it.
func addISAs() []bool {
	if hasAVX512BW {
		return []bool{false, true}
	}
	return []bool{false}
}

// addParamSets is the parameters the computed ADD is checked on, every
// family below.
func addParamSets(t *testing.T) []ref.Add {
	r := rand.New(rand.NewPCG(9, 9))
	return slices.Concat(addParamsFromScales(t, r), addParamsHandMade(r), addParamsMirrored(r), addParamsHalf(t, r), addParamsXNNPACK(r))
}

// addParamsFromScales: ref.NewAddInt8's and ref.NewAddXNNPACK's from
// scales (equal scales: the half kernel with a general input of
// multiplier 2^30; scales far apart: input shifts up to 12; output scales
// near the 2^-20 limit and large ones; zero points at both ends; ReLU and
// ReLU6-like clamps).
func addParamsFromScales(t *testing.T, r *rand.Rand) []ref.Add {
	type sc struct {
		s1, s2, so float32
		z1, z2, zo int32
		lo, hi     int32
	}
	cases := []sc{
		{0.05, 0.05, 0.1, 0, 0, 0, -128, 127},
		{0.05, 0.05, 0.05, -128, 127, -128, -128, 127},
		{0.02, 0.07, 0.09, 3, -7, -128, -128, 127},
		{1, 1.0 / 4000, 1.5, 128 - 128, -128, 5, -128, 127},
		{1.0 / 3000, 1, 0.7, 127, 0, 0, -128, 127},
		{0.1, 0.1, 0.2 / (1 << 19), 0, 0, 0, -128, 127},
		{0.1, 0.3, 100, -50, 50, 127, -128, 127},
		{0.0123, 0.0456, 0.0789, -1, 17, -30, -30, 127},
		{0.0456, 0.0123, 0.0789, 12, -99, -128, -128, 20},
	}
	for range 40 {
		cases = append(cases, sc{
			float32(0.001 + r.Float64()), float32(0.001 + r.Float64()), float32(0.002 + 2*r.Float64()),
			int32(r.IntN(256) - 128), int32(r.IntN(256) - 128), int32(r.IntN(256) - 128),
			int32(-128 + r.IntN(3)*60), int32(127 - r.IntN(2)*60),
		})
	}
	var params []ref.Add
	for _, c := range cases {
		p, err := ref.NewAddInt8(c.s1, c.z1, c.s2, c.z2, c.so, c.zo, c.lo, c.hi)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		params = append(params, p)
		if p, err := ref.NewAddXNNPACK(c.s1, c.z1, c.s2, c.z2, c.so, c.zo, c.lo, c.hi); err == nil {
			params = append(params, p)
		}
	}
	return params
}

// addParamsHandMade: hand-made parameters over the whole range the rewrite
// accepts (input shifts 0 to 12, output shifts 0 to 31). Most have output
// shifts below 8, so that a sum one off crosses an output rounding
// boundary for some of the 256 partners of each input value; the first 80
// have input shifts 11 and 12 and output shifts 0 and 1, so that sums near
// zero reach the output bit for bit. Ties: a multiplier 2^30 +
// odd*2^(10+e) makes every odd k's term an exact half before the input's
// rounding shift by e (negative ones round down); an output multiplier
// 2^30 makes every odd sum a tie in the doubling high multiply.
func addParamsHandMade(r *rand.Rand) []ref.Add {
	var params []ref.Add
	for i := range 300 {
		sh := func() int {
			if r.IntN(4) == 0 {
				return 0
			}
			return -r.IntN(13)
		}
		p := ref.Add{
			Input1Offset: int32(r.IntN(256) - 127), Input2Offset: int32(r.IntN(256) - 127), OutputOffset: int32(r.IntN(256) - 128),
			LeftShift:        20,
			Input1Multiplier: int32(1<<30 + r.IntN(1<<30)), Input1Shift: sh(),
			Input2Multiplier: int32(1<<30 + r.IntN(1<<30)), Input2Shift: sh(),
			OutputMultiplier: int32(1<<30 + r.IntN(1<<30)), OutputShift: -r.IntN(32),
			ActMin: -128, ActMax: 127,
		}
		if i%3 == 0 {
			p.ActMin, p.ActMax = int32(r.IntN(128)-128), int32(r.IntN(128))
		}
		if i%7 == 0 {
			p.Input1Multiplier, p.OutputMultiplier = 1<<30, 1<<31-1
		}
		if i%11 == 0 {
			p.Input1Offset, p.Input2Offset = []int32{-127, 128}[i%2], []int32{128, -127}[(i/2)%2]
		}
		if i < 220 {
			p.OutputShift, p.OutputOffset = -r.IntN(8), int32(r.IntN(64)-32)
			if i%2 == 0 {
				p.ActMin, p.ActMax = -127, 126 // the clamping copy, clamping little
			}
			if i < 80 {
				p.Input1Shift, p.Input2Shift, p.OutputShift = -11-r.IntN(2), -11-r.IntN(2), -r.IntN(2)
			}
			tie := func(shift int) int32 {
				e := -shift
				return int32(1<<30 + (2*r.IntN(1<<(19-e))+1)<<(10+e))
			}
			if i%3 != 2 {
				p.Input1Multiplier = tie(p.Input1Shift)
			}
			if i%3 != 1 {
				p.Input2Multiplier = tie(p.Input2Shift)
			}
			if i%5 == 0 {
				p.OutputMultiplier = 1 << 30
			}
		}
		params = append(params, p)
	}
	return params
}

// addParamsMirrored: both inputs of one multiplier and shift (or nearly:
// one in four has the second's larger by 2^(5+e)): the pairs k2 = -k1 sum
// to u(k) + u(-k), a few units (the rounding's asymmetry), which the
// output (shift 0 to 2, multiplier 2^30 or 2^30+1 putting the sums +-1 on
// its rounding boundaries, or random) shows bit for bit; so every input
// rounding decision reaches the output. Half of the multipliers put a
// small k's numerator on, just below or just above a multiple of 2^(11+e)
// (boundaryMultiplier), the rest make exact ties at every odd k.
func addParamsMirrored(r *rand.Rand) []ref.Add {
	var params []ref.Add
	for i := range 160 {
		e := r.IntN(13)
		m := int32(1<<30 + (2*r.IntN(1<<(19-e))+1)<<(10+e))
		if i%2 == 0 {
			m = boundaryMultiplier(r, e, []int{1, -1, 3, -3, 5, -7}[r.IntN(6)], r.IntN(3)-1)
		}
		off := int32(r.IntN(21) - 10)
		p := ref.Add{
			Input1Offset: off, Input2Offset: off, OutputOffset: int32(r.IntN(64) - 32),
			LeftShift: 20, Input1Multiplier: m, Input1Shift: -e, Input2Multiplier: m, Input2Shift: -e,
			OutputMultiplier: []int32{1 << 30, 1<<30 + 1, int32(1<<30 + r.IntN(1<<30))}[i%3], OutputShift: -r.IntN(3),
			ActMin: -128, ActMax: 127,
		}
		if i%4 == 1 {
			p.ActMin, p.ActMax = -127, 126
		}
		if i%4 == 3 {
			// k*2^(5+e) more: the pairs' sums spread over -2..2
			p.Input2Multiplier += 1 << (5 + e)
		}
		if m == 1<<30 && e == 0 {
			p.Input1Multiplier++ // not the half kernel
		}
		params = append(params, p)
	}
	return params
}

// addParamsHalf: one input at multiplier 2^30, shift 0 (the half kernels;
// either side, so both operand orders), output shifts below 8 as above.
func addParamsHalf(t *testing.T, r *rand.Rand) []ref.Add {
	var params []ref.Add
	for i := range 100 {
		p := ref.Add{
			Input1Offset: int32(r.IntN(256) - 127), Input2Offset: int32(r.IntN(256) - 127), OutputOffset: int32(r.IntN(32) - 16),
			LeftShift:        20,
			Input1Multiplier: int32(1<<30 + r.IntN(1<<30)), Input1Shift: -r.IntN(13),
			Input2Multiplier: 1 << 30, Input2Shift: 0,
			OutputMultiplier: int32(1<<30 + r.IntN(1<<30)), OutputShift: -r.IntN(8),
			ActMin: -128, ActMax: 127,
		}
		if i%2 == 0 {
			p.ActMin, p.ActMax = -127, 126
		}
		if i%3 == 0 {
			// ties in the rounding shift (the hand-made sets above)
			e := 10 + (i/3)%3
			p.Input1Multiplier, p.Input1Shift = int32(1<<30+(2*r.IntN(1<<(19-e))+1)<<(10+e)), -e
		}
		if i%5 == 1 {
			p.OutputMultiplier = 1 << 30
		}
		if i%5 == 0 {
			p.Input1Multiplier = int32(1<<30 + 1 + r.IntN(1<<30-1))
			p.Input1Shift, p.OutputShift = -r.IntN(3), -18-r.IntN(3) // ResNet's
		}
		if i%4 < 2 {
			p.Input1Offset, p.Input1Multiplier, p.Input1Shift, p.Input2Offset, p.Input2Multiplier, p.Input2Shift =
				p.Input2Offset, p.Input2Multiplier, p.Input2Shift, p.Input1Offset, p.Input1Multiplier, p.Input1Shift
		}
		if cp := newAddParams(&p); cp == nil || cp.kernel%6/2 != addHalf || cp.swap != (i%4 < 2) {
			t.Fatalf("%+v: not the half kernel with swap %v", p, i%4 < 2)
		}
		params = append(params, p)
	}
	return params
}

// addParamsXNNPACK: the xnnpack arithmetic, hand-made: multipliers of
// XNNPACK's size and ones whose products wrap int32 (Go and the lanes wrap
// alike), every shift.
func addParamsXNNPACK(r *rand.Rand) []ref.Add {
	var params []ref.Add
	for i := range 100 {
		p := ref.Add{
			XNNPACK: true, OutputOffset: int32(r.IntN(256) - 128),
			Input1Multiplier: int32(r.IntN(1 << 22)), Input2Multiplier: int32(r.IntN(1 << 22)),
			OutputShift: 12 + r.IntN(19), XNNPACKBias: int32(r.Uint32()) >> (r.IntN(8)),
			ActMin: -128, ActMax: 127,
		}
		if i%3 == 0 {
			p.ActMin, p.ActMax = int32(r.IntN(128)-128), int32(r.IntN(128))
		}
		if i%4 == 0 {
			p.Input1Multiplier, p.Input2Multiplier, p.XNNPACKBias = int32(r.Uint32()), int32(r.Uint32()), int32(r.Uint32())
			p.OutputShift = r.IntN(32)
		}
		params = append(params, p)
	}
	return params
}

// boundaryMultiplier is a normalized input multiplier for input shift e
// whose rounding numerator at k, k*m + 2^10 + (2^(e-1) - [k < 0])*2^11
// (addParams; 2^10 alone for e == 0), is res (-1, 0 or 1) modulo
// 2^(11+e): k's term is just below, on or just above a rounding boundary.
// k odd.
func boundaryMultiplier(r *rand.Rand, e, k, res int) int32 {
	c := int64(res) - 1<<10
	if e > 0 {
		c -= 1 << (e + 10)
		if k < 0 {
			c += 1 << 11
		}
	}
	inv := uint64(k) // the inverse of k modulo 2^64 (Newton's iteration)
	for range 6 {
		inv *= 2 - uint64(k)*inv
	}
	mod := uint64(1) << (11 + e)
	m := uint64(c) * inv % mod // m*k = c modulo 2^(11+e)
	return int32(1<<30 + m + uint64(r.IntN(1<<(19-e)-1))*mod)
}

// TestAddComputeCoversEveryPair runs every computed kernel over all 65,536
// input pairs (addParamSets, each on AVX2 and, where the CPU has it,
// AVX-512) and compares with ref.AddInt8 byte for byte.
func TestAddComputeCoversEveryPair(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2")
	}
	x, y := make([]int8, 1<<16), make([]int8, 1<<16)
	for i := range x {
		x[i], y[i] = int8(i>>8), int8(i)
	}
	ux := unsafe.Slice((*uint8)(unsafe.Pointer(&x[0])), len(x))
	uy := unsafe.Slice((*uint8)(unsafe.Pointer(&y[0])), len(y))
	runs := make([]int, len(addKernels))
	want, got := make([]int8, len(x)), make([]int8, len(x)+64)
	for _, p := range addParamSets(t) {
		ref.AddInt8(&p, x, y, want)
		for _, avx512 := range addISAs() {
			cp := newAddParamsFor(&p, avx512)
			if cp == nil {
				t.Fatalf("%+v: not computed", p)
			}
			clear(got)
			if n := addCompute(cp, ux, uy, got[:len(x)]); n != len(x) {
				t.Fatalf("%s computed %d of %d", addKernels[cp.kernel].name, n, len(x))
			}
			runs[cp.kernel]++
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s, %+v: x %d y %d: got %d, want %d", addKernels[cp.kernel].name, p, x[i], y[i], got[i], want[i])
				}
			}
			if slices.ContainsFunc(got[len(x):], func(v int8) bool { return v != 0 }) {
				t.Fatalf("%s: written past the end", addKernels[cp.kernel].name)
			}
		}
	}
	for i, k := range addKernels {
		if runs[i] == 0 && (k.step == 32 || hasAVX512BW) {
			t.Errorf("%s never ran", k.name)
		}
		t.Logf("%s: %d parameter sets", k.name, runs[i])
	}
}

// TestAddOutsideTheRewriteIsTheTable: parameters the kernels do not cover
// (input scales 2^12 and more apart, another left shift, an unnormalized
// multiplier, an xnnpack shift beyond 31) are refused, and NewAdd's
// table runs them, exactly.
func TestAddOutsideTheRewriteIsTheTable(t *testing.T) {
	x, y := make([]int8, 1<<16), make([]int8, 1<<16)
	for i := range x {
		x[i], y[i] = int8(i>>8), int8(i)
	}
	base := ref.Add{
		Input1Offset: 3, Input2Offset: -5, OutputOffset: 7, LeftShift: 20,
		Input1Multiplier: 1 << 30, Input1Shift: 0, Input2Multiplier: 1500000000, Input2Shift: -2,
		OutputMultiplier: 1800000000, OutputShift: -19, ActMin: -128, ActMax: 127,
	}
	p, err := ref.NewAddInt8(1, 0, 1e-9, 0, 1.5, 5, -128, 127)
	if err != nil {
		t.Fatal(err)
	}
	outside := []ref.Add{p}
	for _, f := range []func(*ref.Add){
		func(p *ref.Add) { p.Input2Shift = -13 },
		func(p *ref.Add) { p.Input2Shift = -31 },
		func(p *ref.Add) { p.Input1Shift = -13; p.Input1Multiplier = 1<<30 + 1 },
		func(p *ref.Add) { p.LeftShift = 19 },
		func(p *ref.Add) { p.Input2Multiplier = 1<<30 - 1 },
		func(p *ref.Add) { p.OutputShift = 1 },
		func(p *ref.Add) { p.Input1Offset = -128 },
		func(p *ref.Add) {
			*p = ref.Add{XNNPACK: true, Input1Multiplier: 5, Input2Multiplier: 7, OutputShift: 32, ActMin: -128, ActMax: 127}
		},
	} {
		q := base
		f(&q)
		outside = append(outside, q)
	}
	for _, p := range outside {
		a := NewAdd(&p, nil)
		if a.comp != nil {
			t.Fatalf("%+v: computed by %s; want the table", p, addKernels[a.comp.kernel].name)
		}
		want, got := make([]int8, len(x)), make([]int8, len(x))
		ref.AddInt8(&p, x, y, want)
		a.run(x, y, got, 0, (len(x)+addChunk-1)/addChunk)
		if !slices.Equal(got, want) {
			t.Fatalf("%+v: the table differs from ref.AddInt8", p)
		}
	}
}

// TestAddRunsEveryLength: a chunk's tail past the kernel's step is the
// table's, for lengths around the steps (AVX2's 32, AVX-512's 64) and
// across chunks; nothing is written past the end.
func TestAddRunsEveryLength(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	x, y := make([]int8, 3*addChunk), make([]int8, 3*addChunk)
	for i := range x {
		x[i], y[i] = int8(r.Uint32()), int8(r.Uint32())
	}
	p, err := ref.NewAddInt8(0.031, -3, 0.022, -128, 0.041, -128, -128, 127)
	if err != nil {
		t.Fatal(err)
	}
	px, err := ref.NewAddXNNPACK(0.031, -3, 0.022, -128, 0.041, -128, -128, 127)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []ref.Add{p, px} {
		for _, avx512 := range addISAs() {
			a := NewAdd(&p, nil)
			a.comp = newAddParamsFor(&p, avx512)
			for _, n := range []int{0, 1, 31, 32, 33, 63, 64, 65, 127, 1000, addChunk - 1, addChunk + 70, 3 * addChunk} {
				want, got := make([]int8, n), make([]int8, n+64)
				ref.AddInt8(&p, x[:n], y[:n], want)
				a.run(x[:n], y[:n], got[:n], 0, (n+addChunk-1)/addChunk)
				if !slices.Equal(got[:n], want) {
					t.Fatalf("%+v, AVX-512 %v, %d elements: differs from ref.AddInt8", p, avx512, n)
				}
				if slices.ContainsFunc(got[n:], func(v int8) bool { return v != 0 }) {
					t.Fatalf("%d elements: written past the end", n)
				}
			}
		}
	}
}

// BenchmarkAdd is ResNet-50's stage-1 ADD size (56x56x256), operands
// spread as activations are, one thread: the table lookup and the
// computed kernels of each ISA, in both arithmetics.
func BenchmarkAdd(b *testing.B) {
	r := rand.New(rand.NewPCG(8, 8))
	n := 56 * 56 * 256
	x, y, o := make([]uint8, n), make([]uint8, n), make([]int8, n)
	for i := range x {
		x[i], y[i] = uint8(r.NormFloat64()*30), uint8(r.NormFloat64()*30)
	}
	for _, arith := range []string{"tflite", "xnnpack"} {
		newAdd := ref.NewAddInt8
		if arith == "xnnpack" {
			newAdd = ref.NewAddXNNPACK
		}
		p, err := newAdd(0.031, -3, 0.022, -128, 0.041, -128, -128, 127)
		if err != nil {
			b.Fatal(err)
		}
		a := NewAdd(&p, nil)
		b.Run(arith+"/table", func(b *testing.B) {
			for b.Loop() {
				addTable(a.table, x, y, o)
			}
		})
		for _, avx512 := range addISAs() {
			c := newAddParamsFor(&p, avx512)
			b.Run(arith+"/"+addKernels[c.kernel].name, func(b *testing.B) {
				for b.Loop() {
					addCompute(c, x, y, o)
				}
			})
		}
	}
}
