package agent

import (
	"fmt"
	"image"
	"image/color"
)

// Preprocess resizes img to the model's input (bilinear, plain Go), scales
// pixels to 0..1 and normalizes them with the model's mean and std, writing
// HWC float32 values into dst (len H*W*C). Channels 1 is luminance, 3 is
// RGB.
func Preprocess(dst []float32, img image.Image, info ModelInfo) error {
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
	sx := float64(b.Dx()) / float64(w)
	sy := float64(b.Dy()) / float64(h)
	var mean, inv [3]float32
	for k := 0; k < c; k++ {
		mean[k], inv[k] = 0, 1
		if n := len(info.Mean); n > 0 {
			mean[k] = info.Mean[min(k, n-1)]
		}
		if n := len(info.Std); n > 0 {
			inv[k] = 1 / info.Std[min(k, n-1)]
		}
	}
	at := func(x, y int) [3]float32 {
		r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
		return [3]float32{float32(r) / 65535, float32(g) / 65535, float32(bl) / 65535}
	}
	i := 0
	for y := 0; y < h; y++ {
		fy := max((float64(y)+0.5)*sy-0.5, 0)
		y0 := min(int(fy), b.Dy()-1)
		y1 := min(y0+1, b.Dy()-1)
		wy := float32(fy - float64(y0))
		for x := 0; x < w; x++ {
			fx := max((float64(x)+0.5)*sx-0.5, 0)
			x0 := min(int(fx), b.Dx()-1)
			x1 := min(x0+1, b.Dx()-1)
			wx := float32(fx - float64(x0))
			p00, p01, p10, p11 := at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1)
			var px [3]float32
			for k := range px {
				top := p00[k]*(1-wx) + p01[k]*wx
				bot := p10[k]*(1-wx) + p11[k]*wx
				px[k] = top*(1-wy) + bot*wy
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

// pixelsImage turns a normalized HWC tensor back into a picture, for
// /snapshot.jpg when a source hands over tensors only.
func pixelsImage(px []float32, info ModelInfo) image.Image {
	h, w, c := info.Height, info.Width, info.Channels
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	if len(px) != h*w*c || (c != 1 && c != 3) {
		return img
	}
	val := func(i, k int) uint8 {
		v := px[i]
		if n := len(info.Std); n > 0 {
			v *= info.Std[min(k, n-1)]
		}
		if n := len(info.Mean); n > 0 {
			v += info.Mean[min(k, n-1)]
		}
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
