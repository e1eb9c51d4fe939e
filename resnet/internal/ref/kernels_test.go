package ref

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
)

func randInt8(r *rand.Rand, n int) []int8 {
	s := make([]int8, n)
	for i := range s {
		s[i] = int8(r.IntN(256) - 128)
	}
	return s
}

func randFloat(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// quantizeReal is the float64 oracle's requantization: round to nearest,
// add the zero point, clamp.
func quantizeReal(real float64, scale float64, zp int32, lo, hi int32) int32 {
	q := int32(math.Round(real/scale)) + zp
	return min(max(q, lo), hi)
}

func within1LSB(t *testing.T, what string, got []int8, want []int32) {
	t.Helper()
	for i := range got {
		if d := int32(got[i]) - want[i]; d > 1 || d < -1 {
			t.Fatalf("%s: element %d = %d, float64 oracle says %d", what, i, got[i], want[i])
		}
	}
}

// convCase is a convolution geometry; the same cases run through the int8,
// float and depthwise kernels.
type convCase struct {
	name                 string
	batch, inH, inW, inC int
	outC, kh, kw         int
	strideH, strideW     int
	dilH, dilW           int
	padding              resnet.Padding
	act                  resnet.Activation
	depthMultiplier      int // depthwise cases
	perTensor            bool
}

func (c convCase) geometry(depthwise bool) Conv {
	p := Conv{
		Batch: c.batch, InH: c.inH, InW: c.inW, InC: c.inC, OutC: c.outC,
		FilterH: c.kh, FilterW: c.kw, StrideH: c.strideH, StrideW: c.strideW,
		DilationH: c.dilH, DilationW: c.dilW,
	}
	if depthwise {
		p.DepthMultiplier = c.depthMultiplier
		p.OutC = c.inC * c.depthMultiplier
	}
	p.OutH = OutSize(c.padding, c.inH, c.kh, c.strideH, c.dilH)
	p.OutW = OutSize(c.padding, c.inW, c.kw, c.strideW, c.dilW)
	p.PadH, _ = PaddingBefore(c.strideH, c.dilH, c.inH, c.kh, p.OutH)
	p.PadW, _ = PaddingBefore(c.strideW, c.dilW, c.inW, c.kw, p.OutW)
	return p
}

var convCases = []convCase{
	{name: "1x1 stride 1", batch: 1, inH: 4, inW: 4, inC: 3, outC: 5, kh: 1, kw: 1, strideH: 1, strideW: 1, dilH: 1, dilW: 1, padding: resnet.PaddingValid, depthMultiplier: 1},
	{name: "3x3 same relu", batch: 1, inH: 5, inW: 6, inC: 4, outC: 3, kh: 3, kw: 3, strideH: 1, strideW: 1, dilH: 1, dilW: 1, padding: resnet.PaddingSame, act: resnet.ActRelu, depthMultiplier: 2},
	{name: "3x3 same stride 2 odd sizes (padding after only)", batch: 2, inH: 6, inW: 7, inC: 3, outC: 4, kh: 3, kw: 3, strideH: 2, strideW: 2, dilH: 1, dilW: 1, padding: resnet.PaddingSame, depthMultiplier: 1},
	{name: "7x7 same stride 2 relu6", batch: 1, inH: 9, inW: 9, inC: 2, outC: 3, kh: 7, kw: 7, strideH: 2, strideW: 2, dilH: 1, dilW: 1, padding: resnet.PaddingSame, act: resnet.ActRelu6, depthMultiplier: 3},
	{name: "valid stride 2x1 non-square filter", batch: 1, inH: 7, inW: 5, inC: 3, outC: 2, kh: 3, kw: 2, strideH: 2, strideW: 1, dilH: 1, dilW: 1, padding: resnet.PaddingValid, depthMultiplier: 1},
	{name: "dilation 2 same", batch: 1, inH: 7, inW: 7, inC: 2, outC: 3, kh: 3, kw: 3, strideH: 1, strideW: 1, dilH: 2, dilW: 2, padding: resnet.PaddingSame, depthMultiplier: 2},
	{name: "per-tensor weights", batch: 1, inH: 4, inW: 4, inC: 3, outC: 4, kh: 3, kw: 3, strideH: 1, strideW: 1, dilH: 1, dilW: 1, padding: resnet.PaddingSame, perTensor: true, depthMultiplier: 1},
}

// quantParams are random but plausible scales for one test.
type quantParams struct {
	inScale, outScale float32
	inZP, outZP       int32
	wScales           []float32
}

func randomQuant(r *rand.Rand, channels int, perTensor bool) quantParams {
	q := quantParams{
		inScale:  float32(0.01 + 0.05*r.Float64()),
		outScale: float32(0.02 + 0.1*r.Float64()),
		inZP:     int32(r.IntN(60) - 30),
		outZP:    int32(r.IntN(60) - 30),
	}
	n := channels
	if perTensor {
		n = 1
	}
	for range n {
		q.wScales = append(q.wScales, float32(0.002+0.01*r.Float64()))
	}
	return q
}

func (q quantParams) wScale(c int) float64 {
	if len(q.wScales) == 1 {
		return float64(q.wScales[0])
	}
	return float64(q.wScales[c])
}

func TestConvInt8AgreesWithFloat64WithinOneLSB(t *testing.T) {
	for _, depthwise := range []bool{false, true} {
		for i, c := range convCases {
			name := fmt.Sprintf("%s depthwise=%v", c.name, depthwise)
			t.Run(name, func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(i), 7))
				p := c.geometry(depthwise)
				q := randomQuant(r, p.OutC, c.perTensor)
				var filter []int8
				if depthwise {
					filter = randInt8(r, c.kh*c.kw*p.OutC)
				} else {
					filter = randInt8(r, p.OutC*c.kh*c.kw*c.inC)
				}
				input := randInt8(r, c.batch*c.inH*c.inW*c.inC)
				bias := make([]int32, p.OutC)
				for k := range bias {
					bias[k] = int32(r.IntN(2000) - 1000)
				}
				p.InputOffset, p.OutputOffset = -q.inZP, q.outZP
				p.Multiplier, p.Shift = PerChannelMultipliers(q.inScale, q.wScales, q.outScale, p.OutC)
				p.ActMin, p.ActMax = ActivationRangeInt8(c.act, q.outScale, q.outZP)
				out := make([]int8, c.batch*p.OutH*p.OutW*p.OutC)
				if depthwise {
					DepthwiseConvInt8(&p, input, filter, bias, out)
				} else {
					ConvInt8(&p, input, filter, bias, out)
				}

				// Oracle: dequantize, convolve in float64, quantize.
				want := make([]int32, len(out))
				for b := 0; b < c.batch; b++ {
					for oy := 0; oy < p.OutH; oy++ {
						for ox := 0; ox < p.OutW; ox++ {
							for oc := 0; oc < p.OutC; oc++ {
								var sum float64
								ic0, ic1 := 0, c.inC
								if depthwise {
									ic0 = oc / c.depthMultiplier
									ic1 = ic0 + 1
								}
								for fy := 0; fy < c.kh; fy++ {
									for fx := 0; fx < c.kw; fx++ {
										iy := oy*c.strideH - p.PadH + fy*c.dilH
										ix := ox*c.strideW - p.PadW + fx*c.dilW
										if iy < 0 || iy >= c.inH || ix < 0 || ix >= c.inW {
											continue // padding is real zero
										}
										for ic := ic0; ic < ic1; ic++ {
											x := float64(int32(input[((b*c.inH+iy)*c.inW+ix)*c.inC+ic])-q.inZP) * float64(q.inScale)
											var w float64
											if depthwise {
												w = float64(filter[(fy*c.kw+fx)*p.OutC+oc])
											} else {
												w = float64(filter[((oc*c.kh+fy)*c.kw+fx)*c.inC+ic])
											}
											sum += x * w * q.wScale(oc)
										}
									}
								}
								sum += float64(bias[oc]) * float64(q.inScale) * q.wScale(oc)
								want[((b*p.OutH+oy)*p.OutW+ox)*p.OutC+oc] = quantizeReal(sum, float64(q.outScale), q.outZP, p.ActMin, p.ActMax)
							}
						}
					}
				}
				within1LSB(t, name, out, want)
			})
		}
	}
}

