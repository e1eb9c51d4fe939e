package fast

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// Tile sizes of the micro-kernels: mr output pixels by nr output channels.
// nr is the widest tile; the AVX-512 VNNI, AVX2 and Go kernels also come 16
// and 32 channels wide (see tileWidth), so the packing is per Conv.
const (
	mr = 4
	nr = 64
)

// tileWidth is the output-channel width of the tile NewConv uses for a
// layer of outC channels on family isa: the narrowest that covers outC, so
// that 16- and 32-channel layers do not compute 48 or 32 channels only to
// throw them away. The arm64 kernels are 64 wide only.
func tileWidth(isa ISA, outC int) int {
	if isa == AVX512VNNI || isa == AVX2 || isa == AVXVNNI || isa == Go {
		switch {
		case outC <= 16:
			return 16
		case outC <= 32:
			return 32
		}
	}
	return nr
}

// Per-block requantization parameters, each c.nr int32s, in this order.
const (
	parBias  = iota // bias - (input zero point + 128) * sum(weights)
	parMult         // Q0.31 multiplier
	parLsh          // left shift before the multiplication (shift > 0)
	parRsh          // rounding right shift after it (shift < 0)
	parRmask        // 2^rsh - 1
	parRhalf        // (2^rsh - 1) >> 1
	parNrsh         // -rsh, for shifts that round by a negative count (arm64 SRSHL)
	parScale        // float32 bits of the "xnnpack" requantization scale (p.Scale)
	parRound        // 2^(rsh-1), 0 when rsh = 0 (the AVX-512 kernel's RoundingDivideByPOT)
	numPar
)

// Conv is a prepared int8 CONV_2D (or FULLY_CONNECTED seen as a 1x1
// convolution): the reference kernel ref.ConvInt8 with the same parameters,
// computed another way. It is read-only after NewConv (and FuseAdd, where
// the interpreter fuses a residual ADD) and may be shared by any number of
// Runners.
type Conv struct {
	p   ref.Conv
	isa ISA

	c4        int     // input channels rounded up to a multiple of 4
	ph, pw    int     // padded scratch image height and width (the input's, when direct)
	direct    bool    // the micro-kernel reads the input in place: no padding, no scratch
	anyLsh    bool    // some output channel's shift is >= 0 (a left shift, or no right shift: see tileArgs.lsh)
	minWeight bool    // some weight is -128 (asymmetric int8 weights)
	sat       bool    // the arm64 SDOT kernel's inline epilogue does not apply (see tileArgs.sat)
	runs      bool    // the kernel takes runs of common tiles in one call (tileArgs.more: arm64)
	dot1      bool    // a last tile of one or two pixels runs tileNEONDot1 per pixel (see tiles)
	linear    bool    // each output pixel's input lies stepX bytes after the previous one's, across rows and images
	merged    int     // FilterW when the filter's columns are merged into the channels (few input channels), else 0
	flip      byte    // 0x80 for families that read x+128 (unsigned), 0 for signed ones
	fill      byte    // padding value: the input zero point, flipped likewise
	taps      []int32 // byte offset of every filter tap from tap (0, 0)
	kbytes    int     // bytes per tap per pixel (c4)

	plane   int // bytes per image of the (scratch or input) image the kernel reads
	sx      int // scratch positions from one output pixel to the next in a row (StrideW; 1 when merged)
	stepX   int // bytes from one output pixel's input to the next one's in a row
	stepRow int // bytes added at the end of an output row, after OutW steps of stepX

	nr     int    // output channels per tile: 16, 32 or 64 (tileWidth)
	blocks int    // output-channel blocks of nr
	m      int    // output pixels (batch * OutH * OutW)
	mtiles int    // pixel tiles of mr
	w      []byte // packed weights: [block][tap][c4/4][nr][4] int8
	params []int32

	// The residual ADD fused by FuseAdd (nil: none): the table indexed
	// [uint8(conv)<<8 | uint8(residual)], whichever input of the ADD the
	// convolution is.
	addT *[1 << 16]int8
	// addKernel: the micro-kernel applies addT itself (tileArgs.addT) to
	// the tiles it writes to the output; otherwise tiles writes every tile
	// to the spill and applies addT in Go while copying it out.
	addKernel bool
}

