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

func TestTileArgsLayoutMatchesTheAssembly(t *testing.T) {
	var a tileArgs
	// gen_tile.go hard-codes these offsets.
	got := []uintptr{unsafe.Offsetof(a.in), unsafe.Offsetof(a.out), unsafe.Offsetof(a.w), unsafe.Offsetof(a.params),
		unsafe.Offsetof(a.taps), unsafe.Offsetof(a.ntaps), unsafe.Offsetof(a.kbytes), unsafe.Offsetof(a.outZP),
		unsafe.Offsetof(a.actMin), unsafe.Offsetof(a.actMax), unsafe.Offsetof(a.fp32), unsafe.Offsetof(a.nr),
		unsafe.Offsetof(a.lsh), unsafe.Offsetof(a.nopair)}
	want := []uintptr{0, 32, 64, 72, 80, 88, 96, 104, 108, 112, 116, 120, 124, 128}
	if !slices.Equal(got, want) {
		t.Fatalf("tileArgs field offsets = %v, want %v (regenerate tile_amd64.s with gen_tile.go)", got, want)
	}
}

// convCase is one convolution geometry.
type convCase struct {
	batch, inH, inW, inC, outC, fh, fw, sh, sw, dh, dw int
	padding                                            resnet.Padding
	act                                                resnet.Activation
}

func (c convCase) String() string {
	pad := "same"
	if c.padding == resnet.PaddingValid {
		pad = "valid"
	}
	return fmt.Sprintf("n%d_%dx%dx%d_to_%d_k%dx%d_s%dx%d_d%dx%d_%s_act%d", c.batch, c.inH, c.inW, c.inC, c.outC, c.fh, c.fw, c.sh, c.sw, c.dh, c.dw, pad, c.act)
}

// randomConv builds a reference description with random quantization:
// input and output zero points anywhere in int8, per-channel multipliers
// over a wide range (including left shifts), random bias.
func randomConv(r *rand.Rand, c convCase) (ref.Conv, []int8, []int32) {
	p := ref.Conv{Batch: c.batch, InH: c.inH, InW: c.inW, InC: c.inC, OutC: c.outC,
		FilterH: c.fh, FilterW: c.fw, StrideH: c.sh, StrideW: c.sw, DilationH: c.dh, DilationW: c.dw}
	p.OutH = ref.OutSize(c.padding, c.inH, c.fh, c.sh, c.dh)
	p.OutW = ref.OutSize(c.padding, c.inW, c.fw, c.sw, c.dw)
	p.PadH, _ = ref.PaddingBefore(c.sh, c.dh, c.inH, c.fh, p.OutH)
	p.PadW, _ = ref.PaddingBefore(c.sw, c.dw, c.inW, c.fw, p.OutW)
	p.InputOffset = -int32(r.IntN(256) - 128)
	p.OutputOffset = int32(r.IntN(256) - 128)
	outScale := float32(0.02 + r.Float64()*0.1)
	p.ActMin, p.ActMax = ref.ActivationRangeInt8(c.act, outScale, p.OutputOffset)
	k := c.fh * c.fw * c.inC
	scales := make([]float32, c.outC)
	for i := range scales {
		// Around 1/(k*64) gives outputs spread over int8; a few channels far
		// outside it exercise saturation and left shifts.
		scales[i] = float32((0.2 + r.Float64()) / float64(k*40))
		switch r.IntN(8) {
		case 0:
			scales[i] *= 300 // left shift
		case 1:
			scales[i] /= 5000 // large right shift
		}
	}
	p.Multiplier, p.Shift = ref.PerChannelMultipliers(1, scales, outScale, c.outC)
	filter := make([]int8, c.outC*k)
	for i := range filter {
		filter[i] = int8(r.IntN(256) - 128)
	}
	var bias []int32
	if r.IntN(4) != 0 {
		bias = make([]int32, c.outC)
		for i := range bias {
			bias[i] = int32(r.IntN(1<<16) - 1<<15)
		}
	}
	return p, filter, bias
}

func randomInt8s(r *rand.Rand, n int) []int8 {
	v := make([]int8, n)
	for i := range v {
		v[i] = int8(r.IntN(256) - 128)
	}
	return v
}