func TestConvInt8HandComputed(t *testing.T) {
	// 1x3x3x1 input 1..9 (zero point 0), one 2x2 filter of ones, VALID,
	// bias 2, multiplier 0.5: each output is (window sum + 2) / 2.
	input := []int8{1, 2, 3, 4, 5, 6, 7, 8, 9}
	filter := []int8{1, 1, 1, 1}
	m, s := QuantizeMultiplier(0.5)
	p := Conv{Batch: 1, InH: 3, InW: 3, InC: 1, OutH: 2, OutW: 2, OutC: 1, FilterH: 2, FilterW: 2,
		StrideH: 1, StrideW: 1, DilationH: 1, DilationW: 1,
		Multiplier: []int32{m}, Shift: []int{s}, ActMin: -128, ActMax: 127}
	out := make([]int8, 4)
	ConvInt8(&p, input, filter, []int32{2}, out)
	want := []int8{7, 9, 13, 15} // (12+2)/2, (16+2)/2, (24+2)/2, (28+2)/2
	if !slices.Equal(out, want) {
		t.Errorf("ConvInt8 = %v, want %v", out, want)
	}

	// With an input zero point of 5, a SAME 3x3 filter of ones on a 1x1
	// image sees only the centre: padding contributes real zero, not -5.
	p = Conv{Batch: 1, InH: 1, InW: 1, InC: 1, OutH: 1, OutW: 1, OutC: 1, FilterH: 3, FilterW: 3,
		StrideH: 1, StrideW: 1, DilationH: 1, DilationW: 1, PadH: 1, PadW: 1,
		InputOffset: -5, Multiplier: []int32{1 << 30}, Shift: []int{1}, ActMin: -128, ActMax: 127}
	ConvInt8(&p, []int8{7}, []int8{1, 1, 1, 1, 1, 1, 1, 1, 1}, nil, out[:1])
	if out[0] != 2 {
		t.Errorf("ConvInt8 of a padded 1x1 image = %d, want 2 (7-5, padding adds nothing)", out[0])
	}

	// Saturation: a large accumulator clamps at 127 and -128.
	p = Conv{Batch: 1, InH: 1, InW: 1, InC: 2, OutH: 1, OutW: 1, OutC: 2, FilterH: 1, FilterW: 1,
		StrideH: 1, StrideW: 1, DilationH: 1, DilationW: 1,
		Multiplier: []int32{1 << 30, 1 << 30}, Shift: []int{1, 1}, ActMin: -128, ActMax: 127}
	ConvInt8(&p, []int8{127, 127}, []int8{127, 127, -128, -128}, nil, out[:2])
	if out[0] != 127 || out[1] != -128 {
		t.Errorf("ConvInt8 saturation = %v, want [127 -128]", out[:2])
	}
}

