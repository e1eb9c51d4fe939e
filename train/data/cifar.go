package data

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// CIFAR10Classes are the CIFAR-10 label names (used when batches.meta.txt is absent).
var CIFAR10Classes = []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

const cifarPixels = 32 * 32 * 3

// LoadCIFAR10 reads the CIFAR-10 binary version (cifar-10-batches-bin): data_batch_1..5.bin for
// "train", test_batch.bin for "test". Each record is one label byte and 3072 bytes of red, green
// and blue 32x32 planes.
func LoadCIFAR10(dir, split string) (*Dataset, error) {
	files := []string{"test_batch.bin"}
	if split == "train" {
		files = []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"}
	}
	classes := readClassNames(filepath.Join(dir, "batches.meta.txt"), CIFAR10Classes)
	return loadCIFAR(dir, split, files, 1, 0, classes)
}

// LoadCIFAR100 reads the CIFAR-100 binary version (cifar-100-binary): train.bin or test.bin, each
// record a coarse label byte, a fine label byte and 3072 pixel bytes. Labels are the 100 fine classes.
func LoadCIFAR100(dir, split string) (*Dataset, error) {
	classes := readClassNames(filepath.Join(dir, "fine_label_names.txt"), nil)
	if classes == nil {
		classes = make([]string, 100)
		for i := range classes {
			classes[i] = fmt.Sprintf("class%02d", i)
		}
	}
	return loadCIFAR(dir, split, []string{split + ".bin"}, 2, 1, classes)
}

func loadCIFAR(dir, split string, files []string, labelBytes, labelAt int, classes []string) (*Dataset, error) {
	rec := labelBytes + cifarPixels
	d := &Dataset{Name: filepath.Base(dir) + "/" + split, Height: 32, Width: 32, Channels: 3, Classes: classes}
	for _, f := range files {
		p := filepath.Join(dir, f)
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("cifar: %w (expected the binary version's files %s in %s)", err, strings.Join(files, ", "), dir)
		}
		if len(b) == 0 || len(b)%rec != 0 {
			return nil, fmt.Errorf("cifar %s: %d bytes is not a whole number of %d-byte records (truncated or not the binary version?)",
				p, len(b), rec)
		}
		for off := 0; off < len(b); off += rec {
			label := int32(b[off+labelAt])
			if int(label) >= len(classes) {
				return nil, fmt.Errorf("cifar %s: record %d has label %d outside the %d classes", p, off/rec, label, len(classes))
			}
			d.Labels = append(d.Labels, label)
			planes := b[off+labelBytes : off+rec]
			for i := range 32 * 32 {
				d.Images = append(d.Images, planes[i], planes[1024+i], planes[2048+i])
			}
		}
	}
	return d, d.Validate()
}

// readClassNames reads one name per non-empty line, or returns def when the file is missing.
func readClassNames(path string, def []string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return def
	}
	var names []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			names = append(names, l)
		}
	}
	if len(names) == 0 {
		return def
	}
	return names
}

// WriteCIFAR writes images (HWC 32x32x3) and labels as one CIFAR binary batch file; coarse
// labels (CIFAR-100 layout) are written when coarse is not nil. Tests use it.
func WriteCIFAR(path string, images []uint8, labels []int32, coarse []int32) error {
	var out []byte
	for i, l := range labels {
		if coarse != nil {
			out = append(out, byte(coarse[i]))
		}
		out = append(out, byte(l))
		img := images[i*cifarPixels : (i+1)*cifarPixels]
		for c := range 3 {
			for p := range 32 * 32 {
				out = append(out, img[p*3+c])
			}
		}
	}
	return os.WriteFile(path, out, 0o644)
}