var convCases = []convCase{
	// ResNet shapes (reduced spatially).
	{1, 8, 8, 64, 64, 1, 1, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},
	{1, 9, 9, 64, 128, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},
	{1, 9, 9, 64, 128, 3, 3, 2, 2, 1, 1, resnet.PaddingSame, resnet.ActNone},
	{1, 8, 8, 128, 256, 1, 1, 2, 2, 1, 1, resnet.PaddingValid, resnet.ActNone},
	{1, 23, 19, 3, 64, 7, 7, 2, 2, 1, 1, resnet.PaddingSame, resnet.ActRelu},
	// Channels that are not multiples of 4, 8, 16 or 64.
	{1, 5, 7, 1, 1, 1, 1, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},
	{1, 5, 7, 5, 13, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu6},
	{1, 6, 6, 7, 65, 3, 3, 2, 2, 1, 1, resnet.PaddingSame, resnet.ActNone},
	{1, 4, 4, 17, 127, 1, 1, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActReluN1To1},
	{1, 7, 5, 130, 70, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},
	// Padding on every side, odd totals, strides and dilation.
	{1, 10, 10, 4, 16, 7, 7, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},
	{1, 10, 11, 6, 20, 4, 5, 3, 2, 1, 1, resnet.PaddingSame, resnet.ActNone},
	{1, 12, 12, 8, 24, 3, 3, 1, 1, 2, 3, resnet.PaddingSame, resnet.ActNone},
	{1, 12, 12, 8, 24, 3, 3, 2, 1, 2, 2, resnet.PaddingValid, resnet.ActRelu},
	{1, 3, 3, 8, 8, 5, 5, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},       // filter larger than image
	{1, 1, 1, 2048, 100, 1, 1, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActNone}, // a fully connected layer
	// Batch > 1, pixel counts not multiples of the tile.
	{3, 5, 3, 9, 33, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},
	{2, 7, 7, 64, 64, 1, 1, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},
	{5, 1, 1, 16, 10, 1, 1, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActNone},
	// CIFAR ResNet stages: exactly 16 and 32 channels (the narrow tiles) and
	// one past them.
	{1, 10, 10, 16, 16, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},
	{1, 10, 10, 16, 32, 3, 3, 2, 2, 1, 1, resnet.PaddingSame, resnet.ActNone},
	{1, 5, 5, 32, 32, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},
	{1, 5, 5, 32, 17, 1, 1, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},
}

func TestNarrowLayersGetNarrowTiles(t *testing.T) {
	for _, isa := range Available() {
		for _, tc := range []struct{ outC, want int }{{1, 16}, {16, 16}, {17, 32}, {32, 32}, {33, 64}, {64, 64}, {100, 64}} {
			if (isa == NEON || isa == NEONDot) && tc.want != nr {
				tc.want = nr // these kernels are 64 wide only
			}
			r := rand.New(rand.NewPCG(uint64(tc.outC), 3))
			p, filter, bias := randomConv(r, convCase{1, 4, 4, 8, tc.outC, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone})
			c, err := NewConv(&p, filter, bias, isa)
			if err != nil {
				t.Fatal(err)
			}
			if c.nr != tc.want || c.blocks != (tc.outC+tc.want-1)/tc.want {
				t.Errorf("%v, %d output channels: tile width %d, %d blocks; want width %d", isa, tc.outC, c.nr, c.blocks, tc.want)
			}
		}
	}
}

func TestConvMatchesReferenceBitForBit(t *testing.T) {
	for _, isa := range Available() {
		for threads := 1; threads <= 3; threads++ {
			for ci, c := range convCases {
				t.Run(fmt.Sprintf("%v/threads=%d/%v", isa, threads, c), func(t *testing.T) {
					r := rand.New(rand.NewPCG(uint64(ci), 7))
					p, filter, bias := randomConv(r, c)
					checkConv(t, r, &p, filter, bias, isa, threads)
				})
			}
		}
	}
}