func TestConvFloatAgreesWithFloat64(t *testing.T) {
	for i, c := range convCases {
		for _, depthwise := range []bool{false, true} {
			r := rand.New(rand.NewPCG(uint64(i), 9))
			p := c.geometry(depthwise)
			p.FloatMin, p.FloatMax = ActivationRangeFloat(c.act)
			var filter []float32
			if depthwise {
				filter = randFloat(r, c.kh*c.kw*p.OutC)
			} else {
				filter = randFloat(r, p.OutC*c.kh*c.kw*c.inC)
			}
			input := randFloat(r, c.batch*c.inH*c.inW*c.inC)
			bias := randFloat(r, p.OutC)
			out := make([]float32, c.batch*p.OutH*p.OutW*p.OutC)
			if depthwise {
				DepthwiseConvFloat(&p, input, filter, bias, out)
			} else {
				ConvFloat(&p, input, filter, bias, out)
			}
			for b := 0; b < c.batch; b++ {
				for oy := 0; oy < p.OutH; oy++ {
					for ox := 0; ox < p.OutW; ox++ {
						for oc := 0; oc < p.OutC; oc++ {
							sum := float64(bias[oc])
							ic0, ic1 := 0, c.inC
							if depthwise {
								ic0 = oc / c.depthMultiplier
								ic1 = ic0 + 1
							}
							for fy := 0; fy < c.kh; fy++ {
								for fx := 0; fx < c.kw; fx++ {
									iy := oy*c.strideH - p.PadH + fy*c.dilH
									ix := ox*c.strideW - p.PadW + fx*c.dilW
									if iy < 0 || iy >= c.inH || ix < 0 || ix >= c.inW {
										continue
									}
									for ic := ic0; ic < ic1; ic++ {
										x := float64(input[((b*c.inH+iy)*c.inW+ix)*c.inC+ic])
										var w float64
										if depthwise {
											w = float64(filter[(fy*c.kw+fx)*p.OutC+oc])
										} else {
											w = float64(filter[((oc*c.kh+fy)*c.kw+fx)*c.inC+ic])
										}
										sum += x * w
									}
								}
							}
							want := math.Min(math.Max(sum, float64(p.FloatMin)), float64(p.FloatMax))
							got := out[((b*p.OutH+oy)*p.OutW+ox)*p.OutC+oc]
							if math.Abs(float64(got)-want) > 1e-4 {
								t.Fatalf("%s depthwise=%v: output (%d,%d,%d,%d) = %g, want %g", c.name, depthwise, b, oy, ox, oc, got, want)
							}
						}
					}
				}
			}
		}
	}
}

