// Package data loads labelled image sets for training (MNIST/Fashion-MNIST IDX files, CIFAR-10/100
// binary batches, folder-per-class image trees), splits them, and streams augmented, normalized
// batches from worker goroutines.
//
// Images are kept as bytes (HWC, 0..255) in memory; batches are float32 NHWC.
package data

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
)

// Dataset is an in-memory labelled image set; every image has the same size.
type Dataset struct {
	Name                    string
	Height, Width, Channels int
	Images                  []uint8 // N*Height*Width*Channels bytes, each image HWC
	Labels                  []int32
	Classes                 []string // class names, indexed by label
}

// Len returns the number of images.
func (d *Dataset) Len() int { return len(d.Labels) }

// ImageSize returns the number of bytes of one image.
func (d *Dataset) ImageSize() int { return d.Height * d.Width * d.Channels }

// Image returns the bytes of image i.
func (d *Dataset) Image(i int) []uint8 {
	n := d.ImageSize()
	return d.Images[i*n : (i+1)*n]
}

// Validate checks that sizes and labels agree.
func (d *Dataset) Validate() error {
	if d.Height < 1 || d.Width < 1 || d.Channels < 1 {
		return fmt.Errorf("dataset %s: invalid image size %dx%dx%d", d.Name, d.Height, d.Width, d.Channels)
	}
	if len(d.Images) != d.Len()*d.ImageSize() {
		return fmt.Errorf("dataset %s: %d image bytes for %d labels of %dx%dx%d", d.Name, len(d.Images), d.Len(),
			d.Height, d.Width, d.Channels)
	}
	for i, l := range d.Labels {
		if l < 0 || int(l) >= len(d.Classes) {
			return fmt.Errorf("dataset %s: image %d has label %d outside the %d classes", d.Name, i, l, len(d.Classes))
		}
	}
	return nil
}

// Subset returns the images at the given indices (copied).
func (d *Dataset) Subset(name string, idx []int) *Dataset {
	n := d.ImageSize()
	s := &Dataset{Name: name, Height: d.Height, Width: d.Width, Channels: d.Channels, Classes: d.Classes,
		Images: make([]uint8, 0, len(idx)*n), Labels: make([]int32, 0, len(idx))}
	for _, i := range idx {
		s.Images = append(s.Images, d.Image(i)...)
		s.Labels = append(s.Labels, d.Labels[i])
	}
	return s
}

// Head returns the first n images (all if n <= 0 or n >= Len), as a view.
func (d *Dataset) Head(n int) *Dataset {
	if n <= 0 || n >= d.Len() {
		return d
	}
	c := *d
	c.Images = d.Images[:n*d.ImageSize()]
	c.Labels = d.Labels[:n]
	return &c
}

