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

func TestFtileArgsLayoutMatchesTheAssembly(t *testing.T) {
	var a ftileArgs
	// gen_ftile.go hard-codes these offsets.
	got := []uintptr{unsafe.Offsetof(a.in), unsafe.Offsetof(a.out), unsafe.Offsetof(a.w), unsafe.Offsetof(a.bias),
		unsafe.Offsetof(a.taps), unsafe.Offsetof(a.ntaps), unsafe.Offsetof(a.k), unsafe.Offsetof(a.min), unsafe.Offsetof(a.max),
		unsafe.Offsetof(a.res), unsafe.Offsetof(a.resOff), unsafe.Offsetof(a.amin), unsafe.Offsetof(a.amax),
		unsafe.Offsetof(a.src), unsafe.Offsetof(a.pix), unsafe.Offsetof(a.ntiles), unsafe.Offsetof(a.ostep), unsafe.Offsetof(a.obase)}
	want := []uintptr{0, 64, 128, 136, 144, 152, 160, 168, 172, 176, 184, 192, 196, 200, 208, 216, 224, 232}
	if !slices.Equal(got, want) {
		t.Fatalf("ftileArgs field offsets = %v, want %v (regenerate ftile_amd64.s and ftile_arm64.s with gen_ftile.go)", got, want)
	}
}

// randomFConv builds a float convolution of geometry c with weights and
// inputs in [-1, 1) and, three times in four, a bias.
func randomFConv(r *rand.Rand, c convCase) (ref.Conv, []float32, []float32) {
	p := ref.Conv{Batch: c.batch, InH: c.inH, InW: c.inW, InC: c.inC, OutC: c.outC,
		FilterH: c.fh, FilterW: c.fw, StrideH: c.sh, StrideW: c.sw, DilationH: c.dh, DilationW: c.dw}
	p.OutH = ref.OutSize(c.padding, c.inH, c.fh, c.sh, c.dh)
	p.OutW = ref.OutSize(c.padding, c.inW, c.fw, c.sw, c.dw)
	p.PadH, _ = ref.PaddingBefore(c.sh, c.dh, c.inH, c.fh, p.OutH)
	p.PadW, _ = ref.PaddingBefore(c.sw, c.dw, c.inW, c.fw, p.OutW)
	p.FloatMin, p.FloatMax = ref.ActivationRangeFloat(c.act)
	filter := randomFloats(r, c.outC*c.fh*c.fw*c.inC)
	var bias []float32
	if r.IntN(4) != 0 {
		bias = randomFloats(r, c.outC)
	}
	return p, filter, bias
}

func randomFloats(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.Float64()*2 - 1)
	}
	return v
}

// absConv is ref.ConvFloat over |input| and |filter| (and |bias|), in
// float64: the scale of each output's rounding error.
func absConv(p *ref.Conv, input, filter, bias []float32) []float64 {
	abs := func(v []float32) []float32 {
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(math.Abs(float64(x)))
		}
		return out
	}
	q := *p
	q.FloatMin, q.FloatMax = float32(math.Inf(-1)), float32(math.Inf(1))
	out := make([]float32, p.Batch*p.OutH*p.OutW*p.OutC)
	var b []float32
	if bias != nil {
		b = abs(bias)
	}
	ref.ConvFloat(&q, abs(input), abs(filter), b, out)
	s := make([]float64, len(out))
	for i, x := range out {
		s[i] = float64(x) * (1 + 1e-6) // its own rounding, generously
	}
	return s
}

// checkFConv runs c on kernel k and compares with ref.ConvFloat: both sum
// the same n = taps*InC + 1 terms in the same order, one with fused
// multiply-adds, so they differ by at most n * 2^-23 * sum|terms|.
func checkFConv(t *testing.T, r *rand.Rand, p *ref.Conv, filter, bias []float32, k FloatKernel, threads int) {
	t.Helper()
	input := randomFloats(r, p.Batch*p.InH*p.InW*p.InC)
	want := make([]float32, p.Batch*p.OutH*p.OutW*p.OutC)
	ref.ConvFloat(p, input, filter, bias, want)
	scale := absConv(p, input, filter, bias)
	n := float64(p.FilterH*p.FilterW*p.InC + 1)
	c, err := NewFConv(p, filter, bias, k)
	if err != nil {
		t.Fatal(err)
	}
	run := NewRunner(threads, c.ScratchBytes())
	defer run.Close()
	// NaNs in the scratch: a tile that reads scratch the pad job did not
	// write (another layer's leftovers, in a network) gives a NaN.
	for i := range run.scratch {
		run.scratch[i] = 0xff
	}
	got := randomFloats(r, len(want)) // garbage that must all be overwritten
	for i := range got {
		got[i] += 1000
	}
	run.FConv(c, input, got)
	for i := range want {
		tol := n * 0x1p-23 * scale[i]
		if d := math.Abs(float64(got[i]) - float64(want[i])); !(d <= tol) {
			px, oc := i/p.OutC, i%p.OutC
			t.Fatalf("output pixel %d channel %d = %g, want %g (reference): off by %g, more than the rounding bound %g", px, oc, got[i], want[i], d, tol)
		}
	}
}