func TestFullyConnectedInt8AgreesWithFloat64(t *testing.T) {
	for _, tc := range []struct {
		name      string
		perTensor bool
		filterZP  int32
		act       resnet.Activation
	}{
		{"per-channel weights", false, 0, resnet.ActNone},
		{"per-tensor weights with relu", true, 0, resnet.ActRelu},
		{"per-tensor weights with a zero point", true, 3, resnet.ActNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, 6))
			const batch, in, outD = 3, 37, 11
			q := randomQuant(r, outD, tc.perTensor)
			p := FullyConnected{Batch: batch, InDepth: in, OutDepth: outD,
				InputOffset: -q.inZP, FilterOffset: -tc.filterZP, OutputOffset: q.outZP}
			p.Multiplier, p.Shift = PerChannelMultipliers(q.inScale, q.wScales, q.outScale, len(q.wScales))
			p.ActMin, p.ActMax = ActivationRangeInt8(tc.act, q.outScale, q.outZP)
			x, w := randInt8(r, batch*in), randInt8(r, outD*in)
			bias := make([]int32, outD)
			for i := range bias {
				bias[i] = int32(r.IntN(4000) - 2000)
			}
			out := make([]int8, batch*outD)
			FullyConnectedInt8(&p, x, w, bias, out)
			want := make([]int32, len(out))
			for b := range batch {
				for o := range outD {
					sum := float64(bias[o])
					for d := range in {
						sum += float64(int32(x[b*in+d])-q.inZP) * float64(int32(w[o*in+d])-tc.filterZP)
					}
					want[b*outD+o] = quantizeReal(sum*float64(q.inScale)*q.wScale(o), float64(q.outScale), q.outZP, p.ActMin, p.ActMax)
				}
			}
			within1LSB(t, tc.name, out, want)
		})
	}
}

func TestFullyConnectedFloat(t *testing.T) {
	p := FullyConnected{Batch: 2, InDepth: 3, OutDepth: 2, FloatMin: 0, FloatMax: math.MaxFloat32}
	out := make([]float32, 4)
	FullyConnectedFloat(&p, []float32{1, 2, 3, -1, -2, -3}, []float32{1, 0, 1, 0, 1, 0}, []float32{0.5, 0}, out)
	want := []float32{4.5, 2, 0, 0} // relu clamps the second batch
	if !slices.Equal(out, want) {
		t.Errorf("FullyConnectedFloat = %v, want %v", out, want)
	}
}