// NewConv packs a CONV_2D's weights for family isa. p must be a valid
// reference description (the interpreter's Prepare has checked it), filter
// OHWI int8, bias nil or one int32 per output channel.
func NewConv(p *ref.Conv, filter []int8, bias []int32, isa ISA) (*Conv, error) {
	if !isa.Supported() {
		return nil, fmt.Errorf("fast: kernel family %v does not run on this CPU", isa)
	}
	if p.DepthMultiplier != 0 && p.DepthMultiplier != 1 {
		return nil, fmt.Errorf("fast: depth multiplier %d: NewConv is for CONV_2D", p.DepthMultiplier)
	}
	taps := p.FilterH * p.FilterW
	if len(filter) != p.OutC*taps*p.InC || (bias != nil && len(bias) != p.OutC) ||
		len(p.Multiplier) != p.OutC || len(p.Shift) != p.OutC || (p.Scale != nil && len(p.Scale) != p.OutC) {
		return nil, fmt.Errorf("fast: conv %dx%dx%d -> %d channels: filter has %d values, bias %d, multipliers %d; sizes disagree",
			p.FilterH, p.FilterW, p.InC, p.OutC, len(filter), len(bias), len(p.Multiplier))
	}
	c := &Conv{p: *p, isa: isa}
	if p.Scale != nil && !isa.fp32Requant() {
		// This family's assembly has only the reference requantization:
		// the "xnnpack" arithmetic runs on the Go micro-kernel.
		c.isa = Go
	}
	// A layer with few input channels (an RGB image's first
	// convolution) has its filter's columns merged into the channels: the
	// scratch holds, per position, the FilterW pixels it starts (FilterW *
	// InC bytes, padded to 4), and the kernel runs FilterH taps of those
	// instead of FilterH*FilterW taps of 4 bytes that are a quarter padding.
	// The filter's OHWI bytes already are in that order. The scratch
	// holds only the positions an output pixel starts at (OutW per row:
	// the horizontal stride is applied while padding, not by the kernel).
	inC, fw := p.InC, p.FilterW
	c.sx = p.StrideW
	if p.InC%4 != 0 && p.FilterW > 1 && p.DilationW == 1 && p.FilterW*p.InC <= 256 {
		c.merged = p.FilterW
		inC, fw = p.FilterW*p.InC, 1
		c.sx = 1
	}
	taps = p.FilterH * fw
	c.c4 = (inC + 3) &^ 3
	c.kbytes = c.c4
	c.ph = (p.OutH-1)*p.StrideH + (p.FilterH-1)*p.DilationH + 1
	c.pw = (p.OutW-1)*c.sx + (fw-1)*p.DilationW + 1
	if int64(p.Batch)*int64(c.ph)*int64(c.pw)*int64(c.c4) > 1<<40 {
		return nil, fmt.Errorf("fast: conv input %dx%dx%d is too large", c.ph, c.pw, c.c4)
	}
	zp := -p.InputOffset
	// zoff is what the scratch adds to every input byte: 128 for the
	// families that multiply unsigned bytes, 0 for the signed ones.
	var zoff int32
	if !c.isa.signedInput() {
		c.flip, zoff = 0x80, 128
	}
	c.fill = byte(zp + zoff)
	// A convolution that needs no padding reads its input in place when
	// the kernel takes the bytes as they are (signed families) and the
	// channels need no tail: no copy at all (most 1x1 layers).
	if c.flip == 0 && p.PadH == 0 && p.PadW == 0 && c.c4 == p.InC && c.ph <= p.InH && c.pw <= p.InW {
		c.direct = true
		c.ph, c.pw = p.InH, p.InW
	}
	c.plane = c.ph * c.pw * c.c4
	c.stepX = c.sx * c.c4
	c.stepRow = (p.StrideH*c.pw - p.OutW*c.sx) * c.c4
	// One more entry past the end: the arm64 kernels' fast loops load the
	// next tap's offset before they know there is one.
	c.taps = make([]int32, 0, taps+1)
	for ky := range p.FilterH {
		for kx := range fw {
			c.taps = append(c.taps, int32((ky*p.DilationH*c.pw+kx*p.DilationW)*c.c4))
		}
	}
	c.taps = append(c.taps, 0)[:taps]
	c.runs = c.isa == NEON || c.isa == NEONDot
	c.linear = c.stepRow == 0 && c.plane == p.OutH*p.OutW*c.stepX
	nr := tileWidth(c.isa, p.OutC)
	c.nr = nr
	c.blocks = (p.OutC + nr - 1) / nr
	c.m = p.Batch * p.OutH * p.OutW
	c.mtiles = (c.m + mr - 1) / mr

	groups := c.c4 / 4
	c.w = alignedBytes(c.blocks * taps * groups * nr * 4)
	c.params = alignedInt32s(c.blocks * numPar * nr)
	for oc := range p.OutC {
		blk, lane := oc/nr, oc%nr
		var sum int32
		for t := range taps {
			src := filter[(oc*taps+t)*inC:][:inC]
			for ic, v := range src {
				sum += int32(v)
				if v == -128 {
					c.minWeight = true
				}
				g, i := ic/4, ic%4
				c.w[(((blk*taps+t)*groups+g)*nr+lane)*4+i] = byte(v)
			}
		}
		par := c.params[blk*numPar*nr:]
		var b int32
		if bias != nil {
			b = bias[oc]
		}
		// The bytes the kernel reads are int8, or x+128 in [0, 255] where
		// zoff is 128: |S| <= 256 * sum(|w|) either way (narrowFits).
		var absW int64
		for _, v := range filter[oc*taps*inC:][:taps*inC] {
			absW += max(int64(v), -int64(v))
		}
		// ref: acc = sum over taps inside the image of w*(x - zp) + bias.
		// The kernel: S = sum over every tap of w*u, u = x+zoff inside and
		// u = zp+zoff in the padding, so S - (zp+zoff)*sum(w) equals the
		// reference's sum exactly (int32 wraps alike on both sides).
		par[parBias*nr+lane] = b - (zp+zoff)*sum
		if !narrowFits(par[parBias*nr+lane], absW*int64(128+zoff), p.Multiplier[oc], p.Shift[oc], p.OutputOffset) {
			c.sat = true
		}
		par[parMult*nr+lane] = p.Multiplier[oc]
		if p.Scale != nil {
			par[parScale*nr+lane] = int32(math.Float32bits(p.Scale[oc]))
		}
		if s := p.Shift[oc]; s >= 0 {
			c.anyLsh = true
			par[parLsh*nr+lane] = int32(s)
		} else {
			r := int32(-s)
			mask := int32(int64(1)<<r - 1)
			par[parRsh*nr+lane] = r
			par[parRmask*nr+lane] = mask
			par[parRhalf*nr+lane] = mask >> 1
			par[parNrsh*nr+lane] = -r
			if r > 0 {
				par[parRound*nr+lane] = 1 << (r - 1)
			}
		}
	}
	// tileNEONDot1 has only the fast copy's loops and inline epilogue.
	c.dot1 = c.isa == NEONDot && c.kbytes%16 == 0 && !c.anyLsh && !c.sat && p.Scale == nil &&
		p.ActMin == math.MinInt8 && p.ActMax == math.MaxInt8
	return c, nil
}