func TestFConvMatchesReferenceWithinRounding(t *testing.T) {
	for _, k := range FloatKernels() {
		for threads := 1; threads <= 3; threads++ {
			for ci, c := range convCases {
				t.Run(fmt.Sprintf("%v/threads=%d/%v", k, threads, c), func(t *testing.T) {
					r := rand.New(rand.NewPCG(uint64(ci), 9))
					p, filter, bias := randomFConv(r, c)
					checkFConv(t, r, &p, filter, bias, k, threads)
				})
			}
		}
	}
}

func TestFConvMatchesReferenceOnRandomShapes(t *testing.T) {
	r := rand.New(rand.NewPCG(43, 43))
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
		for _, k := range FloatKernels() {
			t.Run(fmt.Sprintf("%d/%v/%v", i, k, c), func(t *testing.T) {
				rr := rand.New(rand.NewPCG(uint64(i), 3))
				p, filter, bias := randomFConv(rr, c)
				checkFConv(t, rr, &p, filter, bias, k, 1+i%2)
			})
		}
	}
}

// The rounding bound is tight enough to catch a wrong term: dropping one
// filter tap's weights (as a packing bug would) must fail it.
func TestFConvRoundingBoundCatchesAMissingTerm(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	p, filter, bias := randomFConv(r, convCase{1, 6, 6, 8, 16, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone})
	input := randomFloats(r, p.Batch*p.InH*p.InW*p.InC)
	want := make([]float32, p.Batch*p.OutH*p.OutW*p.OutC)
	ref.ConvFloat(&p, input, filter, bias, want)
	scale := absConv(&p, input, filter, bias)
	broken := slices.Clone(filter)
	broken[4*p.InC] = 0 // output channel 0, centre tap, input channel 0
	c, err := NewFConv(&p, broken, bias, Best().Float())
	if err != nil {
		t.Fatal(err)
	}
	run := NewRunner(1, c.ScratchBytes())
	defer run.Close()
	got := make([]float32, len(want))
	run.FConv(c, input, got)
	n := float64(p.FilterH*p.FilterW*p.InC + 1)
	failed := 0
	for i := range want {
		if math.Abs(float64(got[i])-float64(want[i])) > n*0x1p-23*scale[i] {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("a convolution missing one weight passed the rounding bound on every output")
	}
}

func TestFConvDoesNotAllocate(t *testing.T) {
	for _, k := range FloatKernels() {
		for _, threads := range []int{1, 2} {
			r := rand.New(rand.NewPCG(1, 1))
			p, filter, bias := randomFConv(r, convCase{1, 9, 9, 16, 40, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu})
			c, err := NewFConv(&p, filter, bias, k)
			if err != nil {
				t.Fatal(err)
			}
			run := NewRunner(threads, c.ScratchBytes())
			in := randomFloats(r, p.Batch*p.InH*p.InW*p.InC)
			out := make([]float32, p.Batch*p.OutH*p.OutW*p.OutC)
			if a := testing.AllocsPerRun(20, func() { run.FConv(c, in, out) }); a != 0 {
				t.Errorf("%v, %d threads: %v allocations per run, want 0", k, threads, a)
			}
			run.Close()
		}
	}
}

// FConvAdd is FConv followed by ref.AddFloat, bit for bit on the same
// kernel: the residual is added to the same float32 the convolution would
// have written, in one rounding, and clamped as ADD clamps. Channel blocks
// that overhang OutC (the spill) and pixel tiles past the last pixel
// included, with the output apart from the residual and in its place.
func TestFConvAddIsFConvThenAddExactly(t *testing.T) {
	r := rand.New(rand.NewPCG(77, 7))
	cases := slices.Clone(convCases)
	for range 20 {
		cases = append(cases, convCase{batch: 1 + r.IntN(2), inH: 1 + r.IntN(9), inW: 1 + r.IntN(9), inC: 1 + r.IntN(40), outC: 1 + r.IntN(90),
			fh: 1 + r.IntN(3), fw: 1 + r.IntN(3), sh: 1 + r.IntN(2), sw: 1 + r.IntN(2), dh: 1, dw: 1,
			padding: resnet.PaddingSame, act: resnet.Activation(r.IntN(4))})
	}
	for _, k := range FloatKernels() {
		for ci, c := range cases {
			threads := 1 + ci%3
			t.Run(fmt.Sprintf("%v/threads=%d/%v", k, threads, c), func(t *testing.T) {
				rr := rand.New(rand.NewPCG(uint64(ci), 11))
				p, filter, bias := randomFConv(rr, c)
				cv, err := NewFConv(&p, filter, bias, k)
				if err != nil {
					t.Fatal(err)
				}
				input := randomFloats(rr, p.Batch*p.InH*p.InW*p.InC)
				residual := randomFloats(rr, p.Batch*p.OutH*p.OutW*p.OutC)
				add := ref.Add{}
				add.FloatMin, add.FloatMax = ref.ActivationRangeFloat(resnet.Activation(ci % 4))
				run := NewRunner(threads, cv.ScratchBytes())
				defer run.Close()
				conv := make([]float32, len(residual))
				run.FConv(cv, input, conv)
				want := make([]float32, len(residual))
				ref.AddFloat(&add, conv, residual, want)
				got := randomFloats(rr, len(want))
				run.FConvAdd(cv, input, residual, got, add.FloatMin, add.FloatMax)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("output %d (pixel %d channel %d) = %g, want %g (FConv, then ref.AddFloat)", i, i/p.OutC, i%p.OutC, got[i], want[i])
					}
				}
				// In place: the output replaces the residual.
				inplace := slices.Clone(residual)
				run.FConvAdd(cv, input, inplace, inplace, add.FloatMin, add.FloatMax)
				for i := range want {
					if math.Float32bits(inplace[i]) != math.Float32bits(want[i]) {
						t.Fatalf("in place: output %d (pixel %d channel %d) = %g, want %g (FConv, then ref.AddFloat)", i, i/p.OutC, i%p.OutC, inplace[i], want[i])
					}
				}
				// The runner forgets the residual: a plain FConv after it
				// writes the convolution alone.
				again := make([]float32, len(conv))
				run.FConv(cv, input, again)
				if !slices.Equal(again, conv) {
					t.Fatal("FConv after FConvAdd differs from FConv before it")
				}
			})
		}
	}
}