func TestAveragePoolInt8RoundsHalfAwayFromZero(t *testing.T) {
	tests := []struct {
		values []int8
		want   int8
	}{
		{[]int8{1, 2}, 2},       // 1.5 -> 2
		{[]int8{-1, -2}, -2},    // -1.5 -> -2
		{[]int8{0, -1}, -1},     // -0.5 -> -1
		{[]int8{0, 1}, 1},       // 0.5 -> 1
		{[]int8{1, 1, 1, 2}, 1}, // 1.25 -> 1
		{[]int8{-1, -1, -1, -2}, -1},
		{[]int8{1, 1, 2, 2}, 2}, // 1.5 -> 2
		{[]int8{-128, -128, -128, -128}, -128},
		{[]int8{127, 127, 127, 127}, 127},
	}
	for _, tt := range tests {
		n := len(tt.values)
		p := Pool{Batch: 1, InH: 1, InW: n, C: 1, OutH: 1, OutW: 1, FilterH: 1, FilterW: n,
			StrideH: 1, StrideW: 1, ActMin: -128, ActMax: 127}
		out := make([]int8, 1)
		AveragePoolInt8(&p, tt.values, out)
		if out[0] != tt.want {
			t.Errorf("AveragePoolInt8(%v) = %d, want %d", tt.values, out[0], tt.want)
		}
	}
}

func TestPoolsIgnorePaddingAndClamp(t *testing.T) {
	// 1x3x3x1 input, 3x3 SAME pools with stride 2: output 2x2; the corner
	// windows cover 2x2 inputs, the others fewer.
	input := []int8{1, 2, 3, 4, 5, 6, 7, 8, 9}
	p := Pool{Batch: 1, InH: 3, InW: 3, C: 1, FilterH: 3, FilterW: 3, StrideH: 2, StrideW: 2,
		ActMin: -128, ActMax: 127}
	p.OutH = OutSize(resnet.PaddingSame, 3, 3, 2, 1)
	p.OutW = p.OutH
	p.PadH, _ = PaddingBefore(2, 1, 3, 3, p.OutH)
	p.PadW = p.PadH
	out := make([]int8, 4)
	MaxPoolInt8(&p, input, out)
	if want := []int8{5, 6, 8, 9}; !slices.Equal(out, want) {
		t.Errorf("MaxPoolInt8 = %v, want %v", out, want)
	}
	AveragePoolInt8(&p, input, out)
	// windows: {1,2,4,5}=3, {2,3,5,6}=4, {4,5,7,8}=6, {5,6,8,9}=7
	if want := []int8{3, 4, 6, 7}; !slices.Equal(out, want) {
		t.Errorf("AveragePoolInt8 = %v, want %v", out, want)
	}
	p.ActMin, p.ActMax = 4, 6
	MaxPoolInt8(&p, input, out)
	if want := []int8{5, 6, 6, 6}; !slices.Equal(out, want) {
		t.Errorf("MaxPoolInt8 with clamp [4,6] = %v, want %v", out, want)
	}

	fin := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	fout := make([]float32, 4)
	p.FloatMin, p.FloatMax = -math.MaxFloat32, math.MaxFloat32
	AveragePoolFloat(&p, fin, fout)
	if want := []float32{3, 4, 6, 7}; !slices.Equal(fout, want) {
		t.Errorf("AveragePoolFloat = %v, want %v", fout, want)
	}
	for i := range fin {
		fin[i] = -fin[i]
	}
	MaxPoolFloat(&p, fin, fout)
	if want := []float32{-1, -2, -4, -5}; !slices.Equal(fout, want) {
		t.Errorf("MaxPoolFloat of negatives = %v, want %v", fout, want)
	}
}

func TestAddInt8AgreesWithFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for trial := range 50 {
		s1, s2 := float32(0.01+0.1*r.Float64()), float32(0.01+0.1*r.Float64())
		so := float32(0.02 + 0.2*r.Float64())
		z1, z2, zo := int32(r.IntN(100)-50), int32(r.IntN(100)-50), int32(r.IntN(100)-50)
		act := []resnet.Activation{resnet.ActNone, resnet.ActRelu, resnet.ActRelu6}[trial%3]
		lo, hi := ActivationRangeInt8(act, so, zo)
		p, err := NewAddInt8(s1, z1, s2, z2, so, zo, lo, hi)
		if err != nil {
			t.Fatal(err)
		}
		a, b := randInt8(r, 200), randInt8(r, 200)
		out := make([]int8, 200)
		AddInt8(&p, a, b, out)
		want := make([]int32, 200)
		for i := range want {
			real := float64(int32(a[i])-z1)*float64(s1) + float64(int32(b[i])-z2)*float64(s2)
			want[i] = quantizeReal(real, float64(so), zo, lo, hi)
		}
		within1LSB(t, fmt.Sprintf("trial %d", trial), out, want)
	}
}

