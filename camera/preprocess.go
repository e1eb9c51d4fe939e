package camera

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"unsafe"

	"gocv.io/x/gocv"

	"github.com/shortcut-edge/shortcut/resnet"
)

// Fit says how a frame is brought to the model's input size.
type Fit int

const (
	// FitCrop scales the shorter side to the input size and cuts the centre
	// (the usual ImageNet evaluation transform, without its 0.875 margin).
	FitCrop Fit = iota
	// FitLetterbox scales the longer side to the input size and pads the rest
	// with Pad, keeping the whole picture.
	FitLetterbox
	// FitStretch scales each side independently, distorting the aspect ratio.
	FitStretch
)

func (f Fit) String() string {
	switch f {
	case FitCrop:
		return "crop"
	case FitLetterbox:
		return "letterbox"
	case FitStretch:
		return "stretch"
	}
	return fmt.Sprintf("Fit(%d)", int(f))
}

// Interpolation is the resampling used when resizing.
type Interpolation int

const (
	// InterpArea averages source pixels when shrinking (no aliasing) and
	// is bilinear when enlarging.
	InterpArea Interpolation = iota
	// InterpLinear is bilinear; cheaper but aliases when shrinking a lot.
	InterpLinear
)

// PreprocessConfig describes a model input.
type PreprocessConfig struct {
	Width, Height int
	// Grey makes a 1-channel input; otherwise the input is RGB.
	Grey bool
	// ROI, when not empty, is the part of the frame to use, in frame pixels.
	// It is clipped to the frame.
	ROI           image.Rectangle
	Fit           Fit
	Interpolation Interpolation
	// Pad is the grey level of letterbox borders.
	Pad uint8
	// Mean and Std normalise float and int8 outputs per channel, in output
	// order (R, G, B; only [0] for grey): value = (pixel/255 - Mean) / Std.
	// A zero Std counts as 1, so the zero config gives pixel/255.
	Mean, Std [3]float32
	// Scale and ZeroPoint quantize the normalised value for Int8:
	// q = clamp(round(value/Scale) + ZeroPoint, -128, 127).
	Scale     float32
	ZeroPoint int
	// Content, when not zero, is the size (X wide, Y high) of the picture
	// area inside the Width x Height input, for models trained on smaller
	// images padded to their input (resnet.Metadata.ImageSize; training's
	// pad_to). The frame is fitted (Fit, ROI) into a Content-sized
	// rectangle centred in the input, its top-left corner at
	// ((Width-X)/2, (Height-Y)/2), and everything outside it is black,
	// pixel value 0, as the padding was in training: 0 in Uint8 output,
	// (0 - Mean)/Std in Float32 output and that value quantized in Int8
	// output. Zero uses the whole input. Each side is 1..Width or 1..Height.
	Content image.Point
}

// Geometry is where a frame's pixels go in the model input.
type Geometry struct {
	Src     image.Point     // frame size
	ROI     image.Rectangle // the part of the frame used, after clipping
	Resized image.Point     // size the ROI is scaled to
	// Crop is the part of the scaled image kept (FitCrop), in its coordinates.
	Crop image.Rectangle
	// Place is where the kept part of the scaled image lands in the input:
	// Content, or for FitLetterbox the part of it the picture covers.
	Place image.Rectangle
	// Content is the picture area of the input (PreprocessConfig.Content
	// centred, or the whole input); outside it the input is black.
	Content image.Rectangle
}

// Preprocessor turns frames into model input tensors (HWC, row-major) in
// buffers the caller owns. It keeps its OpenCV Mats from frame to frame, so
// frames of an unchanging size allocate nothing. One goroutine at a time.
type Preprocessor struct {
	cfg      PreprocessConfig
	channels int
	interp   gocv.InterpolationFlags

	resized, conv, mid, out gocv.Mat
	roiView, cropView       view

	geomFor image.Rectangle // src bounds and ROI the cached geometry is for
	geom    Geometry
	haveGeo bool

	f32 [3][256]float32
	i8  [3][256]int8
}