// A NaN in the input makes every output whose window holds it NaN, as in
// ref.ConvFloat (Go's max and min keep a NaN), through every activation
// and the fused ADD; the other outputs stay within the rounding bound.
func TestFConvKeepsNaNAsTheReferenceDoes(t *testing.T) {
	for _, k := range FloatKernels() {
		for act := range resnet.Activation(4) {
			r := rand.New(rand.NewPCG(uint64(act), 31))
			p, filter, bias := randomFConv(r, convCase{1, 7, 9, 20, 40, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, act})
			cv, err := NewFConv(&p, filter, bias, k)
			if err != nil {
				t.Fatal(err)
			}
			input := randomFloats(r, p.InH*p.InW*p.InC)
			input[(3*p.InW+4)*p.InC+5] = float32(math.NaN())
			want := make([]float32, p.OutH*p.OutW*p.OutC)
			ref.ConvFloat(&p, input, filter, bias, want)
			run := NewRunner(1, cv.ScratchBytes())
			got := make([]float32, len(want))
			run.FConv(cv, input, got)
			res := randomFloats(r, len(want))
			add := make([]float32, len(want))
			lo, hi := ref.ActivationRangeFloat(act)
			run.FConvAdd(cv, input, res, add, lo, hi)
			run.Close()
			nans := 0
			for i, w := range want {
				if w != w {
					nans++
				}
				if (w != w) != (got[i] != got[i]) || (w != w) != (add[i] != add[i]) {
					t.Fatalf("%v act %d: output %d = %g (conv), %g (conv+add), want %g (reference)", k, act, i, got[i], add[i], w)
				}
			}
			if nans == 0 {
				t.Fatalf("%v act %d: the reference has no NaN output", k, act)
			}
		}
	}
}

// BenchmarkFConvCIFAR times the 3x3 convolutions of CIFAR ResNet-20's three
// stages (32x32x16, 16x16x32, 8x8x64): layers of tens of microseconds,
// where what runs around the micro-kernel shows.
func BenchmarkFConvCIFAR(b *testing.B) {
	shapes := []convCase{
		{1, 32, 32, 16, 16, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},
		{1, 16, 16, 32, 32, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},
		{1, 8, 8, 64, 64, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},
	}
	benchFConvShapes(b, AVX512VNNI.Float(), shapes, "")
}

// TestFConvAVX512TileHeightPadsLeast checks the AVX-512 kernel's pixel
// count: the one of 6, 7 and 8 that computes the fewest pixels past the
// image's end, 7 on a tie (ImageNet ResNets' 56x56, 7x7), then 8.
func TestFConvAVX512TileHeightPadsLeast(t *testing.T) {
	if !FloatAVX512.Supported() {
		t.Skip("no AVX-512 here")
	}
	for _, tc := range []struct{ h, w, mr int }{
		{56, 56, 7}, {14, 14, 7}, {7, 7, 7}, // multiples of 7 (56x56 also of 8)
		{32, 32, 8}, {16, 16, 8}, {8, 8, 8}, // CIFAR: multiples of 8
		{6, 6, 6}, {5, 5, 7}, {1, 1, 6},
	} {
		p := ref.Conv{Batch: 1, InH: tc.h, InW: tc.w, InC: 32, OutH: tc.h, OutW: tc.w, OutC: 32,
			FilterH: 1, FilterW: 1, StrideH: 1, StrideW: 1, DilationH: 1, DilationW: 1}
		c, err := NewFConv(&p, make([]float32, 32*32), nil, FloatAVX512)
		if err != nil {
			t.Fatal(err)
		}
		if c.mr != tc.mr {
			t.Errorf("%dx%d output: %d pixels a tile, want %d", tc.h, tc.w, c.mr, tc.mr)
		}
	}
}
