package fast

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// TestConvWithoutLeftShiftsMatchesReference runs layers none of whose
// channels shifts left (multipliers below 1, as a trained network's
// are): the arm64 kernels then take their inline epilogue, which the
// random cases (a left shift in one channel of eight) seldom reach. Bytes
// per tap that are whole chunks (the fast copy of the loops) and not (the
// general one), with and without -128 weights (NEON's pairs).
func TestConvWithoutLeftShiftsMatchesReference(t *testing.T) {
	cases := []convCase{
		{1, 6, 5, 64, 64, 1, 1, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},
		{1, 7, 6, 32, 70, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},
		{1, 9, 9, 24, 64, 3, 3, 2, 2, 1, 1, resnet.PaddingSame, resnet.ActRelu6},
		{2, 5, 5, 20, 40, 3, 3, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActNone},
		{1, 11, 10, 3, 64, 7, 7, 2, 2, 1, 1, resnet.PaddingSame, resnet.ActRelu},
		{1, 4, 4, 136, 128, 1, 1, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActReluN1To1},
	}
	for ci, c := range cases {
		for _, pairs := range []bool{true, false} {
			for _, small := range []bool{false, true} {
				for _, isa := range Available() {
					t.Run(fmt.Sprintf("%v/%v/pairs=%v/small=%v", isa, c, pairs, small), func(t *testing.T) {
						r := rand.New(rand.NewPCG(uint64(ci), 31))
						p, filter, bias := randomConv(r, c)
						scales := make([]float32, c.outC)
						k := c.fh * c.fw * c.inC
						for i := range scales {
							scales[i] = float32((0.2 + r.Float64()) / float64(k*40))
							switch {
							case small:
								// Small weights and biases, multipliers
								// 1/64 to 1/8: outputs inside int8 and
								// frequent ties in the rounding shift.
								scales[i] = float32(0.05 / float64(int(8)<<r.IntN(4)) * (1 - 0.4*r.Float64()))
							case i%7 == 0:
								scales[i] /= 3000 // large right shifts
							case i%7 == 3:
								scales[i] = 0.035 // multiplier 0.7: no shift at all
							}
						}
						p.Multiplier, p.Shift = ref.PerChannelMultipliers(1, scales, 0.05, c.outC)
						if slices.Max(p.Shift) > 0 {
							t.Fatalf("a channel shifts left by %d", slices.Max(p.Shift))
						}
						for i := range filter {
							if small {
								filter[i] = int8(r.IntN(5) - 2)
							}
							if pairs && filter[i] == -128 {
								filter[i] = -127
							}
							if !pairs && i%53 == 0 {
								filter[i] = -128
							}
						}
						if small && bias != nil {
							for i := range bias {
								bias[i] = int32(r.IntN(401) - 200)
							}
						}
						checkConv(t, r, &p, filter, bias, isa, 1+ci%2)
					})
				}
			}
		}
	}
}

// TestArmFieldsFollowNoPair freezes the offsets of tileArgs' arm64-only
// fields, which gen_tilearm.go hard-codes (offSat ... offSink).
func TestArmFieldsFollowNoPair(t *testing.T) {
	var a tileArgs
	base := unsafe.Offsetof(a.nopair)
	got := []uintptr{unsafe.Offsetof(a.sat) - base, unsafe.Offsetof(a.more) - base, unsafe.Offsetof(a.tstep) - base, unsafe.Offsetof(a.ostep) - base,
		unsafe.Offsetof(a.addT) - base, unsafe.Offsetof(a.resd) - base, unsafe.Offsetof(a.addSink) - base}
	if want := []uintptr{4, 8, 16, 24, 32, 40, 48}; !slices.Equal(got, want) {
		t.Fatalf("tileArgs sat, more, tstep, ostep, addT, resd, addSink at nopair + %v, want + %v (regenerate tile_arm64.s)", got, want)
	}
}