// Split shuffles the indices with seed and returns (train, val) with round(fraction*Len) images in
// val, stratified by class so every class keeps its share.
func (d *Dataset) Split(fraction float64, seed uint64) (train, val *Dataset, err error) {
	if fraction <= 0 || fraction >= 1 {
		return nil, nil, fmt.Errorf("dataset %s: validation fraction %g must be in (0, 1)", d.Name, fraction)
	}
	byClass := make([][]int, len(d.Classes))
	for i, l := range d.Labels {
		byClass[l] = append(byClass[l], i)
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	var tr, va []int
	for _, idx := range byClass {
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		k := int(float64(len(idx))*fraction + 0.5)
		va = append(va, idx[:k]...)
		tr = append(tr, idx[k:]...)
	}
	if len(va) == 0 || len(tr) == 0 {
		return nil, nil, fmt.Errorf("dataset %s: split of %d images at %g leaves an empty side", d.Name, d.Len(), fraction)
	}
	// Keep a class mix in file order inside each side (shuffling happens per epoch in Batches).
	rng.Shuffle(len(tr), func(i, j int) { tr[i], tr[j] = tr[j], tr[i] })
	rng.Shuffle(len(va), func(i, j int) { va[i], va[j] = va[j], va[i] })
	return d.Subset(d.Name+"/train", tr), d.Subset(d.Name+"/val", va), nil
}

// ClassCounts returns the number of images of each class.
func (d *Dataset) ClassCounts() []int {
	c := make([]int, len(d.Classes))
	for _, l := range d.Labels {
		c[l]++
	}
	return c
}

// Format names a supported on-disk layout.
type Format string

const (
	FormatFashionMNIST Format = "fashion-mnist"
	FormatMNIST        Format = "mnist"
	FormatCIFAR10      Format = "cifar10"
	FormatCIFAR100     Format = "cifar100"
	FormatFolder       Format = "folder"
)

// FashionMNISTDir is where Debian's dataset-fashion-mnist package installs the files.
const FashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// Source says where a dataset lives: "FORMAT:DIR", e.g. "fashion-mnist:/usr/share/datasets/fashion-mnist",
// "cifar10:/data/cifar-10-batches-bin", "folder:/data/flowers". A bare directory is read as a
// folder tree. "fashion-mnist" alone uses FashionMNISTDir.
type Source struct {
	Format Format
	Dir    string
	// Height, Width, Grey apply to folder trees (resize target, 1 channel); 0 keeps
	// the size of the first image.
	Height, Width int
	Grey          bool
}

// ParseSource reads "FORMAT:DIR" (see Source).
func ParseSource(s string) (Source, error) {
	f, dir, found := strings.Cut(s, ":")
	if !found {
		if Format(f) == FormatFashionMNIST {
			return Source{Format: FormatFashionMNIST, Dir: FashionMNISTDir}, nil
		}
		return Source{Format: FormatFolder, Dir: s}, nil
	}
	switch Format(f) {
	case FormatFashionMNIST, FormatMNIST, FormatCIFAR10, FormatCIFAR100, FormatFolder:
		return Source{Format: Format(f), Dir: dir}, nil
	}
	return Source{}, fmt.Errorf("data source %q: unknown format %q; use fashion-mnist, mnist, cifar10, cifar100 or folder", s, f)
}

// Load reads split "train" or "test" of the source. Folder trees have no fixed split: "train"
// reads DIR/train if it exists, else DIR; "test" reads DIR/test (or DIR/val).
func Load(src Source, split string) (*Dataset, error) {
	if split != "train" && split != "test" {
		return nil, fmt.Errorf("data: split %q, want train or test", split)
	}
	switch src.Format {
	case FormatFashionMNIST:
		return LoadIDXDir(src.Dir, split, FashionMNISTClasses)
	case FormatMNIST:
		return LoadIDXDir(src.Dir, split, MNISTClasses)
	case FormatCIFAR10:
		return LoadCIFAR10(src.Dir, split)
	case FormatCIFAR100:
		return LoadCIFAR100(src.Dir, split)
	case FormatFolder:
		dir := src.Dir
		if split == "train" {
			if isDir(filepath.Join(dir, "train")) {
				dir = filepath.Join(dir, "train")
			}
		} else {
			switch {
			case isDir(filepath.Join(dir, "test")):
				dir = filepath.Join(dir, "test")
			case isDir(filepath.Join(dir, "val")):
				dir = filepath.Join(dir, "val")
			default:
				return nil, fmt.Errorf("folder %s: no test/ or val/ subfolder to evaluate on", src.Dir)
			}
		}
		return LoadFolder(dir, FolderOptions{Height: src.Height, Width: src.Width, Grey: src.Grey})
	}
	return nil, fmt.Errorf("data: unknown format %q", src.Format)
}

// Downsample returns d with every image shrunk by an integer factor (box average), e.g.
// 28x28 Fashion-MNIST to 14x14 for quick CPU runs.
func (d *Dataset) Downsample(factor int) (*Dataset, error) {
	if factor < 1 || d.Height%factor != 0 || d.Width%factor != 0 {
		return nil, fmt.Errorf("dataset %s: cannot downsample %dx%d by %d", d.Name, d.Height, d.Width, factor)
	}
	h, w, c := d.Height/factor, d.Width/factor, d.Channels
	out := &Dataset{Name: fmt.Sprintf("%s/%dx", d.Name, factor), Height: h, Width: w, Channels: c, Classes: d.Classes,
		Labels: d.Labels, Images: make([]uint8, d.Len()*h*w*c)}
	area := factor * factor
	for i := range d.Len() {
		src, dst := d.Image(i), out.Image(i)
		for y := range h {
			for x := range w {
				for k := range c {
					sum := 0
					for dy := range factor {
						for dx := range factor {
							sum += int(src[((y*factor+dy)*d.Width+x*factor+dx)*c+k])
						}
					}
					dst[(y*w+x)*c+k] = uint8((sum + area/2) / area)
				}
			}
		}
	}
	return out, nil
}