// narrowFits reports whether every accumulator the kernel can reach for a
// channel (bias, the parBias row, plus a sum of weights times input bytes,
// at most maxSum in magnitude) stays inside int32 without
// wrapping and requantizes, by a multiplier >= 0 and a right shift >= 1, to
// a value whose sum with the zero point zp fits int16: what the arm64 SDOT
// kernel's inline epilogue assumes (it narrows with UZP1, no saturation).
// |SQRDMULH(acc, m)| <= (|acc|*m + 2^30) / 2^31 + 1, and the rounding shift
// by rsh adds at most 1 to the magnitude after dividing.
func narrowFits(bias int32, maxSum int64, m int32, shift int, zp int32) bool {
	if m < 0 || shift > -1 || shift < -31 {
		return false
	}
	acc := max(int64(bias), -int64(bias)) + maxSum
	if acc >= 1<<31 {
		return false
	}
	y := (acc*int64(m)+1<<30)>>31 + 1
	x := y>>(-shift) + 1
	return x+int64(max(zp, -zp)) <= math.MaxInt16
}

// ScratchBytes is the padded-input scratch a Runner needs for c (none when
// the kernel reads the input in place).
func (c *Conv) ScratchBytes() int {
	if c.direct {
		return 0
	}
	return c.p.Batch * c.ph * c.pw * c.c4
}

// ISA is the micro-kernel family c was packed for.
func (c *Conv) ISA() ISA { return c.isa }

// MACs is the number of multiply-accumulates one run performs (as the
// reference counts them, padding taps included).
func (c *Conv) MACs() int64 {
	return int64(c.m) * int64(c.p.OutC) * int64(c.p.FilterH*c.p.FilterW*c.p.InC)
}

// padRows is the number of units of the padding phase.
func (c *Conv) padRows() int { return c.p.Batch * c.ph }

