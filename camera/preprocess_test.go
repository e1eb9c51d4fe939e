package camera

import (
	"image"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

func newPre(t testing.TB, cfg PreprocessConfig) *Preprocessor {
	t.Helper()
	p, err := NewPreprocessor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestGeometryMatchesHandComputedCases(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      PreprocessConfig
		w, h     int
		roi      image.Rectangle
		resized  image.Point
		crop     image.Rectangle
		place    image.Rectangle
		errorHas string
	}{
		{name: "VGA centre crop keeps the middle 4:3 -> 1:1",
			cfg: PreprocessConfig{Width: 224, Height: 224}, w: 640, h: 480,
			roi: image.Rect(0, 0, 640, 480), resized: image.Pt(299, 224), crop: image.Rect(37, 0, 261, 224), place: image.Rect(0, 0, 224, 224)},
		{name: "1080p centre crop",
			cfg: PreprocessConfig{Width: 224, Height: 224}, w: 1920, h: 1080,
			roi: image.Rect(0, 0, 1920, 1080), resized: image.Pt(398, 224), crop: image.Rect(87, 0, 311, 224), place: image.Rect(0, 0, 224, 224)},
		{name: "portrait crop cuts top and bottom",
			cfg: PreprocessConfig{Width: 100, Height: 100}, w: 300, h: 600,
			roi: image.Rect(0, 0, 300, 600), resized: image.Pt(100, 200), crop: image.Rect(0, 50, 100, 150), place: image.Rect(0, 0, 100, 100)},
		{name: "VGA letterbox pads top and bottom",
			cfg: PreprocessConfig{Width: 224, Height: 224, Fit: FitLetterbox}, w: 640, h: 480,
			roi: image.Rect(0, 0, 640, 480), resized: image.Pt(224, 168), crop: image.Rect(0, 0, 224, 168), place: image.Rect(0, 28, 224, 196)},
		{name: "square region of interest fills the input",
			cfg: PreprocessConfig{Width: 224, Height: 224, ROI: image.Rect(100, 50, 500, 450)}, w: 640, h: 480,
			roi: image.Rect(100, 50, 500, 450), resized: image.Pt(224, 224), crop: image.Rect(0, 0, 224, 224), place: image.Rect(0, 0, 224, 224)},
		{name: "region of interest is clipped to the frame",
			cfg: PreprocessConfig{Width: 224, Height: 224, ROI: image.Rect(600, 400, 700, 500)}, w: 640, h: 480,
			roi: image.Rect(600, 400, 640, 480), resized: image.Pt(224, 448), crop: image.Rect(0, 112, 224, 336), place: image.Rect(0, 0, 224, 224)},
		{name: "stretch ignores the aspect ratio",
			cfg: PreprocessConfig{Width: 100, Height: 50, Fit: FitStretch}, w: 640, h: 480,
			roi: image.Rect(0, 0, 640, 480), resized: image.Pt(100, 50), crop: image.Rect(0, 0, 100, 50), place: image.Rect(0, 0, 100, 50)},
		{name: "region outside the frame is an error",
			cfg: PreprocessConfig{Width: 10, Height: 10, ROI: image.Rect(700, 0, 800, 100)}, w: 640, h: 480, errorHas: "outside"},
		{name: "empty frame is an error",
			cfg: PreprocessConfig{Width: 10, Height: 10}, w: 0, h: 480, errorHas: "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := newPre(t, tc.cfg).Geometry(tc.w, tc.h)
			if tc.errorHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errorHas) {
					t.Fatalf("error %v, want one containing %q", err, tc.errorHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g.ROI != tc.roi || g.Resized != tc.resized || g.Crop != tc.crop || g.Place != tc.place {
				t.Errorf("got roi %v resized %v crop %v place %v\nwant roi %v resized %v crop %v place %v",
					g.ROI, g.Resized, g.Crop, g.Place, tc.roi, tc.resized, tc.crop, tc.place)
			}
		})
	}
}

// bands is a 400x200 BGR frame: green for x < 100, red for 100 <= x < 300,
// blue from 300 on.
func bands(t testing.TB) gocv.Mat {
	t.Helper()
	m := gocv.NewMatWithSize(200, 400, gocv.MatTypeCV8UC3)
	for y := 0; y < 200; y++ {
		for x := 0; x < 400; x++ {
			b, g, r := uint8(0), uint8(0), uint8(0)
			switch {
			case x < 100:
				g = 255
			case x < 300:
				r = 255
			default:
				b = 255
			}
			m.SetUCharAt(y, 3*x, b)
			m.SetUCharAt(y, 3*x+1, g)
			m.SetUCharAt(y, 3*x+2, r)
		}
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// pixelAt reads pixel (x, y) of an HWC tensor.
func pixelAt(px []uint8, w, c, x, y int) []uint8 { return px[(y*w+x)*c : (y*w+x)*c+c] }

func TestSolidBlocksLandWhereTheGeometrySays(t *testing.T) {
	src := bands(t)
	red, green, blue := []uint8{255, 0, 0}, []uint8{0, 255, 0}, []uint8{0, 0, 255}
	for _, tc := range []struct {
		name string
		cfg  PreprocessConfig
		want func(x, y int) []uint8 // expected output, RGB or grey
	}{
		{"centre crop keeps exactly the red middle", PreprocessConfig{Width: 100, Height: 100},
			func(x, y int) []uint8 { return red }},
		{"letterbox pads with the pad level and keeps every band", PreprocessConfig{Width: 100, Height: 100, Fit: FitLetterbox, Pad: 7},
			func(x, y int) []uint8 {
				switch {
				case y < 25 || y >= 75:
					return []uint8{7, 7, 7}
				case x < 25:
					return green
				case x < 75:
					return red
				}
				return blue
			}},
		{"region of interest picks the blue band", PreprocessConfig{Width: 10, Height: 10, Fit: FitStretch, ROI: image.Rect(300, 0, 400, 200)},
			func(x, y int) []uint8 { return blue }},
		{"grey uses BT.601 weights", PreprocessConfig{Width: 50, Height: 25, Fit: FitStretch, Grey: true},
			func(x, y int) []uint8 {
				switch { // output pixel x covers source columns 8x to 8x+8
				case x < 12:
					return []uint8{150}
				case x >= 13 && x < 37:
					return []uint8{76}
				case x >= 38:
					return []uint8{29}
				}
				return nil // columns 12 and 37 mix two bands
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPre(t, tc.cfg)
			out := make([]uint8, p.Len())
			if err := p.Uint8(src, out); err != nil {
				t.Fatal(err)
			}
			bad := 0
			for y := 0; y < tc.cfg.Height; y++ {
				for x := 0; x < tc.cfg.Width; x++ {
					want := tc.want(x, y)
					if want == nil {
						continue
					}
					got := pixelAt(out, tc.cfg.Width, p.Channels(), x, y)
					for i := range want {
						if got[i] != want[i] {
							if bad++; bad < 5 {
								t.Errorf("pixel (%d,%d) = %v, want %v", x, y, got, want)
							}
							break
						}
					}
				}
			}
		})
	}
}

// refResizeLinear is bilinear resizing with OpenCV's pixel-centre mapping
// (source = (dst+0.5)*scale - 0.5, clamped at the borders), in float64.
func refResizeLinear(src []float64, w, h, c, dw, dh int) []float64 {
	out := make([]float64, dw*dh*c)
	axis := func(d, n, dn int) (int, int, float64) {
		f := (float64(d)+0.5)*float64(n)/float64(dn) - 0.5
		i := int(math.Floor(f))
		a := f - float64(i)
		if i < 0 {
			i, a = 0, 0
		}
		if i >= n-1 {
			i, a = n-1, 0
		}
		j := min(i+1, n-1)
		return i, j, a
	}
	for y := 0; y < dh; y++ {
		y0, y1, b := axis(y, h, dh)
		for x := 0; x < dw; x++ {
			x0, x1, a := axis(x, w, dw)
			for k := 0; k < c; k++ {
				at := func(xx, yy int) float64 { return src[(yy*w+xx)*c+k] }
				top := (1-a)*at(x0, y0) + a*at(x1, y0)
				bot := (1-a)*at(x0, y1) + a*at(x1, y1)
				out[(y*dw+x)*c+k] = (1-b)*top + b*bot
			}
		}
	}
	return out
}

// refPipeline is the crop pipeline in plain Go: region of interest, bilinear
// resize, centre crop, BGR to RGB.
func refPipeline(bgr []uint8, w, h int, roi image.Rectangle, resized image.Point, crop image.Rectangle) []float64 {
	rw, rh := roi.Dx(), roi.Dy()
	in := make([]float64, rw*rh*3)
	for y := 0; y < rh; y++ {
		for x := 0; x < rw; x++ {
			for k := 0; k < 3; k++ {
				in[(y*rw+x)*3+k] = float64(bgr[((y+roi.Min.Y)*w+x+roi.Min.X)*3+k])
			}
		}
	}
	rs := refResizeLinear(in, rw, rh, 3, resized.X, resized.Y)
	cw, ch := crop.Dx(), crop.Dy()
	out := make([]float64, cw*ch*3)
	for y := 0; y < ch; y++ {
		for x := 0; x < cw; x++ {
			for k := 0; k < 3; k++ {
				out[(y*cw+x)*3+k] = rs[((y+crop.Min.Y)*resized.X+x+crop.Min.X)*3+2-k]
			}
		}
	}
	return out
}

// randomFrame is smooth gradients plus noise, so interpolation matters.
func randomFrame(t testing.TB, w, h int, seed uint64) (gocv.Mat, []uint8) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	px := make([]uint8, w*h*3)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for k := 0; k < 3; k++ {
				v := 80*math.Sin(float64(x*(k+1))/9) + 60*math.Cos(float64(y)/7) + 128 + rng.NormFloat64()*20
				px[(y*w+x)*3+k] = uint8(max(0, min(255, math.Round(v))))
			}
		}
	}
	m, err := gocv.NewMatFromBytes(h, w, gocv.MatTypeCV8UC3, px)
	if err != nil {
		t.Fatal(err)
	}
	own := m.Clone() // NewMatFromBytes shares Go memory; keep OpenCV's own copy
	m.Close()
	t.Cleanup(func() { own.Close() })
	return own, px
}

