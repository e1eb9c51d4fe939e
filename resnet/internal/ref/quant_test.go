package ref

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
)

func TestQuantizeMultiplierMatchesTFLiteOnKnownValues(t *testing.T) {
	tests := []struct {
		name      string
		real      float64
		wantMult  int32
		wantShift int
	}{
		{"zero gives zero", 0, 0, 0},
		{"one is 2^30 with shift 1", 1.0, 1 << 30, 1},
		{"half is 2^30 with shift 0", 0.5, 1 << 30, 0},
		{"three quarters", 0.75, 1610612736, 0},
		{"two is 2^30 with shift 2", 2.0, 1 << 30, 2},
		{"just below one rounds up to 2^31 and renormalizes", 1 - math.Pow(2, -40), 1 << 30, 1},
		{"tiny values flush to zero", 1e-12, 0, 0},
		{"2^-32 is the smallest kept (shift -31)", math.Pow(2, -32), 1 << 30, -31},
		{"2^-33 flushes to zero", math.Pow(2, -33), 0, 0},
		{"2^-31", math.Pow(2, -31), 1 << 30, -30},
		{"negative multiplier keeps its sign", -0.75, -1610612736, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, s := QuantizeMultiplier(tt.real)
			if m != tt.wantMult || s != tt.wantShift {
				t.Errorf("QuantizeMultiplier(%g) = (%d, %d), want (%d, %d)", tt.real, m, s, tt.wantMult, tt.wantShift)
			}
		})
	}
}

func TestQuantizeMultiplierRoundTripsWithin2To30Relative(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		real := math.Exp(r.Float64()*30 - 20) // about 2e-9 .. 2e4
		m, s := QuantizeMultiplier(real)
		if m < 1<<30 {
			t.Fatalf("QuantizeMultiplier(%g) significand %d below 2^30", real, m)
		}
		back := float64(m) * math.Pow(2, float64(s-31))
		if rel := math.Abs(back-real) / real; rel > math.Pow(2, -30) {
			t.Fatalf("QuantizeMultiplier(%g) = (%d, %d) -> %g, relative error %g", real, m, s, back, rel)
		}
	}
}