// pad writes scratch rows [lo, hi) (batch-major): the input (xor c.flip)
// inside the image, the zero point (likewise) around it and in the channel
// tail.
func (c *Conv) pad(input []int8, scratch []byte, lo, hi int) {
	if c.merged > 0 {
		c.padMerged(input, scratch, lo, hi)
		return
	}
	p := &c.p
	row := c.pw * c.c4
	in := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(input))), len(input))
	for r := lo; r < hi; r++ {
		b, py := r/c.ph, r%c.ph
		dst := scratch[r*row:][:row]
		iy := py - p.PadH
		if iy < 0 || iy >= p.InH {
			fillBytes(dst, c.fill)
			continue
		}
		src := in[(b*p.InH+iy)*p.InW*p.InC:][:p.InW*p.InC]
		// Columns left of the image, the image, right of it.
		x0 := min(p.PadW, c.pw)
		fillBytes(dst[:x0*c.c4], c.fill)
		n := min(p.InW, c.pw-x0) // image columns that land in the scratch
		if n > 0 {
			if c.c4 == p.InC {
				flipCopy(dst[x0*c.c4:][:n*c.c4], src[:n*p.InC], c.flip)
			} else if p.InC < 16 {
				// A few channels (an RGB image): byte loops beat two calls
				// per pixel.
				flip, fill := c.flip, c.fill
				for x := range n {
					d := dst[(x0+x)*c.c4:][:c.c4]
					s := src[x*p.InC:][:p.InC]
					for k, v := range s {
						d[k] = v ^ flip
					}
					for k := p.InC; k < len(d); k++ {
						d[k] = fill
					}
				}
			} else {
				for x := range n {
					d := dst[(x0+x)*c.c4:][:c.c4]
					flipCopy(d[:p.InC], src[x*p.InC:][:p.InC], c.flip)
					fillBytes(d[p.InC:], c.fill)
				}
			}
		}
		if x1 := x0 + max(n, 0); x1 < c.pw {
			fillBytes(dst[x1*c.c4:], c.fill)
		}
	}
}

// padMerged writes scratch rows [lo, hi) of a merged convolution: position
// x of a row holds padded pixels x*StrideW .. x*StrideW+FilterW-1 of that
// input row (the input xor c.flip inside the image, the zero point around
// it), then the zero point up to the 4-byte multiple.
func (c *Conv) padMerged(input []int8, scratch []byte, lo, hi int) {
	p := &c.p
	row := c.pw * c.c4
	in := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(input))), len(input))
	// Positions whose pixels all lie inside the image are copied a word
	// at a time when the source row holds c4 bytes from there: bytes k..c4
	// then hold the next pixel's, which is harmless, as their weights are
	// zero (and parBias counts real weights only).
	words := c.c4%8 == 0
	x8 := uint64(c.flip) * 0x0101010101010101
	for r := lo; r < hi; r++ {
		b, py := r/c.ph, r%c.ph
		dst := scratch[r*row:][:row]
		iy := py - p.PadH
		if iy < 0 || iy >= p.InH {
			fillBytes(dst, c.fill)
			continue
		}
		src := in[(b*p.InH+iy)*p.InW*p.InC:][:p.InW*p.InC]
		if words && (c.isa == NEON || c.isa == NEONDot) {
			c.padMergedRow(dst, src, x8)
			continue
		}
		for x := range c.pw {
			d := dst[x*c.c4:][:c.c4]
			ix := x*p.StrideW - p.PadW
			if words && ix >= 0 && ix*p.InC+c.c4 <= len(src) {
				s := src[ix*p.InC:][:c.c4]
				for i := 0; i < len(d); i += 8 {
					*(*uint64)(unsafe.Pointer(&d[i])) = *(*uint64)(unsafe.Pointer(&s[i])) ^ x8
				}
				continue
			}
			c.padPosition(d, src, ix)
		}
	}
}

// padPosition fills one scratch position d (c4 bytes) whose merged taps
// start at input column ix of the row src: the taps inside the row
// copied (flipped where the family reads x+128), those outside and the
// bytes past the taps set to the fill.
func (c *Conv) padPosition(d, src []byte, ix int) {
	p := &c.p
	k := c.merged * p.InC
	if ix >= 0 && ix+c.merged <= p.InW {
		flipCopy(d[:k], src[ix*p.InC:][:k], c.flip)
	} else {
		for kx := range c.merged {
			dd := d[kx*p.InC:][:p.InC]
			if ix := ix + kx; ix >= 0 && ix < p.InW {
				flipCopy(dd, src[ix*p.InC:][:p.InC], c.flip)
			} else {
				fillBytes(dd, c.fill)
			}
		}
	}
	for i := k; i < len(d); i++ {
		d[i] = c.fill
	}
}

