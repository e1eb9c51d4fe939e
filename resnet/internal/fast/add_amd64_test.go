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

// TestAddComputeCoversEveryPair runs addComputeAVX2 over all 65,536 input
// pairs for parameter sets from ref.NewAddInt8 (equal scales: a zero input
// shift; scales far apart: shifts up to 30; output scales near the 2^-20
// limit and large ones; zero points at both ends; ReLU and ReLU6-like
// clamps) and compares with ref.AddInt8 byte for byte.
func TestAddComputeCoversEveryPair(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2")
	}
	x, y := make([]int8, 1<<16), make([]int8, 1<<16)
	for i := range x {
		x[i], y[i] = int8(i>>8), int8(i)
	}
	r := rand.New(rand.NewPCG(9, 9))
	type sc struct {
		s1, s2, so float32
		z1, z2, zo int32
		lo, hi     int32
	}
	cases := []sc{
		{0.05, 0.05, 0.1, 0, 0, 0, -128, 127},
		{0.05, 0.05, 0.05, -128, 127, -128, -128, 127},
		{0.02, 0.07, 0.09, 3, -7, -128, -128, 127},
		{1, 1e-9, 1.5, 128 - 128, -128, 5, -128, 127},
		{1e-9, 1, 0.7, 127, 0, 0, -128, 127},
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
	}
	// Hand-made parameters over the whole range the rewrite accepts: with
	// large input shifts the sums are small and every bit of them reaches
	// the output, so an off-by-one anywhere inside shows.
	for i := range 300 {
		sh := func() int {
			if r.IntN(4) == 0 {
				return 0
			}
			return -r.IntN(32)
		}
		p := ref.Add{
			Input1Offset: int32(r.IntN(256) - 127), Input2Offset: int32(r.IntN(256) - 127), OutputOffset: int32(r.IntN(256) - 128),
			LeftShift:        20,
			Input1Multiplier: int32(1<<30 + r.IntN(1<<30)), Input1Shift: sh(),
			Input2Multiplier: int32(1<<30 + r.IntN(1<<30)), Input2Shift: sh(),
			OutputMultiplier: int32(1<<30 + r.IntN(1<<30)), OutputShift: sh(),
			ActMin: -128, ActMax: 127,
		}
		if i%3 == 0 {
			p.ActMin, p.ActMax = int32(r.IntN(128)-128), int32(r.IntN(128))
		}
		if i%7 == 0 {
			p.Input1Multiplier, p.OutputMultiplier = 1<<30, 1<<31-1
		}
		if i < 160 {
			// sums within about +-128: the output stage sees every bit
			p.Input1Shift, p.Input2Shift, p.OutputShift = -20-r.IntN(6), -20-r.IntN(6), -r.IntN(2)
			p.OutputOffset = int32(r.IntN(32) - 16)
			if i%2 == 0 {
				p.ActMin, p.ActMax = -127, 126 // the clamping copy, clamping little
			}
			if i%3 == 0 {
				// multipliers of few bits: exact ties in the rounding shifts
				p.Input1Multiplier, p.Input2Multiplier = []int32{1 << 30, 3 << 29, 1<<30 + 1<<10}[(i/3)%3], []int32{1 << 30, 5 << 28, 1<<30 + 3<<9}[(i/9)%3]
				p.Input1Shift, p.Input2Shift = -20-(i/3)%3, -20-(i/5)%3
			}
		}
		params = append(params, p)
	}
	// One input at multiplier 2^30, shift 0 (the cheap copies; either
	// side, so both operand orders), the other's term small and the output
	// unscaled: where the cheap input is its zero point (k = 0) every bit
	// of the other term reaches the output.
	for i := range 100 {
		p := ref.Add{
			Input1Offset: int32(r.IntN(256) - 127), Input2Offset: int32(r.IntN(256) - 127), OutputOffset: int32(r.IntN(32) - 16),
			LeftShift:        20,
			Input1Multiplier: int32(1<<30 + r.IntN(1<<30)), Input1Shift: -20 - r.IntN(6),
			Input2Multiplier: 1 << 30, Input2Shift: 0,
			OutputMultiplier: int32(1<<30 + r.IntN(1<<30)), OutputShift: -r.IntN(2),
			ActMin: -128, ActMax: 127,
		}
		if i%2 == 0 {
			p.ActMin, p.ActMax = -127, 126
		}
		if i%3 == 0 {
			// multipliers of few bits: exact ties in the rounding shift
			p.Input1Multiplier, p.Input1Shift = []int32{1 << 30, 3 << 29, 1<<30 + 1<<10, 1<<30 + 3<<9}[(i/3)%4], -20-(i/3)%3
		}
		if i%4 < 2 {
			p.Input1Offset, p.Input1Multiplier, p.Input1Shift, p.Input2Offset, p.Input2Multiplier, p.Input2Shift =
				p.Input2Offset, p.Input2Multiplier, p.Input2Shift, p.Input1Offset, p.Input1Multiplier, p.Input1Shift
		}
		if cp := newAddParams(&p); cp == nil || !cp.cheap || cp.swap != (i%4 < 2) {
			t.Fatalf("%+v: not the cheap copy with swap %v", p, i%4 < 2)
		}
		params = append(params, p)
	}
	for _, p := range params {
		cp := newAddParams(&p)
		if cp == nil {
			t.Fatalf("%+v: not computed", p)
		}
		want, got := make([]int8, len(x)), make([]int8, len(x)+32)
		ref.AddInt8(&p, x, y, want)
		ux := unsafe.Slice((*uint8)(unsafe.Pointer(&x[0])), len(x))
		uy := unsafe.Slice((*uint8)(unsafe.Pointer(&y[0])), len(y))
		if n := addCompute(cp, ux, uy, got[:len(x)]); n != len(x) {
			t.Fatalf("computed %d of %d", n, len(x))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%+v: x %d y %d: got %d, want %d", p, x[i], y[i], got[i], want[i])
			}
		}
		if slices.ContainsFunc(got[len(x):], func(v int8) bool { return v != 0 }) {
			t.Fatalf("written past the end")
		}
	}
	var px ref.Add
	px.XNNPACK = true
	if newAddParams(&px) != nil {
		t.Fatal("the xnnpack arithmetic must stay on the table")
	}
}

// BenchmarkAdd is ResNet-50's stage-1 ADD size (56x56x256), operands
// spread as activations are, one thread: the table lookup and the
// computed arithmetic.
func BenchmarkAdd(b *testing.B) {
	p, err := ref.NewAddInt8(0.031, -3, 0.022, -128, 0.041, -128, -128, 127)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(8, 8))
	n := 56 * 56 * 256
	x, y, o := make([]uint8, n), make([]uint8, n), make([]int8, n)
	for i := range x {
		x[i], y[i] = uint8(r.NormFloat64()*30), uint8(r.NormFloat64()*30)
	}
	a := NewAdd(&p, nil)
	b.Run("table", func(b *testing.B) {
		for b.Loop() {
			addTable(a.table, x, y, o)
		}
	})
	b.Run("computed", func(b *testing.B) {
		for b.Loop() {
			addCompute(a.comp, x, y, o)
		}
	})
}
