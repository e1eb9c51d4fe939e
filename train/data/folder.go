package data

import (
	"fmt"
	"image"
	_ "image/jpeg" // decoders for image.Decode
	_ "image/png"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/image/draw"
)

// FolderOptions control how a folder tree is read.
type FolderOptions struct {
	// Height and Width resize every image (bilinear); 0 takes the first image's size and then
	// requires all images to match it.
	Height, Width int
	// Grey converts to one channel (luma); otherwise images are RGB.
	Grey bool
}

var imageExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true}

// LoadFolder reads root/<class>/<image>.{jpg,jpeg,png}: class names are the subfolder names in
// sorted order. An empty class folder, an unreadable or corrupt image, or (without resizing) an
// image of another size is an error naming the file.
func LoadFolder(root string, opt FolderOptions) (*Dataset, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("image folder: %w", err)
	}
	var classes []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			classes = append(classes, e.Name())
		}
	}
	if len(classes) < 2 {
		return nil, fmt.Errorf("image folder %s: found %d class subfolders, need at least 2 (layout: %s/<class>/<image>.jpg)",
			root, len(classes), root)
	}
	sort.Strings(classes)
	ch := 3
	if opt.Grey {
		ch = 1
	}
	d := &Dataset{Name: filepath.Base(root), Height: opt.Height, Width: opt.Width, Channels: ch, Classes: classes}
	for ci, class := range classes {
		dir := filepath.Join(root, class)
		files, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("image folder: %w", err)
		}
		var names []string
		for _, f := range files {
			if !f.IsDir() && imageExts[strings.ToLower(filepath.Ext(f.Name()))] {
				names = append(names, f.Name())
			}
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("image folder: class folder %s holds no .jpg/.jpeg/.png images; remove it or add images", dir)
		}
		sort.Strings(names)
		for _, name := range names {
			p := filepath.Join(dir, name)
			img, err := decodeFile(p)
			if err != nil {
				return nil, err
			}
			if d.Height == 0 || d.Width == 0 {
				b := img.Bounds()
				d.Height, d.Width = b.Dy(), b.Dx()
			}
			px, err := toBytes(img, d.Height, d.Width, opt.Grey, opt.Height != 0 && opt.Width != 0)
			if err != nil {
				return nil, fmt.Errorf("image folder %s: %w", p, err)
			}
			d.Images = append(d.Images, px...)
			d.Labels = append(d.Labels, int32(ci))
		}
	}
	return d, d.Validate()
}

func decodeFile(p string) (image.Image, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("image folder: %w", err)
	}
	defer f.Close()
	img, format, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("image folder: cannot decode %s (corrupt or not JPEG/PNG): %v", p, err)
	}
	_ = format
	return img, nil
}

// toBytes resizes (when allowed) and converts img to HWC bytes.
func toBytes(img image.Image, h, w int, grey, resize bool) ([]uint8, error) {
	b := img.Bounds()
	if b.Dx() != w || b.Dy() != h {
		if !resize {
			return nil, fmt.Errorf("image is %dx%d but the first image was %dx%d; set a resize size", b.Dx(), b.Dy(), w, h)
		}
		dst := image.NewRGBA(image.Rect(0, 0, w, h))
		draw.BiLinear.Scale(dst, dst.Bounds(), img, b, draw.Src, nil)
		img, b = dst, dst.Bounds()
	}
	ch := 3
	if grey {
		ch = 1
	}
	out := make([]uint8, 0, h*w*ch)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if grey {
				// ITU-R BT.601 luma, as image/color's Gray model.
				l := (19595*r + 38470*g + 7471*bl + 1<<15) >> 24
				out = append(out, uint8(l))
			} else {
				out = append(out, uint8(r>>8), uint8(g>>8), uint8(bl>>8))
			}
		}
	}
	return out, nil
}