// NewPreprocessor checks cfg and prepares lookup tables.
func NewPreprocessor(cfg PreprocessConfig) (*Preprocessor, error) {
	var errs []error
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > 1<<14 || cfg.Height > 1<<14 {
		errs = append(errs, fmt.Errorf("input size %dx%d: want 1 to 16384 pixels a side", cfg.Width, cfg.Height))
	}
	if cfg.Fit < FitCrop || cfg.Fit > FitStretch {
		errs = append(errs, fmt.Errorf("fit %d: want FitCrop, FitLetterbox or FitStretch", int(cfg.Fit)))
	}
	if cfg.Interpolation < InterpArea || cfg.Interpolation > InterpLinear {
		errs = append(errs, fmt.Errorf("interpolation %d: want InterpArea or InterpLinear", int(cfg.Interpolation)))
	}
	for i, s := range cfg.Std {
		if s < 0 || math.IsNaN(float64(s)) {
			errs = append(errs, fmt.Errorf("std[%d] = %v: want a positive number (0 means 1)", i, s))
		}
	}
	if cfg.Scale < 0 || math.IsNaN(float64(cfg.Scale)) {
		errs = append(errs, fmt.Errorf("int8 scale %v: want a positive number", cfg.Scale))
	}
	if cfg.ZeroPoint < -128 || cfg.ZeroPoint > 127 {
		errs = append(errs, fmt.Errorf("int8 zero point %d: want -128 to 127", cfg.ZeroPoint))
	}
	if c := cfg.Content; c != (image.Point{}) && (c.X < 1 || c.Y < 1 || c.X > cfg.Width || c.Y > cfg.Height) {
		errs = append(errs, fmt.Errorf("content size %dx%d: want 1 to %d wide and 1 to %d high (inside the %dx%d input), or zero for the whole input",
			c.X, c.Y, cfg.Width, cfg.Height, cfg.Width, cfg.Height))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("preprocess config: %w", err)
	}
	p := &Preprocessor{cfg: cfg, channels: 3, interp: gocv.InterpolationArea}
	if cfg.Grey {
		p.channels = 1
	}
	if cfg.Interpolation == InterpLinear {
		p.interp = gocv.InterpolationLinear
	}
	// The model input's quantization, converted as every model input is
	// (resnet.Quant.QuantizeInt8, the one float->int8 conversion).
	inQ := &resnet.Quant{Scale: []float32{cfg.Scale}, ZeroPoint: []int64{int64(cfg.ZeroPoint)}}
	for c := 0; c < 3; c++ {
		std := cfg.Std[c]
		if std == 0 {
			std = 1
		}
		for v := 0; v < 256; v++ {
			p.f32[c][v] = (float32(v)/255 - cfg.Mean[c]) / std
		}
		if cfg.Scale > 0 {
			inQ.QuantizeInt8(p.i8[c][:], p.f32[c][:])
		}
	}
	p.resized, p.conv, p.mid, p.out = gocv.NewMat(), gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	return p, nil
}

// Len is the number of elements in one input tensor (Height*Width*channels).
func (p *Preprocessor) Len() int { return p.cfg.Height * p.cfg.Width * p.channels }

// Channels is 3 (RGB) or 1 (grey).
func (p *Preprocessor) Channels() int { return p.channels }

// Close releases the Mats.
func (p *Preprocessor) Close() error {
	p.roiView.close()
	p.cropView.close()
	p.resized.Close()
	p.conv.Close()
	p.mid.Close()
	p.out.Close()
	return nil
}

// content is the picture area of the input: Content centred, or the whole
// input.
func (p *Preprocessor) content() image.Rectangle {
	W, H := p.cfg.Width, p.cfg.Height
	c := p.cfg.Content
	if c == (image.Point{}) {
		return image.Rect(0, 0, W, H)
	}
	x0, y0 := (W-c.X)/2, (H-c.Y)/2
	return image.Rect(x0, y0, x0+c.X, y0+c.Y)
}