func TestBilinearCropMatchesThePlainGoReference(t *testing.T) {
	for _, tc := range []struct {
		name string
		w, h int
		cfg  PreprocessConfig
	}{
		{"shrink VGA-like frame", 160, 120, PreprocessConfig{Width: 56, Height: 56}},
		{"odd sizes and a region of interest", 97, 61, PreprocessConfig{Width: 31, Height: 23, ROI: image.Rect(5, 3, 90, 58)}},
		{"enlarge a small frame", 40, 30, PreprocessConfig{Width: 64, Height: 64}},
		{"portrait", 45, 80, PreprocessConfig{Width: 32, Height: 32}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Interpolation = InterpLinear
			src, px := randomFrame(t, tc.w, tc.h, uint64(tc.w*tc.h))
			p := newPre(t, tc.cfg)
			out := make([]uint8, p.Len())
			if err := p.Uint8(src, out); err != nil {
				t.Fatal(err)
			}
			g, _ := p.Geometry(tc.w, tc.h)
			want := refPipeline(px, tc.w, tc.h, g.ROI, g.Resized, g.Crop)
			worst := 0.0
			for i := range want {
				worst = max(worst, math.Abs(float64(out[i])-want[i]))
			}
			t.Logf("largest difference from the reference: %.3f levels", worst)
			// OpenCV interpolates 8-bit images with 11-bit fixed-point weights.
			if worst > 1.0 {
				t.Errorf("largest difference from the reference: %.2f levels, want <= 1", worst)
			}
		})
	}
}

