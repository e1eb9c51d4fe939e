package capture

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"

	"github.com/shortcut-edge/shortcut/agent/classify"
	"github.com/shortcut-edge/shortcut/agent/config"
)

// Preprocess resizes img to the model's input by stretching it (bilinear,
// plain Go), scales pixels to 0..1 and normalizes them with the model's
// mean and std, writing HWC float32 values into dst (len H*W*C). Channels 1
// is luminance, 3 is RGB.
func Preprocess(dst []float32, img image.Image, info classify.ModelInfo) error {
	return Apply(config.PreprocessConfig{Fit: config.FitStretch}, dst, img, info)
}

// Norm is the per-channel mean and std to use with a model: the
// configuration's when given, else the model's metadata, else 0 and 1.
func Norm(p config.PreprocessConfig, info classify.ModelInfo) (mean, std [3]float32) {
	pick := func(cfg []float64, meta []float32, k int, def float32) float32 {
		switch {
		case len(cfg) > 0:
			return float32(cfg[min(k, len(cfg)-1)])
		case len(meta) > 0:
			return meta[min(k, len(meta)-1)]
		}
		return def
	}
	for k := range 3 {
		mean[k] = pick(p.Mean, info.Mean, k, 0)
		std[k] = pick(p.Std, info.Std, k, 1)
	}
	return mean, std
}

// Apply brings img to the model's input as the configuration says (region
// of interest, then crop, letterbox or stretch, bilinear, in plain Go) and
// writes normalized HWC float32 values into dst (len H*W*C). For a model
// trained on smaller images padded to its input (info.ContentHeight and
// ContentWidth set) the picture is fitted into that area, centred, and the
// rest of the input is black, as the padding was in training. It is the
// pure-Go twin of camera.Preprocessor, for sources that hand over images.
func Apply(p config.PreprocessConfig, dst []float32, img image.Image, info classify.ModelInfo) error {
	h, w, c := info.Height, info.Width, info.Channels
	if len(dst) != h*w*c {
		return fmt.Errorf("preprocess: buffer holds %d values, model input %dx%dx%d needs %d", len(dst), h, w, c, h*w*c)
	}
	if c != 1 && c != 3 {
		return fmt.Errorf("preprocess: model wants %d channels; images give 1 (grey) or 3 (RGB)", c)
	}
	b := img.Bounds()
	if b.Empty() {
		return fmt.Errorf("preprocess: empty image %v", b)
	}
	roi := b
	if len(p.ROI) == 4 {
		roi = image.Rect(b.Min.X+p.ROI[0], b.Min.Y+p.ROI[1], b.Min.X+p.ROI[2], b.Min.Y+p.ROI[3]).Intersect(b)
		if roi.Empty() {
			return fmt.Errorf("preprocess: region of interest %v lies outside the %dx%d frame", p.ROI, b.Dx(), b.Dy())
		}
	}
	// The picture goes into the content area: cw x ch at (ox, oy), the
	// whole input unless the model says otherwise.
	cw, ch, ox, oy := w, h, 0, 0
	if info.ContentHeight > 0 && info.ContentWidth > 0 && info.ContentHeight <= h && info.ContentWidth <= w {
		cw, ch = info.ContentWidth, info.ContentHeight
		ox, oy = (w-cw)/2, (h-ch)/2
	}
	// The ROI is scaled to rw x rh; the part [cx, cx+(px1-px0)) x [cy, ...)
	// of that lands at (px0, py0) in the input; the rest of the input is
	// padding.
	rw, rh := float64(cw), float64(ch)
	var cx, cy float64
	px0, py0, px1, py1 := ox, oy, ox+cw, oy+ch
	switch p.Fit {
	case config.FitStretch:
	case config.FitLetterbox:
		s := min(float64(cw)/float64(roi.Dx()), float64(ch)/float64(roi.Dy()))
		iw := max(1, min(cw, int(math.Round(float64(roi.Dx())*s))))
		ih := max(1, min(ch, int(math.Round(float64(roi.Dy())*s))))
		rw, rh = float64(iw), float64(ih)
		px0, py0 = ox+(cw-iw)/2, oy+(ch-ih)/2
		px1, py1 = px0+iw, py0+ih
	default: // crop
		s := max(float64(cw)/float64(roi.Dx()), float64(ch)/float64(roi.Dy()))
		iw := max(cw, int(math.Round(float64(roi.Dx())*s)))
		ih := max(ch, int(math.Round(float64(roi.Dy())*s)))
		rw, rh = float64(iw), float64(ih)
		cx, cy = float64((iw-cw)/2), float64((ih-ch)/2)
	}
	sx := float64(roi.Dx()) / rw
	sy := float64(roi.Dy()) / rh
	mean, std := Norm(p, info)
	var inv [3]float32
	for k := range inv {
		inv[k] = 1 / std[k]
	}
	at := func(x, y int) [3]float32 {
		r, g, bl, _ := img.At(roi.Min.X+x, roi.Min.Y+y).RGBA()
		return [3]float32{float32(r) / 65535, float32(g) / 65535, float32(bl) / 65535}
	}
	i := 0
	for y := 0; y < h; y++ {
		fy := max((float64(y-py0)+cy+0.5)*sy-0.5, 0)
		y0 := min(int(fy), roi.Dy()-1)
		y1 := min(y0+1, roi.Dy()-1)
		wy := float32(fy - float64(y0))
		for x := 0; x < w; x++ {
			var px [3]float32 // padding is black
			if x >= px0 && x < px1 && y >= py0 && y < py1 {
				fx := max((float64(x-px0)+cx+0.5)*sx-0.5, 0)
				x0 := min(int(fx), roi.Dx()-1)
				x1 := min(x0+1, roi.Dx()-1)
				wx := float32(fx - float64(x0))
				p00, p01, p10, p11 := at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1)
				for k := range px {
					top := p00[k]*(1-wx) + p01[k]*wx
					bot := p10[k]*(1-wx) + p11[k]*wx
					px[k] = top*(1-wy) + bot*wy
				}
			}
			if c == 1 {
				lum := 0.299*px[0] + 0.587*px[1] + 0.114*px[2]
				dst[i] = (lum - mean[0]) * inv[0]
				i++
				continue
			}
			for k := 0; k < 3; k++ {
				dst[i] = (px[k] - mean[k]) * inv[k]
				i++
			}
		}
	}
	return nil
}