func TestSaturatingRoundingDoublingHighMul(t *testing.T) {
	tests := []struct {
		a, b, want int32
	}{
		{math.MinInt32, math.MinInt32, math.MaxInt32}, // the one overflow saturates
		{1 << 30, 1 << 30, 1 << 29},
		{1 << 15, 1 << 15, 1},   // exactly 0.5 rounds up
		{-1 << 15, 1 << 15, 0},  // exactly -0.5 rounds toward +inf
		{3 << 15, -1 << 15, -1}, // -1.5 -> -1
		{math.MaxInt32, math.MaxInt32, math.MaxInt32 - 1},
		{math.MinInt32, math.MaxInt32, -math.MaxInt32},
		{0, 12345, 0},
	}
	for _, tt := range tests {
		if got := SaturatingRoundingDoublingHighMul(tt.a, tt.b); got != tt.want {
			t.Errorf("SaturatingRoundingDoublingHighMul(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestRoundingDivideByPOTRoundsHalfAwayFromZero(t *testing.T) {
	tests := []struct {
		x    int32
		exp  int
		want int32
	}{
		{3, 1, 2}, {-3, 1, -2}, {1, 1, 1}, {-1, 1, -1},
		{5, 2, 1}, {6, 2, 2}, {-5, 2, -1}, {-6, 2, -2}, {7, 0, 7},
		{math.MaxInt32, 31, 1}, {math.MinInt32, 31, -1}, {math.MinInt32, 1, math.MinInt32 / 2},
	}
	for _, tt := range tests {
		if got := RoundingDivideByPOT(tt.x, tt.exp); got != tt.want {
			t.Errorf("RoundingDivideByPOT(%d, %d) = %d, want %d", tt.x, tt.exp, got, tt.want)
		}
	}
}

func TestMultiplyByQuantizedMultiplierApproximatesRealProduct(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		real := math.Exp(r.Float64()*14 - 12) // about 6e-6 .. 7
		m, s := QuantizeMultiplier(real)
		x := int32(r.IntN(1<<22) - 1<<21)
		got := MultiplyByQuantizedMultiplier(x, m, s)
		want := float64(x) * real
		// Two roundings (the doubling high mul and the shift) give at most
		// one unit of error beyond the multiplier's own 2^-30 relative error.
		if math.Abs(float64(got)-want) > 1+math.Abs(want)*math.Pow(2, -29) {
			t.Fatalf("MultiplyByQuantizedMultiplier(%d, %g) = %d, want about %g", x, real, got, want)
		}
	}
}

func TestMultiplyByQuantizedMultiplierKnownCases(t *testing.T) {
	one, oneShift := QuantizeMultiplier(1)
	half, halfShift := QuantizeMultiplier(0.5)
	tests := []struct {
		name  string
		x     int32
		m     int32
		shift int
		want  int32
	}{
		{"multiplier one is identity", 1234, one, oneShift, 1234},
		{"multiplier one keeps negatives", -1234, one, oneShift, -1234},
		{"half of 3 rounds up to 2", 3, half, halfShift, 2},
		// 0.5 is (2^30, shift 0): the halving happens in the doubling high
		// mul, whose ties go toward +infinity.
		{"half of -3 rounds toward +inf to -1", -3, half, halfShift, -1},
		{"quarter of -6 uses the shift, ties away from zero: -2", -6, half, halfShift - 1, -2},
		{"positive shift multiplies before", 3, 1 << 30, 3, 12},
		{"zero multiplier gives zero", 99999, 0, 0, 0},
	}
	for _, tt := range tests {
		if got := MultiplyByQuantizedMultiplier(tt.x, tt.m, tt.shift); got != tt.want {
			t.Errorf("%s: MultiplyByQuantizedMultiplier(%d, %d, %d) = %d, want %d", tt.name, tt.x, tt.m, tt.shift, got, tt.want)
		}
	}
}

func TestActivationRangeInt8(t *testing.T) {
	tests := []struct {
		name   string
		act    resnet.Activation
		scale  float32
		zp     int32
		lo, hi int32
	}{
		{"none is the full int8 range", resnet.ActNone, 0.1, 3, -128, 127},
		{"relu clamps at the zero point", resnet.ActRelu, 0.1, -10, -10, 127},
		{"relu6 clamps at 6/scale", resnet.ActRelu6, 0.05, -10, -10, 110},
		{"relu6 with a tiny scale saturates at 127", resnet.ActRelu6, 1e-9, -128, -128, 127},
		{"relu_n1_to_1", resnet.ActReluN1To1, 0.25, 0, -4, 4},
		{"relu with zero point below range keeps -128", resnet.ActRelu, 0.1, -128, -128, 127},
		{"rounding of 6/scale is half away from zero", resnet.ActRelu6, 6.0 / 2.5, 0, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lo, hi := ActivationRangeInt8(tt.act, tt.scale, tt.zp)
			if lo != tt.lo || hi != tt.hi {
				t.Errorf("ActivationRangeInt8(%v, %g, %d) = [%d, %d], want [%d, %d]", tt.act, tt.scale, tt.zp, lo, hi, tt.lo, tt.hi)
			}
		})
	}
}

func TestPaddingMatchesTFLiteComputePadding(t *testing.T) {
	tests := []struct {
		name                            string
		padding                         resnet.Padding
		in, filter, stride, dilation    int
		wantOut, wantBefore, wantOffset int
	}{
		{"same stride 1 odd filter", resnet.PaddingSame, 5, 3, 1, 1, 5, 1, 0},
		{"same stride 2 even total", resnet.PaddingSame, 5, 3, 2, 1, 3, 1, 0},
		{"same stride 2 odd total puts extra after", resnet.PaddingSame, 4, 3, 2, 1, 2, 0, 1},
		{"same 7x7 stride 2 on 224 (ResNet stem)", resnet.PaddingSame, 224, 7, 2, 1, 112, 2, 1},
		{"same with dilation 2", resnet.PaddingSame, 5, 3, 1, 2, 5, 2, 0},
		{"valid no padding", resnet.PaddingValid, 5, 3, 1, 1, 3, 0, 0},
		{"valid stride 2", resnet.PaddingValid, 7, 3, 2, 1, 3, 0, 0},
		{"valid with dilation", resnet.PaddingValid, 7, 3, 1, 3, 1, 0, 0},
		{"valid filter larger than input gives no output", resnet.PaddingValid, 2, 3, 1, 1, 0, 0, 0},
		{"same 1x1 stride 2", resnet.PaddingSame, 8, 1, 2, 1, 4, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := OutSize(tt.padding, tt.in, tt.filter, tt.stride, tt.dilation)
			if out != tt.wantOut {
				t.Fatalf("OutSize = %d, want %d", out, tt.wantOut)
			}
			if out < 1 {
				return
			}
			before, offset := PaddingBefore(tt.stride, tt.dilation, tt.in, tt.filter, out)
			if before != tt.wantBefore || offset != tt.wantOffset {
				t.Errorf("PaddingBefore = (%d, %d), want (%d, %d)", before, offset, tt.wantBefore, tt.wantOffset)
			}
		})
	}
	if got := OutSize(resnet.PaddingSame, 5, 3, 0, 1); got != 0 {
		t.Errorf("OutSize with stride 0 = %d, want 0", got)
	}
}