// TestNarrowFitsBoundsTheRequantizedValue checks narrowFits against the
// reference arithmetic: wherever it says a channel fits, the requantized
// value of the extreme accumulators (the function is monotonic, so every
// other accumulator lies between) plus the zero point fits int16; and it
// refuses what the SDOT kernel's inline epilogue cannot do.
func TestNarrowFitsBoundsTheRequantizedValue(t *testing.T) {
	for _, c := range []struct {
		name   string
		bias   int32
		maxSum int64
		m      int32
		shift  int
		zp     int32
		want   bool
	}{
		{"small accumulators", 1000, 1 << 20, 1 << 30, -6, 5, true},
		{"values just inside int16 with the zero point", 0, 32760 << 8, 1<<31 - 1, -8, 3, true},
		{"no right shift", 0, 10, 1 << 30, 0, 0, false},
		{"a left shift", 0, 10, 1 << 30, 2, 0, false},
		{"a negative multiplier", 0, 10, -(1 << 30), -2, 0, false},
		{"a right shift past 31", 0, 10, 1 << 30, -32, 0, false},
		{"accumulators that may wrap", 0, 1 << 31, 1 << 30, -20, 0, false},
		{"the most negative bias", math.MinInt32, 0, 1 << 30, -20, 0, false},
		{"values past int16", 0, 1 << 27, 1<<31 - 1, -10, 0, false},
		{"values inside int16 but not with the zero point", 0, 32760 << 8, 1<<31 - 1, -8, 127, false},
	} {
		if got := narrowFits(c.bias, c.maxSum, c.m, c.shift, c.zp); got != c.want {
			t.Errorf("%s: narrowFits(%d, %d, %d, %d, %d) = %v, want %v", c.name, c.bias, c.maxSum, c.m, c.shift, c.zp, got, c.want)
		}
	}
	r := rand.New(rand.NewPCG(7, 7))
	fits := 0
	for range 200000 {
		bias := int32(r.Uint32() >> r.IntN(32))
		if r.IntN(2) == 0 {
			bias = -bias
		}
		maxSum := int64(r.Uint64() >> (33 + r.IntN(31)))
		m := int32(1<<30 + r.IntN(1<<30))
		shift := -1 - r.IntN(31)
		zp := int32(r.IntN(256) - 128)
		if !narrowFits(bias, maxSum, m, shift, zp) {
			continue
		}
		fits++
		a := max(int64(bias), -int64(bias)) + maxSum
		for _, acc := range []int64{a, -a} {
			x := int64(ref.MultiplyByQuantizedMultiplier(int32(acc), m, shift)) + int64(zp)
			if x > math.MaxInt16 || x < math.MinInt16 {
				t.Fatalf("narrowFits(%d, %d, %d, %d, %d) holds, but accumulator %d requantizes to %d with the zero point", bias, maxSum, m, shift, zp, acc, x)
			}
		}
	}
	if fits < 1000 {
		t.Fatalf("only %d random channels fit: the property is barely tested", fits)
	}
}

// TestConvInlineEpilogueNearInt16MatchesReference drives the SDOT kernel's
// inline epilogue (narrowFits holds for every channel) with accumulators
// whose requantized values come within a few hundred of int16's ends, both
// signs, with zero points at both ends: the narrowing keeps low halves
// without saturation there, so a bound that let a value past int16 through
// would show as a wrong output byte.
func TestConvInlineEpilogueNearInt16MatchesReference(t *testing.T) {
	if !hasNEONDot {
		t.Skip("no SDOT on this CPU")
	}
	for _, zp := range []int32{-128, 0, 127} {
		c := convCase{1, 6, 9, 64, 64, 1, 1, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActNone}
		r := rand.New(rand.NewPCG(uint64(zp+200), 9))
		p, filter, _ := randomConv(r, c)
		p.InputOffset, p.OutputOffset, p.ActMin, p.ActMax = 0, zp, -128, 127
		// Weights of +-127 (one sign per channel), so that inputs of
		// -128 or 127 reach |acc| near 64 * 127 * 128 = 1040384.
		for i := range filter {
			filter[i] = 127
			if (i/64)%2 == 1 {
				filter[i] = -127
			}
		}
		bias := make([]int32, c.outC)
		p.Multiplier = make([]int32, c.outC)
		p.Shift = make([]int, c.outC)
		for oc := range c.outC {
			bias[oc] = int32(r.IntN(2001) - 1000)
			// |x| up to about 32767 - 128 - 300 * (oc % 4): shift 5,
			// multiplier chosen from the bound.
			p.Shift[oc] = -5
			a := int64(1040384 + 1000)
			target := int64(32767-128-2) - int64(300*(oc%4))
			p.Multiplier[oc] = int32(min(target<<36/a, 1<<31-1))
		}
		conv, err := NewConv(&p, filter, bias, NEONDot)
		if err != nil {
			t.Fatal(err)
		}
		if conv.sat {
			t.Fatalf("zp %d: the layer does not take the inline epilogue (Conv.sat): the test misses its path", zp)
		}
		input := make([]int8, p.Batch*p.InH*p.InW*p.InC)
		for i := range input {
			// Each pixel pushes its channels towards one end or the other.
			switch (i / 64) % 3 {
			case 0:
				input[i] = -128
			case 1:
				input[i] = 127
			default:
				input[i] = int8(r.IntN(256) - 128)
			}
		}
		want := make([]int8, len(input)/64*c.outC)
		ref.ConvInt8(&p, input, filter, bias, want)
		run := NewRunner(1, conv.ScratchBytes())
		got := randomInt8s(r, len(want))
		run.Conv(conv, input, got)
		run.Close()
		if !slices.Equal(got, want) {
			t.Errorf("zp %d: output differs from ref.ConvInt8", zp)
		}
	}
}

// TestConvTapsHaveAnEntryPastTheEnd: the arm64 fast loops load the next
// tap's offset after the last tap too (the kernels' tap block), which must
// stay inside Conv.taps' array.
func TestConvTapsHaveAnEntryPastTheEnd(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	for _, c := range []convCase{
		{1, 6, 6, 16, 64, 1, 1, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActNone},
		{1, 6, 6, 32, 64, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},
		{1, 9, 9, 3, 64, 7, 7, 2, 2, 1, 1, resnet.PaddingSame, resnet.ActNone},
	} {
		p, filter, bias := randomConv(r, c)
		for _, isa := range Available() {
			conv, err := NewConv(&p, filter, bias, isa)
			if err != nil {
				t.Fatal(err)
			}
			if len(conv.taps) == 0 || cap(conv.taps) <= len(conv.taps) {
				t.Errorf("%v on %v: Conv.taps has length %d, capacity %d: no entry past the end", c, isa, len(conv.taps), cap(conv.taps))
			}
		}
	}
}