// padMergedRow is padMerged's loop over one scratch row for the arm64
// families (the amd64 ones keep the loop above): the positions that take
// the word copy (ix >= 0 and c4 source bytes inside the row: all but a
// few at the edges) in one tight loop without per-position slicing, the
// edges by padPosition, as padMerged does them.
func (c *Conv) padMergedRow(dst, src []byte, x8 uint64) {
	p := &c.p
	xa := min((p.PadW+p.StrideW-1)/p.StrideW, c.pw) // first x with ix >= 0
	xb := xa                                        // x < xb: ix*InC + c4 <= len(src)
	if lim := len(src) - c.c4; lim >= 0 {
		xb = max(min((lim/p.InC+p.PadW)/p.StrideW+1, c.pw), xa)
	}
	if xb > xa {
		dp := unsafe.Pointer(&dst[xa*c.c4])
		sp := unsafe.Pointer(&src[(xa*p.StrideW-p.PadW)*p.InC])
		step := p.StrideW * p.InC
		for range xb - xa {
			for i := 0; i < c.c4; i += 8 {
				*(*uint64)(unsafe.Add(dp, i)) = *(*uint64)(unsafe.Add(sp, i)) ^ x8
			}
			dp = unsafe.Add(dp, c.c4)
			sp = unsafe.Add(sp, step)
		}
	}
	for x := 0; x < c.pw; x++ {
		if x == xa {
			x = xb // the word copy did [xa, xb)
		}
		if x >= c.pw {
			break
		}
		c.padPosition(dst[x*c.c4:][:c.c4], src, x*p.StrideW-p.PadW)
	}
}

// tileArgs is what a micro-kernel reads; assembly depends on its layout.
type tileArgs struct {
	in     [mr]unsafe.Pointer // each pixel's input at filter tap (0, 0)
	out    [mr]unsafe.Pointer // each pixel's nr output bytes (nr of the Conv)
	w      unsafe.Pointer     // this block's packed weights
	params unsafe.Pointer     // this block's requantization parameters
	taps   unsafe.Pointer     // []int32 tap offsets
	ntaps  int
	kbytes int // bytes per tap (a multiple of 4)
	outZP  int32
	actMin int32
	actMax int32
	fp32   int32 // 1: "xnnpack" requantization (parScale), where the family has it (fp32RequantArch)
	nr     int32 // tile width, read by the Go and AVX-VNNI kernels (the others have it built in)
	lsh    int32 // 1: some output channel does not shift right (the arm64 kernels' inline epilogue has no SSHL and assumes rsh > 0)
	nopair int32 // 1: a weight is -128, so the NEON kernel must not sum two products in int16
	sat    int32 // 1: some channel fails narrowFits, so the arm64 SDOT kernel's inline epilogue (no saturation before int16) does not apply
	// The arm64 kernels run on through more tiles after this one, each
	// pixel's input tstep bytes on from the previous tile's, each output
	// ostep bytes (they rewrite out).
	more         int32
	tstep, ostep int
	// A fused residual ADD (Conv.FuseAdd) where the kernel applies it:
	// each output byte becomes addT[uint8(conv)<<8 | uint8(residual)], the
	// residual's byte lying resd bytes from the output's (read before the
	// output is written, so resd may be 0). addT is nil when unfused.
	// tileNEONDotAdd also takes the four pixels' outputs to lie equally
	// far apart (out[j] = out[0] + j*(out[1]-out[0]): four consecutive
	// pixels, which is what tiles gives it).
	addT unsafe.Pointer
	resd int
	// addSink takes tileNEONDotAdd's stores of the lookups it defers
	// from a tile's last pass to the next one when there is no previous
	// pass (the kernel's own scratch; nothing reads it).
	addSink [16]byte
}