// Geometry computes where a frame of the given size goes.
func (p *Preprocessor) Geometry(srcW, srcH int) (Geometry, error) {
	content := p.content()
	W, H := content.Dx(), content.Dy() // the frame is fitted into the content area
	g := Geometry{Src: image.Pt(srcW, srcH), Content: content}
	if srcW <= 0 || srcH <= 0 {
		return g, fmt.Errorf("preprocess: frame size %dx%d is empty", srcW, srcH)
	}
	g.ROI = image.Rect(0, 0, srcW, srcH)
	if !p.cfg.ROI.Empty() {
		g.ROI = p.cfg.ROI.Intersect(g.ROI)
		if g.ROI.Empty() {
			return g, fmt.Errorf("preprocess: region of interest %v lies outside the %dx%d frame", p.cfg.ROI, srcW, srcH)
		}
	}
	w, h := float64(g.ROI.Dx()), float64(g.ROI.Dy())
	switch p.cfg.Fit {
	case FitCrop:
		s := max(float64(W)/w, float64(H)/h)
		rw := max(W, int(math.Round(w*s)))
		rh := max(H, int(math.Round(h*s)))
		g.Resized = image.Pt(rw, rh)
		x0, y0 := (rw-W)/2, (rh-H)/2
		g.Crop = image.Rect(x0, y0, x0+W, y0+H)
		g.Place = image.Rect(0, 0, W, H)
	case FitLetterbox:
		s := min(float64(W)/w, float64(H)/h)
		iw := max(1, min(W, int(math.Round(w*s))))
		ih := max(1, min(H, int(math.Round(h*s))))
		g.Resized = image.Pt(iw, ih)
		g.Crop = image.Rect(0, 0, iw, ih)
		x0, y0 := (W-iw)/2, (H-ih)/2
		g.Place = image.Rect(x0, y0, x0+iw, y0+ih)
	case FitStretch:
		g.Resized = image.Pt(W, H)
		g.Crop = image.Rect(0, 0, W, H)
		g.Place = g.Crop
	}
	g.Place = g.Place.Add(content.Min)
	return g, nil
}

// Uint8 writes the input as bytes (RGB or grey, HWC) into dst, which must
// hold exactly Len() elements.
func (p *Preprocessor) Uint8(src gocv.Mat, dst []uint8) error {
	px, err := p.run(src, len(dst))
	if err != nil {
		return err
	}
	copy(dst, px)
	return nil
}

// Float32 writes (pixel/255 - Mean)/Std into dst (Len() elements).
func (p *Preprocessor) Float32(src gocv.Mat, dst []float32) error {
	px, err := p.run(src, len(dst))
	if err != nil {
		return err
	}
	if p.channels == 1 {
		t := &p.f32[0]
		for i, v := range px {
			dst[i] = t[v]
		}
		return nil
	}
	t0, t1, t2 := &p.f32[0], &p.f32[1], &p.f32[2]
	dst = dst[:len(px)]
	for i := 0; i+2 < len(px); i += 3 {
		dst[i], dst[i+1], dst[i+2] = t0[px[i]], t1[px[i+1]], t2[px[i+2]]
	}
	return nil
}

// Int8 writes the normalised input quantized with Scale and ZeroPoint.
func (p *Preprocessor) Int8(src gocv.Mat, dst []int8) error {
	if p.cfg.Scale <= 0 {
		return fmt.Errorf("preprocess: int8 output needs PreprocessConfig.Scale > 0 (the model input's quantization scale)")
	}
	px, err := p.run(src, len(dst))
	if err != nil {
		return err
	}
	if p.channels == 1 {
		t := &p.i8[0]
		for i, v := range px {
			dst[i] = t[v]
		}
		return nil
	}
	t0, t1, t2 := &p.i8[0], &p.i8[1], &p.i8[2]
	dst = dst[:len(px)]
	for i := 0; i+2 < len(px); i += 3 {
		dst[i], dst[i+1], dst[i+2] = t0[px[i]], t1[px[i+1]], t2[px[i+2]]
	}
	return nil
}