func TestConvMatchesReferenceOnRandomShapes(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 42))
	n := 150
	if testing.Short() {
		n = 30
	}
	for i := range n {
		c := convCase{batch: 1 + r.IntN(3), inH: 1 + r.IntN(12), inW: 1 + r.IntN(12), inC: 1 + r.IntN(80), outC: 1 + r.IntN(150),
			fh: 1 + r.IntN(4), fw: 1 + r.IntN(4), sh: 1 + r.IntN(3), sw: 1 + r.IntN(3), dh: 1 + r.IntN(2), dw: 1 + r.IntN(2),
			padding: resnet.PaddingSame, act: resnet.Activation(r.IntN(4))}
		if r.IntN(3) == 0 {
			c.padding = resnet.PaddingValid
		}
		if ref.OutSize(c.padding, c.inH, c.fh, c.sh, c.dh) < 1 || ref.OutSize(c.padding, c.inW, c.fw, c.sw, c.dw) < 1 {
			continue
		}
		for _, isa := range Available() {
			t.Run(fmt.Sprintf("%d/%v/%v", i, isa, c), func(t *testing.T) {
				rr := rand.New(rand.NewPCG(uint64(i), 1))
				p, filter, bias := randomConv(rr, c)
				checkConv(t, rr, &p, filter, bias, isa, 1+i%2)
			})
		}
	}
}

func checkConv(t *testing.T, r *rand.Rand, p *ref.Conv, filter []int8, bias []int32, isa ISA, threads int) {
	t.Helper()
	input := randomInt8s(r, p.Batch*p.InH*p.InW*p.InC)
	want := make([]int8, p.Batch*p.OutH*p.OutW*p.OutC)
	ref.ConvInt8(p, input, filter, bias, want)
	c, err := NewConv(p, filter, bias, isa)
	if err != nil {
		t.Fatal(err)
	}
	run := NewRunner(threads, c.ScratchBytes())
	defer run.Close()
	got := randomInt8s(r, len(want)) // garbage that must all be overwritten
	run.Conv(c, input, got)
	for i := range want {
		if got[i] != want[i] {
			px, oc := i/p.OutC, i%p.OutC
			t.Fatalf("output pixel %d channel %d = %d, want %d (reference); multiplier %d shift %d", px, oc, got[i], want[i], p.Multiplier[oc], p.Shift[oc])
		}
	}
}

// TestConvWithSymmetricWeightsMatchesReference runs the cases with weights
// in [-127, 127], as TFLite's int8 weights are: the NEON kernel then sums
// two products in int16 (SMLAL), which a -128 weight would overflow.
func TestConvWithSymmetricWeightsMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 19))
	cases := slices.Clone(convCases)
	for range 40 {
		cases = append(cases, convCase{batch: 1 + r.IntN(2), inH: 1 + r.IntN(10), inW: 1 + r.IntN(10), inC: 1 + r.IntN(90), outC: 1 + r.IntN(130),
			fh: 1 + r.IntN(3), fw: 1 + r.IntN(3), sh: 1 + r.IntN(2), sw: 1 + r.IntN(2), dh: 1, dw: 1,
			padding: resnet.Padding(r.IntN(2)), act: resnet.Activation(r.IntN(4))})
	}
	for ci, c := range cases {
		if ref.OutSize(c.padding, c.inH, c.fh, c.sh, c.dh) < 1 || ref.OutSize(c.padding, c.inW, c.fw, c.sw, c.dw) < 1 {
			continue
		}
		for _, isa := range Available() {
			t.Run(fmt.Sprintf("%v/%v", isa, c), func(t *testing.T) {
				rr := rand.New(rand.NewPCG(uint64(ci), 19))
				p, filter, bias := randomConv(rr, c)
				for i, v := range filter {
					if v == -128 {
						filter[i] = int8(-127 + i%255) // anything but -128
					}
				}
				conv, err := NewConv(&p, filter, bias, isa)
				if err != nil {
					t.Fatal(err)
				}
				if conv.minWeight {
					t.Fatal("a -128 weight is left")
				}
				checkConv(t, rr, &p, filter, bias, isa, 1+ci%2)
			})
		}
	}
}