// tiles runs pixel-tile x channel-block units [lo, hi) (block-major, so a
// worker sweeps pixels under one block of weights) over src, the padded
// scratch image or, when c.direct, the input itself. Divisions happen once
// per call of tiles; each unit walks on from the previous one. With a
// residual (not nil: ConvAdd) the output gets the fused ADD (Conv.addT) of
// the convolution and the residual, by the kernel (Conv.addKernel) where
// its tile lies wholly in the output, else through the spill. The
// kernel's arguments live on this goroutine's stack: pointer stores there
// need no GC write barrier, which on a heap copy cost a check per pointer
// per call.
func (c *Conv) tiles(src []byte, output, residual []int8, lo, hi int, spill *[mr * nr]byte) {
	var args tileArgs
	a := &args
	p := &c.p
	taps := len(c.taps)
	nr := c.nr
	wBlock := taps * c.kbytes * nr
	a.taps = unsafe.Pointer(unsafe.SliceData(c.taps))
	a.ntaps = taps
	a.kbytes = c.kbytes
	a.outZP, a.actMin, a.actMax = p.OutputOffset, p.ActMin, p.ActMax
	a.fp32 = 0
	a.nr = int32(nr)
	if p.Scale != nil {
		a.fp32 = 1
	}
	if c.anyLsh {
		a.lsh = 1
	}
	if c.minWeight {
		a.nopair = 1
	}
	if c.sat {
		a.sat = 1
	}
	sbase := unsafe.Pointer(unsafe.SliceData(src))
	obase := unsafe.Pointer(unsafe.SliceData(output))
	// fused: a residual ADD follows; post: every tile goes through the
	// spill, where Go applies it (the kernel does not).
	fused := residual != nil
	post := fused && !c.addKernel
	var kaddT unsafe.Pointer // the kernel's tileArgs.addT for tiles written in place
	if fused && c.addKernel {
		kaddT = unsafe.Pointer(c.addT)
		a.addT = kaddT
		a.resd = int(uintptr(unsafe.Pointer(unsafe.SliceData(residual))) - uintptr(obase))
	}
	sp := unsafe.Slice((*int8)(unsafe.Pointer(&spill[0])), len(spill))
	// Where unit lo starts: its block, its first pixel (b, oy, ox) and
	// that pixel's input at filter tap (0, 0).
	blk, mt := lo/c.mtiles, lo%c.mtiles
	px0 := mt * mr
	hw := p.OutH * p.OutW
	b, r := px0/hw, px0%hw
	oy, ox := r/p.OutW, r%p.OutW
	// inp is an offset into src, not a pointer: after the last tile it
	// points past the end, which a pointer may not (checkptr).
	inp := b*c.plane + (oy*p.StrideH*c.pw+ox*c.sx)*c.c4
	for u := lo; u < hi; u++ {
		if mt == c.mtiles { // the next block of channels starts at pixel 0
			mt, px0, blk = 0, 0, blk+1
			b, oy, ox = 0, 0, 0
			inp = 0
		}
		oc0 := blk * nr
		full := oc0+nr <= p.OutC
		a.w = unsafe.Pointer(&c.w[blk*wBlock])
		a.params = unsafe.Pointer(&c.params[blk*numPar*nr])
		valid := min(mr, c.m-px0)
		if valid == mr && ox+mr <= p.OutW && full && !post {
			// The common tile: four pixels of one output row.
			a.in[0] = unsafe.Add(sbase, inp)
			a.in[1] = unsafe.Add(sbase, inp+c.stepX)
			a.in[2] = unsafe.Add(sbase, inp+2*c.stepX)
			a.in[3] = unsafe.Add(sbase, inp+3*c.stepX)
			o := unsafe.Add(obase, px0*p.OutC+oc0)
			a.out[0] = o
			a.out[1] = unsafe.Add(o, p.OutC)
			a.out[2] = unsafe.Add(o, 2*p.OutC)
			a.out[3] = unsafe.Add(o, 3*p.OutC)
			if c.runs {
				// Further common tiles in this call: the rest of the
				// row, or of the block where pixels follow each other
				// in the input across rows (no padding columns).
				n := (p.OutW - ox) / mr
				if c.linear {
					n = (c.m - px0) / mr
				}
				if n = min(n, hi-u); n > 1 {
					a.more, a.tstep, a.ostep = int32(n-1), mr*c.stepX, mr*p.OutC
					c.runTile(a)
					a.more = 0
					u += n - 1
					mt += n
					px0 += n * mr
					b = px0 / hw
					r := px0 % hw
					oy, ox = r/p.OutW, r%p.OutW
					inp = b*c.plane + (oy*p.StrideH*c.pw+ox*c.sx)*c.c4
					continue
				}
			}
			inp += mr * c.stepX
			if ox += mr; ox == p.OutW {
				ox = 0
				inp += c.stepRow
				if oy++; oy == p.OutH {
					oy, b = 0, b+1
					inp = b * c.plane
				}
			}
			c.runTile(a)
			mt++
			px0 += mr
			continue
		}
		if valid <= 2 && full && c.dot1 {
			// The layer's last tile holds one or two pixels: each runs
			// alone (a quarter of a four-pixel tile's cost), instead of
			// the four-pixel kernel on copies of the last one.
			for j := range valid {
				a.in[0] = unsafe.Add(sbase, inp)
				a.out[0] = unsafe.Add(obase, (px0+j)*p.OutC+oc0)
				if fused {
					// tileNEONDot1 has no fused ADD: through the spill.
					a.out[0] = unsafe.Pointer(&spill[0])
				}
				tileNEONDot1(a)
				if fused {
					o := (px0+j)*p.OutC + oc0
					addResidual(c.addT, spill[:nr], residual[o:o+nr], output[o:o+nr])
				}
				inp += c.stepX
				if ox++; ox == p.OutW {
					ox = 0
					inp += c.stepRow
					if oy++; oy == p.OutH {
						oy, b = 0, b+1
						inp = b * c.plane
					}
				}
			}
			mt++
			px0 += mr
			continue
		}
		// Straight to the output, when the tile's channels all exist and,
		// where the kernel applies a fused ADD, all four pixels do (it would
		// read a residual beside the spill).
		inPlace := full && !post && (valid == mr || !fused)
		for j := range mr {
			if j >= valid {
				// Past the last pixel: recompute the previous one into the spill.
				a.in[j] = a.in[j-1]
				a.out[j] = unsafe.Pointer(&spill[j*nr])
				continue
			}
			a.in[j] = unsafe.Add(sbase, inp)
			if inPlace {
				a.out[j] = unsafe.Add(obase, (px0+j)*p.OutC+oc0)
			} else {
				a.out[j] = unsafe.Pointer(&spill[j*nr])
			}
			inp += c.stepX
			if ox++; ox == p.OutW {
				ox = 0
				inp += c.stepRow
				if oy++; oy == p.OutH {
					oy, b = 0, b+1
					inp = b * c.plane
				}
			}
		}
		if !inPlace {
			a.addT = nil // the spill has no residual beside it
		}
		c.runTile(a)
		a.addT = kaddT
		if !inPlace {
			n := min(p.OutC-oc0, nr)
			for j := range valid {
				o := (px0+j)*p.OutC + oc0
				if fused {
					addResidual(c.addT, spill[j*nr:][:n], residual[o:o+n], output[o:o+n])
				} else {
					copy(output[o:o+n], sp[j*nr:][:n])
				}
			}
		}
		mt++
		px0 += mr
	}
}