// TestConvOnePixelTailMatchesReference runs layers whose last tile holds
// one or two pixels (49 = 12*4 + 1 in ResNet's 7x7 stage) and that qualify
// for tileNEONDot1 (Conv.dot1: whole chunks per tap, multipliers below 1,
// the full int8 activation range): the tail's pixels run one by one on
// it, in 64-channel blocks that are full, beside a partial one (spill),
// over batches and across rows, on one and several threads.
func TestConvOnePixelTailMatchesReference(t *testing.T) {
	if !hasNEONDot {
		t.Skip("no SDOT on this CPU")
	}
	cases := []convCase{
		{1, 7, 7, 64, 64, 1, 1, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActNone},    // 49: one
		{1, 7, 7, 32, 128, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},    // 49, 3x3 taps
		{2, 3, 3, 16, 96, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},     // 18: two, a partial block
		{1, 5, 6, 48, 64, 1, 1, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActNone},    // 30: two
		{1, 13, 13, 16, 64, 3, 3, 2, 2, 1, 1, resnet.PaddingSame, resnet.ActNone},   // 49, stride 2
		{3, 1, 1, 2048, 192, 1, 1, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActNone}, // 3 pixels: the four-pixel kernel
	}
	for ci, c := range cases {
		for _, threads := range []int{1, 3} {
			t.Run(fmt.Sprintf("%v/threads=%d", c, threads), func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(ci), 77))
				p, filter, bias := randomConv(r, c)
				scales := make([]float32, c.outC)
				k := c.fh * c.fw * c.inC
				for i := range scales {
					scales[i] = float32((0.2 + r.Float64()) / float64(k*40))
				}
				p.Multiplier, p.Shift = ref.PerChannelMultipliers(1, scales, 0.05, c.outC)
				p.ActMin, p.ActMax = -128, 127
				for i := range filter {
					filter[i] = max(filter[i], -127)
				}
				conv, err := NewConv(&p, filter, bias, NEONDot)
				if err != nil {
					t.Fatal(err)
				}
				if !conv.dot1 {
					t.Fatalf("the layer does not qualify for tileNEONDot1 (lsh %v, sat %v): the test misses its path", conv.anyLsh, conv.sat)
				}
				checkConv(t, r, &p, filter, bias, NEONDot, threads)
			})
		}
	}
}

// TestConvReluEpilogueMatchesReference: layers with output zero point
// -128 and the full int8 range (a ReLU's, as TFLite writes them) take the
// SDOT kernel's fourth fast copy, whose epilogue skips the rounding
// fix-up for negative values and narrows by SQXTUN + EOR. Small weights
// and multipliers of 1/64 to 1/8 put many requantized values near zero,
// both signs, and on ties.
func TestConvReluEpilogueMatchesReference(t *testing.T) {
	if !hasNEONDot {
		t.Skip("no SDOT on this CPU")
	}
	cases := []convCase{
		{1, 6, 5, 64, 64, 1, 1, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},
		{1, 7, 6, 32, 128, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},
		{2, 5, 5, 16, 96, 3, 3, 2, 2, 1, 1, resnet.PaddingSame, resnet.ActNone},
	}
	for ci, c := range cases {
		for _, small := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/small=%v", c, small), func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(ci), 91))
				p, filter, bias := randomConv(r, c)
				scales := make([]float32, c.outC)
				k := c.fh * c.fw * c.inC
				for i := range scales {
					scales[i] = float32((0.2 + r.Float64()) / float64(k*40))
					if small {
						scales[i] = float32(0.05 / float64(int(8)<<r.IntN(4)) * (1 - 0.4*r.Float64()))
					}
				}
				p.Multiplier, p.Shift = ref.PerChannelMultipliers(1, scales, 0.05, c.outC)
				p.OutputOffset, p.ActMin, p.ActMax = -128, -128, 127
				for i := range filter {
					filter[i] = max(filter[i], -127)
					if small {
						filter[i] = int8(r.IntN(5) - 2)
					}
				}
				if small && bias != nil {
					for i := range bias {
						bias[i] = int32(r.IntN(401) - 200)
					}
				}
				conv, err := NewConv(&p, filter, bias, NEONDot)
				if err != nil {
					t.Fatal(err)
				}
				if conv.anyLsh || conv.sat || conv.kbytes%16 != 0 {
					t.Fatalf("the layer does not take the inline epilogue (lsh %v, sat %v, %d bytes per tap): the test misses its path", conv.anyLsh, conv.sat, conv.kbytes)
				}
				checkConv(t, r, &p, filter, bias, NEONDot, 1+ci%2)
			})
		}
	}
}
