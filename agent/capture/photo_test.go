package capture

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"testing"
)

// withOrientation returns a JPEG of img with an EXIF block whose
// orientation tag is o, in the byte order order.
func withOrientation(t *testing.T, img image.Image, o uint16, order binary.AppendByteOrder) []byte {
	t.Helper()
	var j bytes.Buffer
	if err := jpeg.Encode(&j, img, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	tiff := []byte("II")
	if order == binary.AppendByteOrder(binary.BigEndian) {
		tiff = []byte("MM")
	}
	tiff = order.AppendUint16(tiff, 42)
	tiff = order.AppendUint32(tiff, 8)
	tiff = order.AppendUint16(tiff, 1)      // one entry
	tiff = order.AppendUint16(tiff, 0x0112) // orientation
	tiff = order.AppendUint16(tiff, 3)      // SHORT
	tiff = order.AppendUint32(tiff, 1)
	tiff = order.AppendUint16(tiff, o)
	tiff = append(tiff, 0, 0, 0, 0, 0, 0) // value padding, no next IFD
	seg := append([]byte("Exif\x00\x00"), tiff...)
	app1 := append([]byte{0xFF, 0xE1}, binary.BigEndian.AppendUint16(nil, uint16(len(seg)+2))...)
	b := j.Bytes()
	return append(append(append([]byte{}, b[:2]...), append(app1, seg...)...), b[2:]...)
}

// TestAPhonePhotoIsTurnedAsItsEXIFOrientationSays: a phone stores a
// portrait photo as a landscape picture with an orientation tag; the
// example must be made of the picture as the person saw it.
func TestAPhonePhotoIsTurnedAsItsEXIFOrientationSays(t *testing.T) {
	// 64 x 32, the left half white: seen turned a quarter right
	// (orientation 6) it is 32 x 64 with the top half white.
	img := image.NewGray(image.Rect(0, 0, 64, 32))
	for y := range 32 {
		for x := range 32 {
			img.SetGray(x, y, color.Gray{255})
		}
	}
	for _, order := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
		b := withOrientation(t, img, 6, order)
		got, o, err := DecodePhoto(b)
		if err != nil || o != 6 {
			t.Fatalf("%v: DecodePhoto: orientation %d, %v; want 6", order, o, err)
		}
		seen := orient(got, o)
		if sz := seen.Bounds().Size(); sz != (image.Point{32, 64}) {
			t.Fatalf("%v: turned picture is %v, want 32x64", order, sz)
		}
		top, _, _, _ := seen.At(16, 8).RGBA()
		bottom, _, _, _ := seen.At(16, 56).RGBA()
		if top < 0xF000 || bottom > 0x1000 {
			t.Errorf("%v: turned picture: top %#x, bottom %#x; want the top white and the bottom black", order, top, bottom)
		}
	}
	if _, o, _ := DecodePhoto(withOrientation(t, img, 9, binary.LittleEndian)); o != 1 {
		t.Errorf("orientation 9 (no such value) read as %d, want 1", o)
	}
	for name, b := range map[string][]byte{"no EXIF": mustJPEG(t, img), "cut short": withOrientation(t, img, 6, binary.LittleEndian)[:30]} {
		if o := exifOrientation(b); o != 1 {
			t.Errorf("%s: orientation %d, want 1", name, o)
		}
	}
	// Every orientation keeps the picture's pixels, only moved.
	for o := 1; o <= 8; o++ {
		if sz := orient(img, o).Bounds().Size(); (o >= 5) != (sz == image.Point{32, 64}) {
			t.Errorf("orientation %d: size %v", o, sz)
		}
	}
}

func mustJPEG(t *testing.T, img image.Image) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