// addResidual is out[i] = t[conv[i]<<8 | uint8(res[i])]: the fused ADD of
// tiles that went through the spill. res may be out itself.
func addResidual(t *[1 << 16]int8, conv []byte, res, out []int8) {
	res = res[:len(conv)]
	out = out[:len(conv)]
	for i, v := range conv {
		out[i] = t[uint16(v)<<8|uint16(uint8(res[i]))]
	}
}

// FuseAdd makes c's output stage add a residual. After it returns true,
// Runner.ConvAdd(c, input, residual, output) sets output[i] to a's ADD of
// conv(input)[i] and residual[i] (the convolution's value is a's first
// input when convFirst, else its second), bit-exact with ref.ConvInt8
// followed by ref.AddInt8 with a's parameters. It returns false and
// changes nothing where c's kernel family or layer has no fused path
// (the caller then runs Conv and Add as before). Runner.Conv still runs
// the convolution alone. FuseAdd is not safe to call while c runs.
func (c *Conv) FuseAdd(a *Add, convFirst bool) bool {
	kernel := c.fusedKernel()
	if c.isa != Go && !kernel {
		return false
	}
	t := a.table
	if !convFirst {
		t = a.transposed()
	}
	c.addT, c.addKernel = t, kernel
	return true
}

// fusedKernel reports whether c's micro-kernel applies a fused ADD itself
// (tileArgs.addT): the SDOT kernel's fixed-point fast copies
// (tileNEONDotAdd: whole 16-byte chunks per tap, not the float32
// requantization).
func (c *Conv) fusedKernel() bool {
	return c.isa == NEONDot && c.kbytes%16 == 0 && c.p.Scale == nil
}