// PixelsImage turns a normalized HWC tensor back into a picture, for
// /snapshot.jpg when a source hands over tensors only, and for thumbnails.
func PixelsImage(px []float32, info classify.ModelInfo, pc config.PreprocessConfig) *image.RGBA {
	h, w, c := info.Height, info.Width, info.Channels
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	if len(px) != h*w*c || (c != 1 && c != 3) {
		return img
	}
	mean, std := Norm(pc, info)
	val := func(i, k int) uint8 {
		v := px[i]*std[k] + mean[k]
		return uint8(max(0, min(255, v*255+0.5)))
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := (y*w + x) * c
			if c == 1 {
				g := val(i, 0)
				img.SetRGBA(x, y, color.RGBA{g, g, g, 255})
			} else {
				img.SetRGBA(x, y, color.RGBA{val(i, 0), val(i+1, 1), val(i+2, 2), 255})
			}
		}
	}
	return img
}

// Thumbnail is a small JPEG of a model input (what the model saw), at most
// size pixels on its longer side: kept with each learned example so that a
// user can see what was taught.
func Thumbnail(px []float32, info classify.ModelInfo, pc config.PreprocessConfig, size int) ([]byte, error) {
	img := PixelsImage(px, info, pc)
	if b := img.Bounds(); b.Dx() > size || b.Dy() > size {
		img = shrink(img, size)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
		return nil, fmt.Errorf("thumbnail: %w", err)
	}
	return buf.Bytes(), nil
}

// shrink scales img down so that its longer side is size, averaging the
// source pixels that fall into each output pixel.
func shrink(img *image.RGBA, size int) *image.RGBA {
	b := img.Bounds()
	s := float64(size) / float64(max(b.Dx(), b.Dy()))
	w, h := max(1, int(float64(b.Dx())*s)), max(1, int(float64(b.Dy())*s))
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		sy0, sy1 := y*b.Dy()/h, max((y+1)*b.Dy()/h, y*b.Dy()/h+1)
		for x := 0; x < w; x++ {
			sx0, sx1 := x*b.Dx()/w, max((x+1)*b.Dx()/w, x*b.Dx()/w+1)
			var sum [3]int
			n := 0
			for yy := sy0; yy < sy1; yy++ {
				for xx := sx0; xx < sx1; xx++ {
					o := img.PixOffset(b.Min.X+xx, b.Min.Y+yy)
					sum[0] += int(img.Pix[o])
					sum[1] += int(img.Pix[o+1])
					sum[2] += int(img.Pix[o+2])
					n++
				}
			}
			out.SetRGBA(x, y, color.RGBA{uint8(sum[0] / n), uint8(sum[1] / n), uint8(sum[2] / n), 255})
		}
	}
	return out
}