func TestRequantizeFP32RoundsHalfToEvenAndClamps(t *testing.T) {
	for _, c := range []struct {
		acc        int32
		scale      float32
		zp, lo, hi int32
		want       int8
	}{
		{1, 0.5, 0, -128, 127, 0},       // 0.5 -> 0 (even), reference gives 1
		{3, 0.5, 0, -128, 127, 2},       // 1.5 -> 2
		{5, 0.5, 0, -128, 127, 2},       // 2.5 -> 2
		{-1, 0.5, 0, -128, 127, 0},      // -0.5 -> 0
		{-3, 0.5, 0, -128, 127, -2},     // -1.5 -> -2
		{-251, 0.5, 0, -128, 127, -126}, // -125.5 -> -126
		{7, 0.5, 10, -128, 127, 14},     // 3.5 -> 4, + zp
		{1 << 30, 200, 5, -128, 127, 127},
		{-1 << 30, 200, 5, -128, 127, -128},
		{-40, 1, -128, -128, 127, -128}, // ReLU clamp at the zero point
	} {
		if got := RequantizeFP32(c.acc, c.scale, c.zp, c.lo, c.hi); got != c.want {
			t.Errorf("RequantizeFP32(%d, %g, zp %d, [%d, %d]) = %d, want %d", c.acc, c.scale, c.zp, c.lo, c.hi, got, c.want)
		}
	}
}

func TestNewAddXNNPACKRefusesScalesXNNPACKRefuses(t *testing.T) {
	if _, err := NewAddXNNPACK(1, 0, 1, 0, 1e-4, 0, -128, 127); err == nil {
		t.Error("input/output scale ratio 1e4 accepted; XNNPACK refuses ratios of 2^8 and more")
	}
	p, err := NewAddXNNPACK(0.5, 0, 0.5, 0, 1, 0, -128, 127)
	if err != nil {
		t.Fatal(err)
	}
	// 0.5*x + 0.5*y with x+y odd is an exact half: XNNPACK rounds it up.
	for _, c := range []struct{ x, y, want int8 }{{1, 0, 1}, {-1, 0, 0}, {3, 4, 4}, {-3, -4, -3}, {127, 127, 127}} {
		out := make([]int8, 1)
		AddInt8(&p, []int8{c.x}, []int8{c.y}, out)
		if out[0] != c.want {
			t.Errorf("xnnpack ADD 0.5*%d + 0.5*%d = %d, want %d", c.x, c.y, out[0], c.want)
		}
	}
}
