package fast

import (
	"fmt"
	"unsafe"

	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// Float32 convolutions: the same implicit GEMM as the int8 path (a padded
// scratch image, a table of tap offsets, a micro-kernel over mr output
// pixels x nr output channels), with FMA accumulators. The result differs
// from ref.ConvFloat only by rounding: the sums run over the same terms in
// the same order (taps, then input channels; padding taps add an exact
// zero), but each step is one fused multiply-add (one rounding) where the
// reference rounds the product and the sum separately. Per output the
// difference is bounded by n*2^-23*sum|w*x| (n = taps*InC + 1), the usual
// bound for a recursive sum of n terms; the tests check that bound.
//
// A float ADD that follows a convolution can run in its output stage
// (Runner.FConvAdd): the ADD's own float32 operations on the value the
// convolution would have stored, so that fusion changes no bit. NaN
// propagates as in the reference (Go's max and min keep it).

// fmr is the most output pixels a float micro-kernel computes: 8 for
// AVX-512 (6, 7 or 8: whichever overhangs the image least; ResNet's
// ImageNet sizes, 112 down to 7, are multiples of 7, CIFAR's, 32 down to
// 8, of 8), 6 for the others (FloatKernel.mr).
const fmr = 8

// FloatKernel names a float32 micro-kernel family.
type FloatKernel int

const (
	// FloatGo is the portable micro-kernel (6 pixels x 16 channels).
	FloatGo FloatKernel = iota
	// FloatAVX2 is the amd64 AVX2+FMA micro-kernel (6 pixels x 16 channels,
	// two YMM vectors).
	FloatAVX2
	// FloatAVX512 is the amd64 AVX-512F micro-kernel (7 pixels x 32
	// channels, two ZMM vectors; 6 or 8 pixels where that pads less).
	// Layers of 16 channels or fewer take the AVX2 kernel (NewFConv).
	FloatAVX512
	// FloatNEON is the arm64 NEON micro-kernel (6 pixels x 16 channels,
	// four Q registers, FMLA by element).
	FloatNEON
)

func (k FloatKernel) String() string {
	switch k {
	case FloatGo:
		return "go"
	case FloatAVX2:
		return "avx2fma"
	case FloatAVX512:
		return "avx512f"
	case FloatNEON:
		return "neon"
	}
	return fmt.Sprintf("FloatKernel(%d)", int(k))
}

// Supported reports whether this CPU runs float micro-kernel k.
func (k FloatKernel) Supported() bool {
	switch k {
	case FloatGo:
		return true
	case FloatAVX2:
		return hasFMA
	case FloatAVX512:
		return hasAVX512F
	case FloatNEON:
		return hasNEONFloat
	}
	return false
}

// mr is the micro-kernel's pixel count.
func (k FloatKernel) mr() int {
	if k == FloatAVX512 {
		return 7
	}
	return 6
}

// nr is the micro-kernel's output-channel width.
func (k FloatKernel) nr() int {
	if k == FloatAVX512 {
		return 32
	}
	return 16
}

// FloatKernels lists the float families this CPU runs, slower first.
func FloatKernels() []FloatKernel {
	var out []FloatKernel
	for _, k := range []FloatKernel{FloatGo, FloatAVX2, FloatAVX512, FloatNEON} {
		if k.Supported() {
			out = append(out, k)
		}
	}
	return out
}

// Float is the float micro-kernel that goes with int8 family i: the widest
// vectors family i implies, the portable kernel for family Go.
func (i ISA) Float() FloatKernel {
	switch {
	case i == AVX512VNNI && FloatAVX512.Supported():
		return FloatAVX512
	case (i == AVX512VNNI || i == AVX2 || i == AVXVNNI) && FloatAVX2.Supported():
		return FloatAVX2
	case (i == NEON || i == NEONDot) && FloatNEON.Supported():
		return FloatNEON
	}
	return FloatGo
}

// FConv is a prepared float32 CONV_2D (or FULLY_CONNECTED seen as a 1x1
// convolution): ref.ConvFloat with the same parameters, within the rounding
// bound above. Read-only after NewFConv; any number of Runners may share it.
type FConv struct {
	p      ref.Conv
	kernel FloatKernel
	nr     int

	direct bool    // the input needs no padding: the kernel reads it in place
	ph, pw int     // scratch (or input) image height and row pitch in pixels
	plane  int     // floats per batch image in what the kernel reads
	taps   []int32 // byte offset of every filter tap (or row) from tap (0, 0)
	k      int     // input floats per tap: InC, or FilterW*InC per filter row

	blocks int // output-channel blocks of nr
	m      int // output pixels (batch * OutH * OutW)
	mr     int // pixels per micro-kernel call
	mtiles int // pixel tiles of mr
	// pixelMajor: the tiles run pixel tile by pixel tile, every channel
	// block of one before the next, where the packed weights fit a core's
	// L2 (the 1x1 convolutions of ResNet's first stages): the output rows
	// (and an FConvAdd's residual) are then written and read in order.
	// Larger filters run block by block, so that one block's weights stay
	// in L2 across the whole image.
	pixelMajor bool
	// pixOff: each output pixel's input byte offset at tap (0, 0), for the
	// run kernels (nil where there are none, or the offsets exceed int32).
	pixOff []int32
	w      []float32
	bias   []float32 // [block][nr], zero past OutC
}

// NewFConv packs a float CONV_2D's weights (OHWI) for kernel k; bias may be
// nil. p must be a valid reference description.
func NewFConv(p *ref.Conv, filter, bias []float32, k FloatKernel) (*FConv, error) {
	if !k.Supported() {
		return nil, fmt.Errorf("fast: float kernel %v does not run on this CPU", k)
	}
	if p.DepthMultiplier != 0 && p.DepthMultiplier != 1 {
		return nil, fmt.Errorf("fast: depth multiplier %d: NewFConv is for CONV_2D", p.DepthMultiplier)
	}
	taps := p.FilterH * p.FilterW
	if len(filter) != p.OutC*taps*p.InC || (bias != nil && len(bias) != p.OutC) {
		return nil, fmt.Errorf("fast: float conv %dx%dx%d -> %d channels: filter has %d values, bias %d; sizes disagree",
			p.FilterH, p.FilterW, p.InC, p.OutC, len(filter), len(bias))
	}
	if k == FloatAVX512 && p.OutC <= 16 && FloatAVX2.Supported() {
		// Half of every 32-channel ZMM block would be thrown away (CIFAR
		// ResNets' 16-channel stage): 16 channels in two YMM vectors of
		// the AVX2 kernel instead, no spill. On cores whose ZMM FMAs run
		// as two 256-bit halves (Zen 4) that is the same peak.
		k = FloatAVX2
	}
	c := &FConv{p: *p, kernel: k, nr: k.nr(), mr: k.mr()}
	if k == FloatAVX512 {
		// 6 or 8 pixels where 7 would compute more pixels past the image's
		// end (8x8: 64 with 8, 66 with 6, 70 with 7); 7 on a tie, then 8.
		m := p.Batch * p.OutH * p.OutW
		pad := func(mr int) int { return (m+mr-1)/mr*mr - m }
		for _, mr := range []int{8, 6} {
			if pad(mr) < pad(c.mr) {
				c.mr = mr
			}
		}
	}
	c.ph = (p.OutH-1)*p.StrideH + (p.FilterH-1)*p.DilationH + 1
	c.pw = (p.OutW-1)*p.StrideW + (p.FilterW-1)*p.DilationW + 1
	if p.PadH == 0 && p.PadW == 0 && c.ph <= p.InH && c.pw <= p.InW {
		// Every tap of every output pixel lies inside the image (1x1
		// convolutions, VALID ones): read the input with its own pitch.
		c.direct = true
		c.ph, c.pw = p.InH, p.InW
	}
	if int64(p.Batch)*int64(c.ph)*int64(c.pw)*int64(p.InC) > 1<<38 {
		return nil, fmt.Errorf("fast: float conv input %dx%dx%d is too large", c.ph, c.pw, p.InC)
	}
	c.plane = c.ph * c.pw * p.InC
	// Without horizontal dilation a filter row's taps lie side by side in
	// memory, channels within pixels, in the OHWI filter's own order: the
	// kernel runs one tap per filter row over FilterW*InC channels (the
	// same products summed in the same order, fewer tap-loop trips: the
	// RGB stem runs 7 taps of 21 channels instead of 49 of 3).
	ntaps, per := taps, p.InC
	c.taps = make([]int32, 0, taps)
	if p.DilationW == 1 {
		ntaps, per = p.FilterH, p.FilterW*p.InC
		for ky := range p.FilterH {
			c.taps = append(c.taps, int32(ky*p.DilationH*c.pw*p.InC*4))
		}
	} else {
		for ky := range p.FilterH {
			for kx := range p.FilterW {
				c.taps = append(c.taps, int32((ky*p.DilationH*c.pw+kx*p.DilationW)*p.InC*4))
			}
		}
	}
	c.k = per
	nr := c.nr
	c.blocks = (p.OutC + nr - 1) / nr
	c.m = p.Batch * p.OutH * p.OutW
	c.mtiles = (c.m + c.mr - 1) / c.mr
	c.w = alignedFloat32s(c.blocks * ntaps * per * nr)
	c.pixelMajor = 4*len(c.w) <= 1<<20
	c.bias = alignedFloat32s(c.blocks * nr)
	if k.hasRun() && 4*int64(p.Batch)*int64(c.plane) <= 1<<31-1 {
		c.pixOff = make([]int32, c.m)
		hw := p.OutH * p.OutW
		for px := range c.m {
			b, r := px/hw, px%hw
			oy, ox := r/p.OutW, r%p.OutW
			c.pixOff[px] = int32(4 * (b*c.plane + (oy*p.StrideH*c.pw+ox*p.StrideW)*p.InC))
		}
	}
	for oc := range p.OutC {
		blk, lane := oc/nr, oc%nr
		for t := range ntaps {
			src := filter[(oc*ntaps+t)*per:][:per]
			for ic, v := range src {
				c.w[((blk*ntaps+t)*per+ic)*nr+lane] = v
			}
		}
		if bias != nil {
			c.bias[oc] = bias[oc]
		}
	}
	return c, nil
}

// ScratchBytes is the padded-input scratch a Runner needs for c (0 when the
// kernel reads the input in place).
func (c *FConv) ScratchBytes() int {
	if c.direct {
		return 0
	}
	return 4 * c.p.Batch * c.plane
}

// Kernel is the micro-kernel family c was packed for (NewFConv may take a
// narrower one of the same CPU than asked for a layer of few channels).
func (c *FConv) Kernel() FloatKernel { return c.kernel }

// Params is the convolution c computes.
func (c *FConv) Params() ref.Conv { return c.p }

// MACs is the number of multiply-accumulates one run performs.
func (c *FConv) MACs() int64 {
	return int64(c.m) * int64(c.p.OutC) * int64(c.p.FilterH*c.p.FilterW*c.p.InC)
}

func (c *FConv) padRows() int {
	if c.direct {
		return 0
	}
	return c.p.Batch * c.ph
}

// pad writes scratch rows [lo, hi) (batch-major): the input inside the
// image, zeros around it.
func (c *FConv) pad(input, scratch []float32, lo, hi int) {
	p := &c.p
	row := c.pw * p.InC
	for r := lo; r < hi; r++ {
		b, py := r/c.ph, r%c.ph
		dst := scratch[r*row:][:row]
		iy := py - p.PadH
		if iy < 0 || iy >= p.InH {
			clear(dst)
			continue
		}
		x0 := min(p.PadW, c.pw)
		clear(dst[:x0*p.InC])
		n := min(p.InW, c.pw-x0)
		if n > 0 {
			copy(dst[x0*p.InC:][:n*p.InC], input[(b*p.InH+iy)*p.InW*p.InC:][:n*p.InC])
		}
		if x1 := x0 + max(n, 0); x1 < c.pw {
			clear(dst[x1*p.InC:])
		}
	}
}

// ftileArgs is what a float micro-kernel reads; the assembly (gen_ftile.go)
// depends on its layout up to amax.
type ftileArgs struct {
	in       [fmr]unsafe.Pointer // each pixel's input at filter tap (0, 0)
	out      [fmr]unsafe.Pointer // each pixel's nr outputs
	w        unsafe.Pointer      // this block's packed weights
	bias     unsafe.Pointer      // this block's nr biases
	taps     unsafe.Pointer      // []int32 tap byte offsets
	ntaps    int
	k        int // input channels per tap
	min, max float32
	// res != 0: a float ADD follows the convolution (FConvAdd). Each
	// output, once clamped to [min, max], gets the residual resOff bytes
	// after it added and is clamped again, to [amin, amax].
	res        int
	resOff     int
	amin, amax float32
	// The run kernels (ftileRunAVX2 ...: ntiles full tiles of one channel
	// block) read pixel j's input at src + pix[j] and write it at obase +
	// j*ostep; each tile advances pix by mr and obase by mr*ostep. pix
	// and obase are addresses the assembly rewrites without the GC's write
	// barrier, hence no pointers: FConv.pixOff and the output they point
	// into stay alive through the caller's own references.
	src    unsafe.Pointer
	pix    uintptr // &pixOff[first pixel]
	ntiles int
	ostep  int
	obase  uintptr

	// Not read by the assembly: the residual tensor of an FConvAdd (nil
	// for a plain FConv), set on every worker before the job starts, and
	// for the Go kernel each pixel's residual (resOff bytes past its output
	// when both tensors live in one arena, but not in general: checkptr
	// refuses that arithmetic across allocations).
	resBase unsafe.Pointer
	resPix  [fmr]unsafe.Pointer
}

// tiles runs pixel-tile x channel-block units [lo, hi), block-major or
// pixel-major (see FConv.pixelMajor).
func (c *FConv) tiles(src, output []float32, lo, hi int, a *ftileArgs, spill []float32) {
	p := &c.p
	nr := c.nr
	hw := p.OutH * p.OutW
	wBlock := len(c.taps) * c.k * nr
	a.taps = unsafe.Pointer(unsafe.SliceData(c.taps))
	a.ntaps = len(c.taps)
	a.k = c.k
	a.min, a.max = p.FloatMin, p.FloatMax
	sbase := unsafe.Pointer(unsafe.SliceData(src))
	obase := unsafe.Pointer(unsafe.SliceData(output))
	if a.resBase != nil {
		a.resOff = int(uintptr(a.resBase)) - int(uintptr(obase))
	}
	var pix [fmr]unsafe.Pointer // each pixel's output at channel 0
	full := c.m / c.mr          // pixel tiles without a pixel past the end
	for u := lo; u < hi; {
		blk, mt := u/c.mtiles, u%c.mtiles
		if c.pixelMajor {
			mt, blk = u/c.blocks, u%c.blocks
		}
		if c.pixOff != nil && mt < full && (blk+1)*nr <= p.OutC {
			// Full tiles of a full channel block: the run kernel goes
			// through as many as follow in [lo, hi) in one call.
			n := 1
			if !c.pixelMajor || c.blocks == 1 {
				n = min(hi-u, full-mt)
			}
			a.w = unsafe.Pointer(&c.w[blk*wBlock])
			a.bias = unsafe.Pointer(&c.bias[blk*nr])
			a.res = 0
			if a.resBase != nil {
				a.res = 1
			}
			a.src = sbase
			a.pix = uintptr(unsafe.Pointer(&c.pixOff[mt*c.mr]))
			a.ntiles = n
			a.ostep = 4 * p.OutC
			a.obase = uintptr(unsafe.Add(obase, 4*(mt*c.mr*p.OutC+blk*nr)))
			c.runTiles(a)
			u += n
			continue
		}
		valid := min(c.mr, c.m-mt*c.mr)
		px0 := mt * c.mr
		b, r := px0/hw, px0%hw
		oy, ox := r/p.OutW, r%p.OutW
		for j := range c.mr {
			if j < valid {
				a.in[j] = unsafe.Add(sbase, 4*(b*c.plane+(oy*p.StrideH*c.pw+ox*p.StrideW)*p.InC))
				pix[j] = unsafe.Add(obase, 4*(px0+j)*p.OutC)
				if ox++; ox == p.OutW {
					ox = 0
					if oy++; oy == p.OutH {
						oy, b = 0, b+1
					}
				}
			} else {
				// Past the last pixel: recompute the previous one and write
				// the same values to the same place again (its residual
				// included: residual and output never overlap).
				a.in[j] = a.in[j-1]
				pix[j] = pix[j-1]
			}
		}
		// This pixel tile's channel blocks: one block-major, the following
		// ones of [lo, hi) pixel-major (the pixel pointers stay).
		for {
			c.tile(a, blk, wBlock, &pix, spill, output, px0, valid)
			u++
			if !c.pixelMajor || u == hi || blk+1 == c.blocks {
				break
			}
			blk++
		}
	}
}

// tile runs channel block blk of the pixel tile at px0 (valid pixels, their
// outputs at channel 0 in pix).
func (c *FConv) tile(a *ftileArgs, blk, wBlock int, pix *[fmr]unsafe.Pointer, spill, output []float32, px0, valid int) {
	p := &c.p
	nr := c.nr
	oc0 := blk * nr
	full := oc0+nr <= p.OutC
	a.w = unsafe.Pointer(&c.w[blk*wBlock])
	a.bias = unsafe.Pointer(&c.bias[blk*nr])
	// The kernel adds the residual where it writes the output itself; a
	// channel block that overhangs OutC goes through the spill, and the
	// residual is added below.
	a.res = 0
	if full {
		if a.resBase != nil {
			a.res = 1
		}
		for j := range c.mr {
			a.out[j] = unsafe.Add(pix[j], 4*oc0)
		}
		if a.res != 0 && a.resOff == 0 {
			// In place (the output is the residual): a pixel past the
			// last must not write the previous one again, whose residual
			// is gone by then; it writes the spill (and reads it as its
			// residual: resOff is 0).
			for j := valid; j < c.mr; j++ {
				a.out[j] = unsafe.Pointer(&spill[j*nr])
			}
		}
		if a.res != 0 && c.kernel == FloatGo {
			for j := range c.mr {
				a.resPix[j] = unsafe.Add(a.resBase, 4*((px0+min(j, valid-1))*p.OutC+oc0))
			}
		}
	} else {
		for j := range c.mr {
			a.out[j] = unsafe.Pointer(&spill[min(j, valid-1)*nr])
		}
	}
	c.runTile(a)
	if !full {
		n := p.OutC - oc0
		for j := range valid {
			dst := output[(px0+j)*p.OutC+oc0:][:n]
			sp := spill[j*nr:][:n]
			if a.resBase == nil {
				copy(dst, sp)
				continue
			}
			// Each residual value is read before its output is written:
			// they may be the same float.
			res := unsafe.Slice((*float32)(unsafe.Add(a.resBase, 4*((px0+j)*p.OutC+oc0))), n)
			for i, x := range res {
				dst[i] = min(max(sp[i]+x, a.amin), a.amax)
			}
		}
	}
}

// hasRun reports whether kernel k has a run kernel (several tiles a call).
func (k FloatKernel) hasRun() bool { return k == FloatAVX2 || k == FloatAVX512 }

// runTiles runs a.ntiles full tiles (see ftileArgs.src).
func (c *FConv) runTiles(a *ftileArgs) {
	switch c.kernel {
	case FloatAVX512:
		switch c.mr {
		case 6:
			ftileRunAVX512x6(a)
		case 8:
			ftileRunAVX512x8(a)
		default:
			ftileRunAVX512(a)
		}
	default:
		ftileRunAVX2(a)
	}
}

func (c *FConv) runTile(a *ftileArgs) {
	switch c.kernel {
	case FloatAVX512:
		switch c.mr {
		case 6:
			ftileAVX512x6(a)
		case 8:
			ftileAVX512x8(a)
		default:
			ftileAVX512(a)
		}
	case FloatAVX2:
		ftileAVX2(a)
	case FloatNEON:
		ftileNEON(a)
	default:
		ftileGo(a)
	}
}

// ftileGo is the portable float micro-kernel (6 pixels, nr = 16): the
// assembly's contract in Go.
func ftileGo(a *ftileArgs) {
	const nr = 16
	const mr = 6
	var acc [mr][nr]float32
	taps := unsafe.Slice((*int32)(a.taps), a.ntaps)
	w := unsafe.Slice((*float32)(a.w), a.ntaps*a.k*nr)
	for t, off := range taps {
		wt := w[t*a.k*nr:][:a.k*nr]
		for j := range mr {
			in := unsafe.Slice((*float32)(unsafe.Add(a.in[j], off)), a.k)
			acc := &acc[j]
			for i, x := range in {
				wk := wt[i*nr:][:nr]
				for l := range nr {
					acc[l] += float32(x * wk[l])
				}
			}
		}
	}
	bias := unsafe.Slice((*float32)(a.bias), nr)
	for j := range mr {
		out := unsafe.Slice((*float32)(a.out[j]), nr)
		if a.res == 0 {
			for l := range nr {
				out[l] = min(max(acc[j][l]+bias[l], a.min), a.max)
			}
			continue
		}
		// The residual may be the output itself: read before written.
		res := unsafe.Slice((*float32)(a.resPix[j]), nr)
		for l := range nr {
			v := min(max(acc[j][l]+bias[l], a.min), a.max)
			out[l] = min(max(v+res[l], a.amin), a.amax)
		}
	}
}

// FConvAdd runs c followed by a float ADD of residual: output =
// ref.AddFloat(clamp [lo, hi], ref.ConvFloat(c's parameters, input),
// residual), the convolution within float rounding as in FConv and the
// addition rounded exactly as ref.AddFloat rounds it (the same two float32
// operations per output: the convolution's output, clamped, plus the
// residual, clamped). The convolution's own output is never written.
// residual must have output's length and must not overlap input; output
// must not overlap input, and is either residual itself (the sum replaces
// the residual in place) or shares no bytes with it.
func (r *Runner) FConvAdd(c *FConv, input, residual, output []float32, lo, hi float32) {
	for i := range r.workers {
		a := &r.workers[i].fargs
		a.resBase = unsafe.Pointer(unsafe.SliceData(residual))
		a.amin, a.amax = lo, hi
	}
	r.FConv(c, input, output)
	for i := range r.workers {
		r.workers[i].fargs.resBase = nil
	}
}

func alignedFloat32s(n int) []float32 {
	b := alignedBytes(4 * n)
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// float32s views a runner's byte scratch as floats (it is 64-byte aligned).
func float32s(b []byte) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}