func TestAreaShrinkByTwoAveragesBlocks(t *testing.T) {
	src, px := randomFrame(t, 64, 48, 7)
	p := newPre(t, PreprocessConfig{Width: 32, Height: 24, Fit: FitStretch})
	out := make([]uint8, p.Len())
	if err := p.Uint8(src, out); err != nil {
		t.Fatal(err)
	}
	for y := 0; y < 24; y++ {
		for x := 0; x < 32; x++ {
			for k := 0; k < 3; k++ {
				s := 0.0
				for dy := 0; dy < 2; dy++ {
					for dx := 0; dx < 2; dx++ {
						s += float64(px[((2*y+dy)*64+2*x+dx)*3+2-k])
					}
				}
				if d := math.Abs(float64(out[(y*32+x)*3+k]) - s/4); d > 0.5 {
					t.Fatalf("pixel (%d,%d,%d) = %d, mean of its 2x2 block is %.2f", x, y, k, out[(y*32+x)*3+k], s/4)
				}
			}
		}
	}
}

func TestFloatAndInt8OutputsNormaliseAndQuantize(t *testing.T) {
	src, _ := randomFrame(t, 80, 60, 3)
	mean := [3]float32{0.485, 0.456, 0.406}
	std := [3]float32{0.229, 0.224, 0.225}
	const scale, zp = 0.0187, -14
	p := newPre(t, PreprocessConfig{Width: 40, Height: 40, Mean: mean, Std: std, Scale: scale, ZeroPoint: zp})
	u8 := make([]uint8, p.Len())
	f32 := make([]float32, p.Len())
	i8 := make([]int8, p.Len())
	for _, err := range []error{p.Uint8(src, u8), p.Float32(src, f32), p.Int8(src, i8)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	clamped := 0
	for i, u := range u8 {
		k := i % 3
		x := (float64(u)/255 - float64(mean[k])) / float64(std[k])
		if math.Abs(float64(f32[i])-x) > 1e-5 {
			t.Fatalf("float32[%d] = %v, want (%d/255-%v)/%v = %v", i, f32[i], u, mean[k], std[k], x)
		}
		q := max(-128, min(127, math.Round(x/scale)+zp))
		if math.Abs(float64(i8[i])-q) > 1 || (q == -128 || q == 127) && float64(i8[i]) != q {
			t.Fatalf("int8[%d] = %d, want %v (pixel %d)", i, i8[i], q, u)
		}
		if q == 127 || q == -128 {
			clamped++
		}
	}
	if clamped == 0 {
		t.Log("no value reached the int8 limits; the clamp was not exercised by this frame")
	}

	grey := newPre(t, PreprocessConfig{Width: 8, Height: 8, Grey: true})
	g := make([]float32, grey.Len())
	if err := grey.Float32(src, g); err != nil {
		t.Fatal(err)
	}
	for i, v := range g {
		if v < 0 || v > 1 {
			t.Fatalf("grey float[%d] = %v, want pixel/255 in [0,1] with the zero config", i, v)
		}
	}
}

func TestPreprocessRejectsBadInput(t *testing.T) {
	if _, err := NewPreprocessor(PreprocessConfig{Width: 0, Height: 10, Std: [3]float32{-1, 1, 1}, ZeroPoint: 300}); err == nil ||
		!strings.Contains(err.Error(), "input size") || !strings.Contains(err.Error(), "std[0]") || !strings.Contains(err.Error(), "zero point") {
		t.Errorf("want every config error listed at once, got %v", err)
	}
	p := newPre(t, PreprocessConfig{Width: 8, Height: 8, ROI: image.Rect(1000, 1000, 1100, 1100)})
	src, _ := randomFrame(t, 16, 16, 1)
	empty := gocv.NewMat()
	defer empty.Close()
	floats := gocv.NewMatWithSize(16, 16, gocv.MatTypeCV32FC3)
	defer floats.Close()
	ok := newPre(t, PreprocessConfig{Width: 8, Height: 8})
	for _, tc := range []struct {
		name, want string
		err        error
	}{
		{"empty frame", "empty", ok.Uint8(empty, make([]uint8, 192))},
		{"zero-value Mat", "empty", ok.Uint8(gocv.Mat{}, make([]uint8, 192))},
		{"float frame", "unsupported", ok.Uint8(floats, make([]uint8, 192))},
		{"short buffer", "want 192", ok.Float32(src, make([]float32, 100))},
		{"int8 without a scale", "Scale", ok.Int8(src, make([]int8, 192))},
		{"region outside the frame", "outside", p.Uint8(src, make([]uint8, 192))},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, tc.err, tc.want)
		}
	}
}

