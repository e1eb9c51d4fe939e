package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// FashionMNISTClasses are the Fashion-MNIST label names.
var FashionMNISTClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
	"Sneaker", "Bag", "Ankle boot"}

// MNISTClasses are the MNIST label names.
var MNISTClasses = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

// idx magic numbers: 0x00000801 (unsigned bytes, rank 1) and 0x00000803 (unsigned bytes, rank 3).
const (
	idxLabelsMagic = 0x00000801
	idxImagesMagic = 0x00000803
)

// readMaybeGzip reads a whole file, gunzipping it when it starts with the gzip magic.
func readMaybeGzip(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(raw) >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: gzip: %w", path, err)
		}
		out, err := io.ReadAll(bufio.NewReader(zr))
		if err != nil {
			return nil, fmt.Errorf("%s: gzip stream truncated or corrupt: %w", path, err)
		}
		return out, nil
	}
	return raw, nil
}

// ReadIDXImages reads an IDX3 unsigned-byte image file (optionally gzipped): returns the count,
// rows, columns and the pixels.
func ReadIDXImages(path string) (n, rows, cols int, pixels []uint8, err error) {
	b, err := readMaybeGzip(path)
	if err != nil {
		return 0, 0, 0, nil, fmt.Errorf("idx images: %w", err)
	}
	if len(b) < 16 {
		return 0, 0, 0, nil, fmt.Errorf("idx images %s: %d bytes, shorter than the 16-byte header", path, len(b))
	}
	if m := binary.BigEndian.Uint32(b); m != idxImagesMagic {
		return 0, 0, 0, nil, fmt.Errorf("idx images %s: bad magic 0x%08x, want 0x%08x (unsigned bytes, rank 3)", path, m, idxImagesMagic)
	}
	n = int(binary.BigEndian.Uint32(b[4:]))
	rows = int(binary.BigEndian.Uint32(b[8:]))
	cols = int(binary.BigEndian.Uint32(b[12:]))
	if rows < 1 || cols < 1 || rows > 1<<14 || cols > 1<<14 {
		return 0, 0, 0, nil, fmt.Errorf("idx images %s: implausible image size %dx%d", path, rows, cols)
	}
	want := 16 + n*rows*cols
	if len(b) < want {
		return 0, 0, 0, nil, fmt.Errorf("idx images %s: truncated: header says %d images of %dx%d (%d bytes), file has %d",
			path, n, rows, cols, want, len(b))
	}
	if len(b) > want {
		return 0, 0, 0, nil, fmt.Errorf("idx images %s: %d trailing bytes after %d images of %dx%d", path, len(b)-want, n, rows, cols)
	}
	return n, rows, cols, b[16:], nil
}

// ReadIDXLabels reads an IDX1 unsigned-byte label file (optionally gzipped).
func ReadIDXLabels(path string) ([]int32, error) {
	b, err := readMaybeGzip(path)
	if err != nil {
		return nil, fmt.Errorf("idx labels: %w", err)
	}
	if len(b) < 8 {
		return nil, fmt.Errorf("idx labels %s: %d bytes, shorter than the 8-byte header", path, len(b))
	}
	if m := binary.BigEndian.Uint32(b); m != idxLabelsMagic {
		return nil, fmt.Errorf("idx labels %s: bad magic 0x%08x, want 0x%08x (unsigned bytes, rank 1)", path, m, idxLabelsMagic)
	}
	n := int(binary.BigEndian.Uint32(b[4:]))
	if len(b) != 8+n {
		return nil, fmt.Errorf("idx labels %s: header says %d labels, file holds %d", path, n, len(b)-8)
	}
	labels := make([]int32, n)
	for i, v := range b[8:] {
		labels[i] = int32(v)
	}
	return labels, nil
}

// LoadIDX reads an image file and a label file into a one-channel Dataset.
func LoadIDX(imagesPath, labelsPath string, classes []string) (*Dataset, error) {
	n, rows, cols, pixels, err := ReadIDXImages(imagesPath)
	if err != nil {
		return nil, err
	}
	labels, err := ReadIDXLabels(labelsPath)
	if err != nil {
		return nil, err
	}
	if len(labels) != n {
		return nil, fmt.Errorf("idx: %s has %d images but %s has %d labels", imagesPath, n, labelsPath, len(labels))
	}
	for i, l := range labels {
		if int(l) >= len(classes) {
			return nil, fmt.Errorf("idx labels %s: label %d of image %d outside the %d classes", labelsPath, l, i, len(classes))
		}
	}
	d := &Dataset{Name: filepath.Base(imagesPath), Height: rows, Width: cols, Channels: 1, Images: pixels,
		Labels: labels, Classes: classes}
	return d, d.Validate()
}

// LoadIDXDir finds split's files in dir under their usual names ("train-images-idx3-ubyte" or
// "t10k-images-idx3-ubyte", gzipped or not) and loads them.
func LoadIDXDir(dir, split string, classes []string) (*Dataset, error) {
	prefix := "train"
	if split == "test" {
		prefix = "t10k"
	}
	find := func(kind string) (string, error) {
		base := filepath.Join(dir, fmt.Sprintf("%s-%s-ubyte", prefix, kind))
		for _, p := range []string{base + ".gz", base} {
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
		return "", fmt.Errorf("idx: neither %s.gz nor %s exists (Fashion-MNIST: apt-get install dataset-fashion-mnist)", base, base)
	}
	img, err := find("images-idx3")
	if err != nil {
		return nil, err
	}
	lab, err := find("labels-idx1")
	if err != nil {
		return nil, err
	}
	d, err := LoadIDX(img, lab, classes)
	if err != nil {
		return nil, err
	}
	d.Name = filepath.Base(dir) + "/" + split
	return d, nil
}

// WriteIDX writes images (n x rows x cols bytes) and labels as IDX files, gzipped when the
// path ends in .gz. Tests use it to make files in the real format.
func WriteIDX(imagesPath, labelsPath string, rows, cols int, pixels []uint8, labels []int32) error {
	hdr := make([]byte, 16)
	binary.BigEndian.PutUint32(hdr, idxImagesMagic)
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(labels)))
	binary.BigEndian.PutUint32(hdr[8:], uint32(rows))
	binary.BigEndian.PutUint32(hdr[12:], uint32(cols))
	if err := writeMaybeGzip(imagesPath, append(hdr, pixels...)); err != nil {
		return err
	}
	lh := make([]byte, 8, 8+len(labels))
	binary.BigEndian.PutUint32(lh, idxLabelsMagic)
	binary.BigEndian.PutUint32(lh[4:], uint32(len(labels)))
	for _, l := range labels {
		lh = append(lh, byte(l))
	}
	return writeMaybeGzip(labelsPath, lh)
}

func writeMaybeGzip(path string, b []byte) error {
	if filepath.Ext(path) != ".gz" {
		return os.WriteFile(path, b, 0o644)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