func TestNewAddInt8RejectsAnOutputScaleTooSmall(t *testing.T) {
	if _, err := NewAddInt8(1, 0, 1, 0, 1e-9, 0, -128, 127); err == nil {
		t.Error("NewAddInt8 with output scale 1e-9 and input scales 1 succeeded; TFLite aborts there")
	}
}

func TestMeanInt8AgreesWithFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, tc := range []struct {
		name      string
		h, w      int
		sameQuant bool
	}{
		{"7x7 different quantization", 7, 7, false},
		{"7x7 same quantization", 7, 7, true},
		{"1x1 is a requantize", 1, 1, false},
		{"odd 3x5", 3, 5, false},
		{"large 64x64", 64, 64, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const batch, c = 2, 5
			inS, inZ := float32(0.05+0.1*r.Float64()), int32(r.IntN(100)-50)
			outS, outZ := float32(0.01+0.05*r.Float64()), int32(r.IntN(100)-50)
			if tc.sameQuant {
				outS, outZ = inS, inZ
			}
			p := NewMeanInt8(batch, tc.h, tc.w, c, inS, inZ, outS, outZ)
			in := randInt8(r, batch*tc.h*tc.w*c)
			out := make([]int8, batch*c)
			MeanInt8(&p, in, out)
			want := make([]int32, len(out))
			for b := range batch {
				for ch := range c {
					var sum float64
					for i := range tc.h * tc.w {
						sum += float64(int32(in[(b*tc.h*tc.w+i)*c+ch]) - inZ)
					}
					mean := sum / float64(tc.h*tc.w) * float64(inS)
					want[b*c+ch] = quantizeReal(mean, float64(outS), outZ, -128, 127)
				}
			}
			within1LSB(t, tc.name, out, want)
		})
	}
}

func TestMeanFloat(t *testing.T) {
	p := Mean{Batch: 1, H: 2, W: 2, C: 2}
	out := make([]float32, 2)
	MeanFloat(&p, []float32{1, 10, 2, 20, 3, 30, 4, 40}, out)
	if want := []float32{2.5, 25}; !slices.Equal(out, want) {
		t.Errorf("MeanFloat = %v, want %v", out, want)
	}
}

func TestSoftmaxInt8AgreesWithFloatWithinTwoLSB(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, tc := range []struct {
		name  string
		depth int
		scale float32
		beta  float32
	}{
		{"10 classes scale 0.1", 10, 0.1, 1},
		{"1000 classes scale 0.05", 1000, 0.05, 1},
		{"3 classes large scale", 3, 0.5, 1},
		{"beta 2", 16, 0.1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const outer = 3
			p, err := NewSoftmaxInt8(outer, tc.depth, tc.beta, tc.scale)
			if err != nil {
				t.Fatal(err)
			}
			in := randInt8(r, outer*tc.depth)
			out := make([]int8, len(in))
			SoftmaxInt8(&p, in, out)
			for o := range outer {
				row := in[o*tc.depth:][:tc.depth]
				mx := slices.Max(row)
				var sum float64
				for _, v := range row {
					sum += math.Exp(float64(tc.beta) * float64(tc.scale) * float64(int32(v)-int32(mx)))
				}
				for i, v := range row {
					prob := math.Exp(float64(tc.beta)*float64(tc.scale)*float64(int32(v)-int32(mx))) / sum
					want := quantizeReal(prob, 1.0/256, -128, -128, 127)
					if d := int32(out[o*tc.depth+i]) - want; d > 2 || d < -2 {
						t.Fatalf("row %d element %d: got %d, float says %d (prob %g)", o, i, out[o*tc.depth+i], want, prob)
					}
				}
			}
		})
	}
}