// run produces the input pixels (HWC bytes) in p.out and returns them; the
// slice is valid until the next call.
func (p *Preprocessor) run(src gocv.Mat, dstLen int) ([]uint8, error) {
	if dstLen != p.Len() {
		return nil, fmt.Errorf("preprocess: destination holds %d elements, want %d (%dx%dx%d)", dstLen, p.Len(), p.cfg.Height, p.cfg.Width, p.channels)
	}
	if src.Ptr() == nil || src.Empty() {
		return nil, fmt.Errorf("preprocess: the frame is empty")
	}
	switch src.Type() {
	case gocv.MatTypeCV8UC1, gocv.MatTypeCV8UC3, gocv.MatTypeCV8UC4:
	default:
		return nil, fmt.Errorf("preprocess: frame type %v unsupported: want 8-bit with 1, 3 or 4 channels", src.Type())
	}
	bounds := image.Rect(0, 0, src.Cols(), src.Rows())
	if !p.haveGeo || p.geomFor != bounds {
		g, err := p.Geometry(src.Cols(), src.Rows())
		if err != nil {
			return nil, err
		}
		p.geom, p.geomFor, p.haveGeo = g, bounds, true
	}
	g := p.geom
	in := src
	if g.ROI != bounds {
		in = p.roiView.of(&src, g.ROI)
	}
	// Without a content area the last step writes p.out; with one it
	// writes p.conv (letterbox: p.mid), which a black border then grows to
	// the input size.
	full := g.Content == image.Rect(0, 0, p.cfg.Width, p.cfg.Height)
	dst := &p.out
	if !full {
		dst = &p.conv
	}
	switch p.cfg.Fit {
	case FitCrop:
		gocv.Resize(in, &p.resized, g.Resized, 0, 0, p.interp)
		crop := p.resized
		if g.Crop != image.Rect(0, 0, g.Resized.X, g.Resized.Y) {
			crop = p.cropView.of(&p.resized, g.Crop)
		}
		if err := p.convert(crop, dst); err != nil {
			return nil, err
		}
	case FitLetterbox:
		gocv.Resize(in, &p.resized, g.Resized, 0, 0, p.interp)
		if err := p.convert(p.resized, &p.conv); err != nil {
			return nil, err
		}
		c, v := g.Content, p.cfg.Pad
		if !full {
			dst = &p.mid
		}
		gocv.CopyMakeBorder(p.conv, dst, g.Place.Min.Y-c.Min.Y, c.Max.Y-g.Place.Max.Y, g.Place.Min.X-c.Min.X, c.Max.X-g.Place.Max.X,
			gocv.BorderConstant, color.RGBA{v, v, v, v})
	case FitStretch:
		gocv.Resize(in, &p.resized, g.Resized, 0, 0, p.interp)
		if err := p.convert(p.resized, dst); err != nil {
			return nil, err
		}
	}
	if !full {
		c := g.Content
		gocv.CopyMakeBorder(*dst, &p.out, c.Min.Y, p.cfg.Height-c.Max.Y, c.Min.X, p.cfg.Width-c.Max.X,
			gocv.BorderConstant, color.RGBA{})
	}
	px := p.out.DataPtrUint8()
	if len(px) != p.Len() {
		return nil, fmt.Errorf("preprocess: OpenCV produced %d bytes, want %d (%dx%dx%d): please report this", len(px), p.Len(), p.cfg.Height, p.cfg.Width, p.channels)
	}
	return px, nil
}

// convert turns BGR, BGRA or grey into RGB or grey.
func (p *Preprocessor) convert(src gocv.Mat, dst *gocv.Mat) error {
	switch ch := src.Channels(); {
	case ch == 3 && p.channels == 3:
		gocv.CvtColor(src, dst, gocv.ColorBGRToRGB)
	case ch == 3 && p.channels == 1:
		gocv.CvtColor(src, dst, gocv.ColorBGRToGray)
	case ch == 4 && p.channels == 3:
		gocv.CvtColor(src, dst, gocv.ColorRGBAToBGR) // same code as BGRA2RGB: drop alpha, swap R and B
	case ch == 4 && p.channels == 1:
		gocv.CvtColor(src, dst, gocv.ColorBGRAToGray)
	case ch == 1 && p.channels == 3:
		gocv.CvtColor(src, dst, gocv.ColorGrayToBGR) // grey has no order: same code as GRAY2RGB
	case ch == 1 && p.channels == 1:
		src.CopyTo(dst)
	default:
		return fmt.Errorf("preprocess: cannot convert %d channels to %d", ch, p.channels)
	}
	return nil
}

// view is a cached sub-Mat. OpenCV reuses a Mat's buffer while its size
// stays the same, so a region made once keeps seeing new frames; it is made
// again only when the parent's buffer or the rectangle changes. (A view holds
// a reference to its parent's buffer, so a new buffer never reuses the old
// address while the view exists.)
type view struct {
	m    gocv.Mat
	ok   bool
	data uintptr
	rows int
	cols int
	typ  gocv.MatType
	rect image.Rectangle
}

func dataAddr(m *gocv.Mat) uintptr {
	b := m.DataPtrUint8()
	if len(b) == 0 {
		return 0
	}
	return uintptr(unsafe.Pointer(&b[0]))
}

func (v *view) of(parent *gocv.Mat, r image.Rectangle) gocv.Mat {
	d := dataAddr(parent)
	if v.ok && d == v.data && parent.Rows() == v.rows && parent.Cols() == v.cols && parent.Type() == v.typ && r == v.rect {
		return v.m
	}
	v.close()
	v.m = parent.Region(r)
	v.ok, v.data, v.rows, v.cols, v.typ, v.rect = true, d, parent.Rows(), parent.Cols(), parent.Type(), r
	return v.m
}

func (v *view) close() {
	if v.ok {
		v.m.Close()
		v.ok = false
	}
}