// Under -tags matprofile every Mat gocv creates is also a Go allocation (a
// profile entry), so this test then proves that no Mat is made per frame.
func TestSteadyStatePreprocessingAllocatesNothing(t *testing.T) {
	for _, tc := range []struct {
		fit     Fit
		content image.Point
	}{{FitCrop, image.Point{}}, {FitLetterbox, image.Point{}}, {FitStretch, image.Point{}},
		{FitCrop, image.Pt(28, 28)}, {FitLetterbox, image.Pt(28, 28)}, {FitStretch, image.Pt(28, 28)}} {
		fit := tc.fit
		name := fit.String()
		if tc.content != (image.Point{}) {
			name += " in a content area"
		}
		t.Run(name, func(t *testing.T) {
			src, _ := randomFrame(t, 160, 120, 9)
			p := newPre(t, PreprocessConfig{Width: 32, Height: 32, Fit: fit, ROI: image.Rect(10, 10, 150, 110), Scale: 0.02, Content: tc.content})
			dst := make([]int8, p.Len())
			p.Int8(src, dst) // first frame sizes the Mats
			m0, counting := openMats()
			allocs := testing.AllocsPerRun(20, func() {
				if err := p.Int8(src, dst); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%v Go allocations per frame, want 0", allocs)
			}
			if m, _ := openMats(); counting && m != m0 {
				t.Errorf("open Mats went from %d to %d over 20 frames", m0, m)
			}
		})
	}
}

func TestGeometryPlacesTheFrameInTheContentArea(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     PreprocessConfig
		resized image.Point
		crop    image.Rectangle
		place   image.Rectangle
		content image.Rectangle
	}{
		{"crop into 28x28 of a 32x32 input", PreprocessConfig{Width: 32, Height: 32, Content: image.Pt(28, 28)},
			image.Pt(37, 28), image.Rect(4, 0, 32, 28), image.Rect(2, 2, 30, 30), image.Rect(2, 2, 30, 30)},
		{"stretch into an odd margin", PreprocessConfig{Width: 32, Height: 30, Fit: FitStretch, Content: image.Pt(27, 25)},
			image.Pt(27, 25), image.Rect(0, 0, 27, 25), image.Rect(2, 2, 29, 27), image.Rect(2, 2, 29, 27)},
		{"letterbox inside the content area", PreprocessConfig{Width: 32, Height: 32, Fit: FitLetterbox, Content: image.Pt(28, 28)},
			image.Pt(28, 21), image.Rect(0, 0, 28, 21), image.Rect(2, 5, 30, 26), image.Rect(2, 2, 30, 30)},
		{"content as large as the input is the whole input", PreprocessConfig{Width: 32, Height: 32, Content: image.Pt(32, 32)},
			image.Pt(43, 32), image.Rect(5, 0, 37, 32), image.Rect(0, 0, 32, 32), image.Rect(0, 0, 32, 32)},
		{"no content size is the whole input", PreprocessConfig{Width: 32, Height: 32},
			image.Pt(43, 32), image.Rect(5, 0, 37, 32), image.Rect(0, 0, 32, 32), image.Rect(0, 0, 32, 32)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := newPre(t, tc.cfg).Geometry(640, 480)
			if err != nil {
				t.Fatal(err)
			}
			if g.Resized != tc.resized || g.Crop != tc.crop || g.Place != tc.place || g.Content != tc.content {
				t.Errorf("got resized %v crop %v place %v content %v\nwant resized %v crop %v place %v content %v",
					g.Resized, g.Crop, g.Place, g.Content, tc.resized, tc.crop, tc.place, tc.content)
			}
		})
	}
}