func TestSoftmaxInt8Extremes(t *testing.T) {
	p, err := NewSoftmaxInt8(1, 4, 1, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int8, 4)
	// One dominant value: probability ~1 saturates at 127, the rest at -128.
	SoftmaxInt8(&p, []int8{127, -128, -128, -128}, out)
	if want := []int8{127, -128, -128, -128}; !slices.Equal(out, want) {
		t.Errorf("SoftmaxInt8 one-hot = %v, want %v", out, want)
	}
	// Equal values: 1/4 each = 64/256 -> -64.
	SoftmaxInt8(&p, []int8{5, 5, 5, 5}, out)
	if want := []int8{-64, -64, -64, -64}; !slices.Equal(out, want) {
		t.Errorf("SoftmaxInt8 uniform = %v, want %v", out, want)
	}
	if _, err := NewSoftmaxInt8(1, 4, 1, 1e-9); err == nil {
		t.Error("NewSoftmaxInt8 with a tiny input scale succeeded; TFLite aborts there")
	}
}

func TestSoftmaxFloat(t *testing.T) {
	p := Softmax{Outer: 1, Depth: 3, Beta: 1}
	out := make([]float32, 3)
	SoftmaxFloat(&p, []float32{1, 2, 3}, out)
	e := []float64{math.Exp(-2), math.Exp(-1), 1}
	s := e[0] + e[1] + e[2]
	for i := range out {
		if math.Abs(float64(out[i])-e[i]/s) > 1e-6 {
			t.Errorf("SoftmaxFloat[%d] = %g, want %g", i, out[i], e[i]/s)
		}
	}
}

func TestQuantizeInt8RoundsHalfAwayFromZeroAndSaturates(t *testing.T) {
	in := []float32{0.25, -0.25, 0.75, -0.75, 100, -100, float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0}
	out := make([]int8, len(in))
	QuantizeInt8(in, out, 0.5, 1)
	// 0.25/0.5 = 0.5 -> 1, -0.5 -> -1, 1.5 -> 2, -1.5 -> -2; plus zero point 1.
	want := []int8{2, 0, 3, -1, 127, -128, 1, 127, -128, 1}
	if !slices.Equal(out, want) {
		t.Errorf("QuantizeInt8 = %v, want %v", out, want)
	}
}

func TestRequantizeAndDequantize(t *testing.T) {
	m, s := QuantizeMultiplier(0.1 / 0.05)
	p := Requant{InputZeroPoint: 3, OutputZeroPoint: -2, Multiplier: m, Shift: s}
	in := []int8{3, 4, 2, 127, -128}
	out := make([]int8, len(in))
	RequantizeInt8(&p, in, out)
	if want := []int8{-2, 0, -4, 127, -128}; !slices.Equal(out, want) {
		t.Errorf("RequantizeInt8 = %v, want %v", out, want)
	}
	f := make([]float32, len(in))
	DequantizeInt8(in, f, 0.1, 3)
	for i, q := range in {
		want := float32(0.1 * float64(int32(q)-3))
		if math.Abs(float64(f[i]-want)) > 1e-6 {
			t.Errorf("DequantizeInt8(%d) = %g, want %g", q, f[i], want)
		}
	}
}

func TestPadTensorPadsEverySide(t *testing.T) {
	// [1,2,2,1] padded by 1 on H before, 1 on W before and after, 1 on C after.
	p := Pad{InShape: [4]int{1, 2, 2, 1}, Before: [4]int{0, 1, 1, 0}}
	p.OutShape = [4]int{1, 3, 4, 2}
	in := []int8{1, 2, 3, 4}
	out := make([]int8, 1*3*4*2)
	PadTensor(&p, in, out, -7)
	want := []int8{
		-7, -7, -7, -7, -7, -7, -7, -7, // padded row
		-7, -7, 1, -7, 2, -7, -7, -7,
		-7, -7, 3, -7, 4, -7, -7, -7,
	}
	if !slices.Equal(out, want) {
		t.Errorf("PadTensor = %v, want %v", out, want)
	}
	fp := Pad{InShape: [4]int{2, 1, 1, 1}, Before: [4]int{1, 0, 0, 0}, OutShape: [4]int{4, 1, 1, 1}}
	fout := make([]float32, 4)
	PadTensor(&fp, []float32{5, 6}, fout, 0)
	if want := []float32{0, 5, 6, 0}; !slices.Equal(fout, want) {
		t.Errorf("PadTensor on the batch axis = %v, want %v", fout, want)
	}
}