func (c *Conv) runTile(a *tileArgs) {
	switch c.isa {
	case AVX512VNNI:
		switch c.nr {
		case 16:
			tileAVX512VNNIx16(a)
		case 32:
			tileAVX512VNNIx32(a)
		default:
			tileAVX512VNNI(a)
		}
	case AVXVNNI:
		tileAVXVNNI(a)
	case AVX2:
		switch c.nr {
		case 16:
			tileAVX2x16(a)
		case 32:
			tileAVX2x32(a)
		default:
			tileAVX2(a)
		}
	case NEONDot:
		if a.addT != nil {
			tileNEONDotAdd(a)
		} else {
			tileNEONDot(a)
		}
	case NEON:
		tileNEON(a)
	default:
		tileGo(a)
	}
}

// tileGo is the portable micro-kernel: the assembly's contract in Go.
func tileGo(a *tileArgs) {
	var acc [mr][nr]int32
	nr := int(a.nr)
	taps := unsafe.Slice((*int32)(a.taps), a.ntaps)
	groups := a.kbytes / 4
	w := unsafe.Slice((*int8)(a.w), a.ntaps*groups*nr*4)
	for t, off := range taps {
		for j := range mr {
			in := unsafe.Slice((*byte)(unsafe.Add(a.in[j], off)), a.kbytes)
			acc := &acc[j]
			for g := range groups {
				u0, u1, u2, u3 := int32(in[4*g]), int32(in[4*g+1]), int32(in[4*g+2]), int32(in[4*g+3])
				wg := w[(t*groups+g)*nr*4:][:nr*4]
				for l := range nr {
					acc[l] += int32(wg[4*l])*u0 + int32(wg[4*l+1])*u1 + int32(wg[4*l+2])*u2 + int32(wg[4*l+3])*u3
				}
			}
		}
	}
	par := unsafe.Slice((*int32)(a.params), numPar*nr)
	if a.fp32 != 0 {
		for j := range mr {
			out := unsafe.Slice((*int8)(a.out[j]), nr)
			for l := range nr {
				scale := math.Float32frombits(uint32(par[parScale*nr+l]))
				out[l] = ref.RequantizeFP32(acc[j][l]+par[parBias*nr+l], scale, a.outZP, a.actMin, a.actMax)
			}
		}
		return
	}
	for j := range mr {
		out := unsafe.Slice((*int8)(a.out[j]), nr)
		for l := range nr {
			x := acc[j][l] + par[parBias*nr+l]
			shift := int(par[parLsh*nr+l]) - int(par[parRsh*nr+l])
			x = ref.MultiplyByQuantizedMultiplier(x, par[parMult*nr+l], shift) + a.outZP
			out[l] = int8(min(max(x, a.actMin), a.actMax))
		}
	}
}

// fillBytes sets every byte of b to v: sixteen bytes stored, then doubled
// by memmove.
func fillBytes(b []byte, v byte) {
	if len(b) < 16 {
		for i := range b {
			b[i] = v
		}
		return
	}
	v8 := uint64(v) * 0x0101010101010101
	*(*uint64)(unsafe.Pointer(&b[0])) = v8
	*(*uint64)(unsafe.Pointer(&b[8])) = v8
	for n := 16; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}

// flipCopy writes src^x to dst: a memmove for the families that read the
// bytes as they are.
func flipCopy(dst, src []byte, x byte) {
	if x == 0 {
		copy(dst, src)
		return
	}
	xorBytes(dst, src, x)
}

// xorBytesArch, where the architecture has one (xor_amd64.go), xors a
// prefix of src into dst and returns its length.
var xorBytesArch func(dst, src []byte, x byte) int

// xorBytes writes src^x to dst, eight bytes at a time after what
// xorBytesArch did; with x = 0x80 that is src+128 as unsigned bytes.
func xorBytes(dst []byte, src []byte, x byte) {
	n := len(src)
	x8 := uint64(x) * 0x0101010101010101
	i := 0
	if xorBytesArch != nil && n >= 32 {
		i = xorBytesArch(dst[:n], src, x)
	}
	for ; i+8 <= n; i += 8 {
		v := *(*uint64)(unsafe.Pointer(&src[i]))
		*(*uint64)(unsafe.Pointer(&dst[i])) = v ^ x8
	}
	for ; i < n; i++ {
		dst[i] = src[i] ^ x
	}
}

const alignment = 64

func alignedBytes(n int) []byte {
	buf := make([]byte, n+alignment)
	off := (alignment - int(uintptr(unsafe.Pointer(unsafe.SliceData(buf)))%alignment)) % alignment
	return buf[off : off+n : off+n]
}

func alignedInt32s(n int) []int32 {
	b := alignedBytes(4 * n)
	return unsafe.Slice((*int32)(unsafe.Pointer(unsafe.SliceData(b))), n)
}