// TestContentBorderIsBlackInEveryOutput fills the content area from a solid
// frame and checks every pixel of every output kind: the border outside the
// content area is pixel 0 exactly as training's pad_to made it (0 as bytes,
// (0-mean)/std as floats, that quantized as int8), the content area holds
// the frame's colour, and letterbox bars inside the content area the Pad
// level.
func TestContentBorderIsBlackInEveryOutput(t *testing.T) {
	const W, H = 32, 30
	content := image.Pt(27, 25) // odd margins: 2 left, 3 right, 2 top, 3 bottom
	inside := image.Rect(2, 2, 29, 27)
	mean := [3]float32{0.485, 0.456, 0.406}
	std := [3]float32{0.229, 0.224, 0.225}
	const scale, zp = 0.0187, -14
	frame := gocv.NewMatWithSize(48, 64, gocv.MatTypeCV8UC3) // 4:3, so letterbox has bars
	defer frame.Close()
	frame.SetTo(gocv.NewScalar(30, 60, 90, 0)) // BGR
	rgb := []uint8{90, 60, 30}
	grey := []uint8{uint8(math.Round(0.299*90 + 0.587*60 + 0.114*30))}
	for _, tc := range []struct {
		fit  Fit
		grey bool
		bars image.Rectangle // letterbox: the picture inside the content area
	}{
		{fit: FitCrop}, {fit: FitStretch}, {fit: FitLetterbox, bars: image.Rect(2, 4, 29, 24)}, {fit: FitCrop, grey: true},
	} {
		name := tc.fit.String()
		if tc.grey {
			name += " grey"
		}
		t.Run(name, func(t *testing.T) {
			p := newPre(t, PreprocessConfig{Width: W, Height: H, Fit: tc.fit, Grey: tc.grey, Content: content, Pad: 7,
				Mean: mean, Std: std, Scale: scale, ZeroPoint: zp})
			if g, _ := p.Geometry(64, 48); g.Content != inside || (tc.fit == FitLetterbox && g.Place != tc.bars) {
				t.Fatalf("geometry content %v place %v, want content %v", g.Content, g.Place, inside)
			}
			u8 := make([]uint8, p.Len())
			f32 := make([]float32, p.Len())
			i8 := make([]int8, p.Len())
			for _, err := range []error{p.Uint8(frame, u8), p.Float32(frame, f32), p.Int8(frame, i8)} {
				if err != nil {
					t.Fatal(err)
				}
			}
			c := p.Channels()
			colour := rgb
			if tc.grey {
				colour = grey
			}
			bad := 0
			for y := 0; y < H; y++ {
				for x := 0; x < W; x++ {
					var want []uint8
					pt := image.Pt(x, y)
					switch {
					case !pt.In(inside):
						want = make([]uint8, c) // black
					case tc.fit == FitLetterbox && !pt.In(tc.bars):
						want = []uint8{7, 7, 7}[:c]
					default:
						want = colour
					}
					for k := range c {
						i := (y*W+x)*c + k
						v := (float32(want[k])/255 - mean[k]) / std[k]
						q := int8(max(-128, min(127, math.Round(float64(v)/float64(float32(scale)))+zp)))
						if u8[i] != want[k] || f32[i] != v || i8[i] != q {
							if bad++; bad < 5 {
								t.Errorf("pixel (%d,%d) channel %d: uint8 %d float32 %v int8 %d, want %d %v %d",
									x, y, k, u8[i], f32[i], i8[i], want[k], v, q)
							}
						}
					}
				}
			}
			// The border values spelled out for one corner pixel.
			if !tc.grey {
				for k := range 3 {
					if want := -mean[k] / std[k]; f32[k] != want {
						t.Errorf("float32 border channel %d = %v, want -mean/std = %v", k, f32[k], want)
					}
				}
			}
		})
	}
}

func TestContentSizeMustFitTheInput(t *testing.T) {
	for _, c := range []image.Point{{33, 10}, {10, 31}, {0, 5}, {-1, -1}} {
		if _, err := NewPreprocessor(PreprocessConfig{Width: 32, Height: 30, Content: c}); err == nil || !strings.Contains(err.Error(), "content size") {
			t.Errorf("content %v in a 32x30 input: error %v, want one about the content size", c, err)
		}
	}
}