// TestConvExtremeProductsMatchReference drives every int16 sum of the NEON
// kernel's SMLAL pairs to its bound, 2 * 127 * 128.
func TestConvExtremeProductsMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	for _, isa := range Available() {
		for _, w := range []int8{-127, 127} {
			for _, x := range []int8{-128, 127} {
				p, filter, bias := randomConv(r, convCase{1, 5, 5, 64, 64, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone})
				for i := range filter {
					filter[i] = w
				}
				input := make([]int8, p.InH*p.InW*p.InC)
				for i := range input {
					input[i] = x
				}
				want := make([]int8, p.OutH*p.OutW*p.OutC)
				ref.ConvInt8(&p, input, filter, bias, want)
				c, err := NewConv(&p, filter, bias, isa)
				if err != nil {
					t.Fatal(err)
				}
				run := NewRunner(1, c.ScratchBytes())
				got := make([]int8, len(want))
				run.Conv(c, input, got)
				run.Close()
				if !slices.Equal(got, want) {
					t.Errorf("%v, weights %d, inputs %d: output differs from ref.ConvInt8", isa, w, x)
				}
			}
		}
	}
}

// TestConvRequantizationEdgesMatchReference drives each kernel's
// requantization over its edges: accumulators (bias included) at and near
// both ends of int32, every right shift from 0 to 31, left shifts that
// wrap, multipliers at both ends of [2^30, 2^31), and exact ties at the
// rounding divide, in both arithmetics.
func TestConvRequantizationEdgesMatchReference(t *testing.T) {
	for _, isa := range Available() {
		for _, xnnpack := range []bool{false, true} {
			for _, outC := range []int{16, 32, 64, 70} {
				r := rand.New(rand.NewPCG(uint64(outC), 21))
				p, filter, _ := randomConv(r, convCase{1, 3, 3, 4, outC, 1, 1, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActNone})
				p.ActMin, p.ActMax = -128, 127
				for i := range filter {
					filter[i] = int8(r.IntN(5) - 2)
				}
				edges := []int32{math.MinInt32, math.MinInt32 + 1, math.MinInt32 + 300, -1 << 30, -3, -1, 0, 1, 2, 3, 1 << 30, math.MaxInt32 - 300, math.MaxInt32 - 1, math.MaxInt32}
				bias := make([]int32, outC)
				for oc := range outC {
					bias[oc] = edges[oc%len(edges)]
					if oc%3 == 2 {
						bias[oc] = int32(r.Uint32())
					}
					switch oc % 4 {
					case 0:
						p.Multiplier[oc] = 1 << 30
					case 1:
						p.Multiplier[oc] = math.MaxInt32
					default:
						p.Multiplier[oc] = 1<<30 + int32(r.IntN(1<<30))
					}
					p.Shift[oc] = -(oc % 32) // 0 .. -31
					if oc%11 == 5 {
						p.Shift[oc] = 1 + oc%7 // left shifts, which wrap
					}
				}
				if xnnpack {
					withXNNPACK(&p)
				}
				t.Run(fmt.Sprintf("%v/xnnpack=%v/outC=%d", isa, xnnpack, outC), func(t *testing.T) {
					// Small inputs around the bias: the accumulators stay near it,
					// and a multiplier of 2^30 with shift e makes x/2^(e+1): exact
					// ties wherever the low bits say so.
					checkConv(t, r, &p, filter, bias, isa, 1)
				})
			}
		}
	}
}

// TestXorBytesMatchesByteLoop checks the padding copy's xor (the
// architecture's vector prefix, where there is one, and the word and byte
// tails) at every length to 300 and several alignments, without writing
// past the end.
func TestXorBytesMatchesByteLoop(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	buf := make([]byte, 400)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for _, x := range []byte{0x80, 0x00, 0x5A} {
		for off := range 5 {
			for n := range 300 {
				src := buf[off : off+n]
				dst := make([]byte, n+8)
				for i := range dst {
					dst[i] = 0xEE
				}
				xorBytes(dst[:n], src, x)
				for i := range n {
					if dst[i] != src[i]^x {
						t.Fatalf("x %#x, offset %d, length %d: byte %d = %#x, want %#x", x, off, n, i, dst[i], src[i]^x)
					}
				}
				for i := n; i < len(dst); i++ {
					if dst[i] != 0xEE {
						t.Fatalf("x %#x, offset %d, length %d: byte %d past the end written", x, off, n, i)
					}
				}
			}
		}
	}
}
