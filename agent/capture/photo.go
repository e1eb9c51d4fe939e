package capture

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	_ "image/jpeg" // photos
	_ "image/png"
	"math"

	"golang.org/x/image/draw"

	"github.com/shortcut-edge/shortcut/agent/classify"
	"github.com/shortcut-edge/shortcut/agent/config"
)

// maxPhotoPixels bounds a photo's claimed size before any pixel memory is
// taken (a small PNG can claim a huge size); 48 MP is the largest sensor a
// phone ships.
const maxPhotoPixels = 50_000_000

// DecodePhoto decodes a JPEG or PNG photo, refusing anything else and
// anything that claims more than maxPhotoPixels before decoding it. The
// orientation is the JPEG's EXIF orientation (1 to 8; 1 when it has none):
// a phone stores a portrait photo as a landscape picture and this tag.
func DecodePhoto(b []byte) (image.Image, int, error) {
	img, err := decodePicture(b)
	if err != nil {
		return nil, 0, err
	}
	return img, exifOrientation(b), nil
}

func decodePicture(b []byte) (image.Image, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("not a JPEG or PNG picture (%v)", err)
	}
	if format != "jpeg" && format != "png" {
		return nil, fmt.Errorf("a %s picture; send JPEG or PNG", format)
	}
	if cfg.Width < 1 || cfg.Height < 1 || int64(cfg.Width)*int64(cfg.Height) > maxPhotoPixels {
		return nil, fmt.Errorf("%dx%d pixels; want at most %d pixels", cfg.Width, cfg.Height, maxPhotoPixels)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("the %s picture does not decode: %v", format, err)
	}
	return img, nil
}

// PhotoInput turns a photo into the model's input as the camera's
// preprocessing turns a frame: its fit (crop, letterbox, stretch) and the
// model's normalization, without its region of interest (which is in the
// camera's pixels, not the photo's). A photo much larger than the input is
// first scaled down with an averaging filter, as the cameras' OpenCV
// preprocessing does (INTER_AREA), so that the bilinear step samples no
// isolated pixels of a 12-megapixel photo.
func PhotoInput(dst []float32, img image.Image, orientation int, pc config.PreprocessConfig, info classify.ModelInfo) error {
	pc.ROI = nil
	cw, ch := info.Width, info.Height
	if info.ContentHeight > 0 && info.ContentWidth > 0 && info.ContentHeight <= ch && info.ContentWidth <= cw {
		cw, ch = info.ContentWidth, info.ContentHeight
	}
	b := img.Bounds()
	if orientation >= 5 { // shown turned by a quarter: fit the stored picture to the input turned
		cw, ch = ch, cw
	}
	sx, sy := float64(cw)/float64(b.Dx()), float64(ch)/float64(b.Dy())
	switch pc.Fit {
	case config.FitStretch:
	case config.FitLetterbox:
		sx = min(sx, sy)
		sy = sx
	default:
		sx = max(sx, sy)
		sy = sx
	}
	if sx < 1 || sy < 1 {
		tw := max(1, int(math.Round(float64(b.Dx())*min(sx, 1))))
		th := max(1, int(math.Round(float64(b.Dy())*min(sy, 1))))
		small := image.NewRGBA(image.Rect(0, 0, tw, th))
		draw.CatmullRom.Scale(small, small.Bounds(), img, b, draw.Src, nil)
		img = small
	}
	return Apply(pc, dst, orient(img, orientation), info)
}

// exifOrientation reads the orientation tag (0x0112) of a JPEG's EXIF
// block; 1 (as stored) when there is none or it cannot be read.
func exifOrientation(b []byte) int {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return 1
	}
	for i := 2; i+4 <= len(b) && b[i] == 0xFF; {
		marker, n := b[i+1], int(b[i+2])<<8|int(b[i+3])
		if marker == 0xDA || n < 2 || i+2+n > len(b) { // the picture's data starts: no more headers
			return 1
		}
		seg := b[i+4 : i+2+n]
		if marker == 0xE1 && len(seg) >= 14 && string(seg[:6]) == "Exif\x00\x00" {
			return tiffOrientation(seg[6:])
		}
		i += 2 + n
	}
	return 1
}

func tiffOrientation(t []byte) int {
	var u16 func([]byte) uint16
	var u32 func([]byte) uint32
	switch string(t[:2]) {
	case "II":
		u16, u32 = binary.LittleEndian.Uint16, binary.LittleEndian.Uint32
	case "MM":
		u16, u32 = binary.BigEndian.Uint16, binary.BigEndian.Uint32
	default:
		return 1
	}
	ifd := int64(u32(t[4:8]))
	if ifd < 8 || ifd+2 > int64(len(t)) {
		return 1
	}
	count := int64(u16(t[ifd:]))
	for k := int64(0); k < count; k++ {
		e := ifd + 2 + 12*k
		if e+12 > int64(len(t)) {
			return 1
		}
		if u16(t[e:]) == 0x0112 && u16(t[e+2:]) == 3 { // orientation, a SHORT
			if o := int(u16(t[e+8:])); o >= 1 && o <= 8 {
				return o
			}
			return 1
		}
	}
	return 1
}

// orient turns a picture stored with an EXIF orientation the way it is
// meant to be seen (2 to 8; 1 is as stored).
func orient(img image.Image, o int) image.Image {
	if o <= 1 || o > 8 {
		return img
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	out := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := range dh {
		for x := range dw {
			var sx, sy int
			switch o {
			case 2: // mirrored
				sx, sy = w-1-x, y
			case 3: // upside down
				sx, sy = w-1-x, h-1-y
			case 4: // mirrored upside down
				sx, sy = x, h-1-y
			case 5: // mirrored, turned a quarter left
				sx, sy = y, x
			case 6: // turned a quarter right to be seen
				sx, sy = y, h-1-x
			case 7:
				sx, sy = w-1-y, h-1-x
			case 8: // turned a quarter left to be seen
				sx, sy = w-1-y, x
			}
			out.Set(x, y, img.At(b.Min.X+sx, b.Min.Y+sy))
		}
	}
	return out
}
