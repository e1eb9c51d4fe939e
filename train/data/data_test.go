package data

import (
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// pattern returns n images of h*w*c bytes where image i is filled from i (so contents identify it).
func pattern(n, h, w, c int) ([]uint8, []int32) {
	px := make([]uint8, n*h*w*c)
	for i := range px {
		px[i] = uint8(i/(h*w*c)*7 + i%(h*w*c))
	}
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(i % 10)
	}
	return px, labels
}

func TestIDXLoadsGzippedAndRawFiles(t *testing.T) {
	for _, ext := range []string{".gz", ""} {
		dir := t.TempDir()
		px, labels := pattern(12, 28, 28, 1)
		if err := WriteIDX(filepath.Join(dir, "train-images-idx3-ubyte"+ext), filepath.Join(dir, "train-labels-idx1-ubyte"+ext),
			28, 28, px, labels); err != nil {
			t.Fatal(err)
		}
		d, err := LoadIDXDir(dir, "train", FashionMNISTClasses)
		if err != nil {
			t.Fatalf("ext %q: %v", ext, err)
		}
		if d.Len() != 12 || d.Height != 28 || d.Channels != 1 || !reflect.DeepEqual(d.Labels, labels) ||
			!reflect.DeepEqual(d.Images, px) {
			t.Errorf("ext %q: loaded %d images %dx%dx%d, contents differ from what was written", ext, d.Len(), d.Height,
				d.Width, d.Channels)
		}
	}
}

func TestIDXErrorsNameTheFileAndTheProblem(t *testing.T) {
	dir := t.TempDir()
	px, labels := pattern(5, 4, 4, 1)
	img, lab := filepath.Join(dir, "i.idx"), filepath.Join(dir, "l.idx")
	write := func(p string, b []byte) {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := func() ([]byte, []byte) {
		if err := WriteIDX(img, lab, 4, 4, px, labels); err != nil {
			t.Fatal(err)
		}
		a, _ := os.ReadFile(img)
		b, _ := os.ReadFile(lab)
		return a, b
	}
	cases := []struct {
		name   string
		mutate func(imgB, labB []byte) ([]byte, []byte)
		want   []string
	}{
		{"bad image magic", func(a, b []byte) ([]byte, []byte) { a[3] = 9; return a, b }, []string{img, "bad magic"}},
		{"bad label magic", func(a, b []byte) ([]byte, []byte) { b[3] = 3; return a, b }, []string{lab, "bad magic"}},
		{"truncated images", func(a, b []byte) ([]byte, []byte) { return a[:len(a)-5], b }, []string{img, "truncated"}},
		{"truncated labels", func(a, b []byte) ([]byte, []byte) { return a, b[:len(b)-1] }, []string{lab, "header says 5 labels"}},
		{"count mismatch", func(a, b []byte) ([]byte, []byte) {
			b = append(b[:len(b)-1], 0, 0)
			b[7] = 6
			return a, b
		}, []string{img, lab, "5 images", "6 labels"}},
		{"label out of range", func(a, b []byte) ([]byte, []byte) { b[8] = 10; return a, b }, []string{lab, "label 10"}},
		{"header only", func(a, b []byte) ([]byte, []byte) { return a[:10], b }, []string{img, "header"}},
	}
	for _, tc := range cases {
		a, b := good()
		a, b = tc.mutate(a, b)
		write(img, a)
		write(lab, b)
		_, err := LoadIDX(img, lab, MNISTClasses)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
	}
	if _, err := LoadIDXDir(t.TempDir(), "test", MNISTClasses); err == nil || !strings.Contains(err.Error(), "t10k-images-idx3-ubyte") {
		t.Errorf("missing files: %v, want an error naming t10k-images-idx3-ubyte", err)
	}
}

func TestCIFARBinaryLoadsBothLayouts(t *testing.T) {
	dir := t.TempDir()
	px, labels := pattern(6, 32, 32, 3)
	for i := 1; i <= 5; i++ {
		if err := WriteCIFAR(filepath.Join(dir, "data_batch_"+string(rune('0'+i))+".bin"), px, labels, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteCIFAR(filepath.Join(dir, "test_batch.bin"), px[:2*3072], labels[:2], nil); err != nil {
		t.Fatal(err)
	}
	d, err := LoadCIFAR10(dir, "train")
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 30 || !reflect.DeepEqual(d.Image(7), px[3072:2*3072]) || d.Labels[7] != 1 || d.Classes[1] != "automobile" {
		t.Errorf("CIFAR-10 train: %d images, image 7 or its label differ from what was written", d.Len())
	}
	if d, err := LoadCIFAR10(dir, "test"); err != nil || d.Len() != 2 {
		t.Errorf("CIFAR-10 test: %v images, err %v", d, err)
	}

	coarse := make([]int32, len(labels))
	fine := []int32{99, 0, 42, 1, 2, 3}
	if err := WriteCIFAR(filepath.Join(dir, "train.bin"), px, fine, coarse); err != nil {
		t.Fatal(err)
	}
	d, err = LoadCIFAR100(dir, "train")
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 6 || !reflect.DeepEqual(d.Labels, fine) || len(d.Classes) != 100 {
		t.Errorf("CIFAR-100: labels %v, %d classes; want the fine labels %v and 100 classes", d.Labels, len(d.Classes), fine)
	}

	b, _ := os.ReadFile(filepath.Join(dir, "test_batch.bin"))
	os.WriteFile(filepath.Join(dir, "test_batch.bin"), b[:len(b)-100], 0o644)
	if _, err := LoadCIFAR10(dir, "test"); err == nil || !strings.Contains(err.Error(), "test_batch.bin") {
		t.Errorf("truncated CIFAR file: %v, want an error naming test_batch.bin", err)
	}
}

func writeImage(t *testing.T, path string, w, h int, c color.Color) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if strings.HasSuffix(path, ".png") {
		err = png.Encode(f, img)
	} else {
		err = jpeg.Encode(f, img, &jpeg.Options{Quality: 95})
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestFolderTreeLoadsResizesAndNamesBadFiles(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "cat"), 0o755)
	os.MkdirAll(filepath.Join(root, "dog"), 0o755)
	writeImage(t, filepath.Join(root, "cat", "a.png"), 20, 10, color.RGBA{R: 200, A: 255})
	writeImage(t, filepath.Join(root, "cat", "b.jpg"), 8, 8, color.RGBA{R: 200, A: 255})
	writeImage(t, filepath.Join(root, "dog", "c.png"), 16, 16, color.RGBA{B: 255, A: 255})
	os.WriteFile(filepath.Join(root, "dog", "notes.txt"), []byte("ignored"), 0o644)

	d, err := LoadFolder(root, FolderOptions{Height: 8, Width: 8})
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 3 || !reflect.DeepEqual(d.Classes, []string{"cat", "dog"}) || !reflect.DeepEqual(d.Labels, []int32{0, 0, 1}) {
		t.Fatalf("loaded %d images, classes %v, labels %v", d.Len(), d.Classes, d.Labels)
	}
	if p := d.Image(2); p[0] != 0 || p[2] != 255 {
		t.Errorf("blue PNG resized to 8x8 starts with RGB %v", p[:3])
	}
	g, err := LoadFolder(root, FolderOptions{Height: 8, Width: 8, Grey: true})
	if err != nil || g.Channels != 1 || len(g.Images) != 3*64 {
		t.Errorf("grey: %v channels, %d bytes, err %v", g.Channels, len(g.Images), err)
	}
	if _, err := LoadFolder(root, FolderOptions{}); err == nil || !strings.Contains(err.Error(), "b.jpg") {
		t.Errorf("mixed sizes without resizing: %v, want an error naming the odd image", err)
	}

	os.WriteFile(filepath.Join(root, "dog", "broken.png"), []byte("not a png"), 0o644)
	if _, err := LoadFolder(root, FolderOptions{Height: 8, Width: 8}); err == nil || !strings.Contains(err.Error(), "broken.png") {
		t.Errorf("corrupt image: %v, want an error naming broken.png", err)
	}
	os.Remove(filepath.Join(root, "dog", "broken.png"))
	os.MkdirAll(filepath.Join(root, "eel"), 0o755)
	if _, err := LoadFolder(root, FolderOptions{Height: 8, Width: 8}); err == nil || !strings.Contains(err.Error(), "eel") {
		t.Errorf("empty class folder: %v, want an error naming it", err)
	}
}

func TestSplitIsStratifiedDisjointAndReproducible(t *testing.T) {
	px, labels := pattern(200, 2, 2, 1)
	for i := range labels {
		labels[i] = int32(i % 4)
		px[i*4] = uint8(i) // make each image identifiable
	}
	d := &Dataset{Name: "p", Height: 2, Width: 2, Channels: 1, Images: px, Labels: labels, Classes: []string{"a", "b", "c", "d"}}
	tr, va, err := d.Split(0.1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Len() != 180 || va.Len() != 20 || !reflect.DeepEqual(va.ClassCounts(), []int{5, 5, 5, 5}) {
		t.Errorf("split sizes %d/%d, validation classes %v; want 180/20 with 5 of each class", tr.Len(), va.Len(), va.ClassCounts())
	}
	seen := map[uint8]bool{}
	for i := range tr.Len() {
		seen[tr.Image(i)[0]] = true
	}
	for i := range va.Len() {
		if seen[va.Image(i)[0]] {
			t.Fatalf("image %d is in both sides", va.Image(i)[0])
		}
	}
	_, va2, _ := d.Split(0.1, 3)
	if !reflect.DeepEqual(va.Images, va2.Images) {
		t.Error("the same seed gave a different split")
	}
	if _, _, err := d.Split(1, 3); err == nil {
		t.Error("fraction 1 accepted")
	}
}

func TestBatchesAreDeterministicAndNormalized(t *testing.T) {
	px, labels := pattern(37, 4, 4, 1)
	d := &Dataset{Name: "p", Height: 4, Width: 4, Channels: 1, Images: px, Labels: labels, Classes: MNISTClasses}
	collect := func(opt BatchOptions) []Batch {
		it, err := Iterate(context.Background(), d, opt)
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		var out []Batch
		for {
			b, ok := it.Next()
			if !ok {
				return out
			}
			out = append(out, b)
		}
	}
	opt := BatchOptions{BatchSize: 8, Shuffle: true, Seed: 9, Epoch: 2, Augment: Augment{CropPad: 1, Flip: true}, Workers: 1}
	one := collect(opt)
	opt.Workers = 4
	four := collect(opt)
	if len(one) != 5 || !reflect.DeepEqual(one, four) {
		t.Fatalf("%d batches; 1 and 4 workers must give identical batches", len(one))
	}
	if last := one[4]; last.N != 5 || len(last.Y) != 8 {
		t.Errorf("last batch has N=%d of %d rows, want 5 real rows padded to 8", last.N, len(last.Y))
	}
	opt.Epoch = 3
	if reflect.DeepEqual(collect(opt)[0].ImageIndex, one[0].ImageIndex) {
		t.Error("another epoch kept the same order")
	}

	// Without augmentation pixels map exactly through the normalization, and PadTo centres the image.
	plain := collect(BatchOptions{BatchSize: 37, Norm: Normalization{Mean: []float32{0.5}, Std: []float32{0.25}}, PadTo: 6})[0]
	if plain.H != 6 || plain.W != 6 {
		t.Fatalf("PadTo 6 gave %dx%d", plain.H, plain.W)
	}
	img := plain.X[3*36 : 4*36]
	if want := (float32(px[3*16+0])/255 - 0.5) / 0.25; img[1*6+1] != want {
		t.Errorf("pixel (0,0) of image 3 at (1,1) of the padded batch = %g, want %g", img[1*6+1], want)
	}
	if img[0] != -2 {
		t.Errorf("padding = %g, want the normalized zero -2", img[0])
	}
	flip := collect(BatchOptions{BatchSize: 37, Augment: Augment{Flip: true}, Seed: 1})[0]
	flipped := 0
	for r := range 37 {
		got := flip.X[r*16 : r*16+4]
		src := px[r*16 : r*16+4]
		if got[0] == float32(src[3])/255 && got[3] == float32(src[0])/255 && src[0] != src[3] {
			flipped++
		}
	}
	if flipped == 0 || flipped == 37 {
		t.Errorf("%d of 37 images flipped; want some but not all", flipped)
	}
}

func TestIteratorStopsWhenItsContextIsCancelled(t *testing.T) {
	px, labels := pattern(100, 4, 4, 1)
	d := &Dataset{Name: "p", Height: 4, Width: 4, Channels: 1, Images: px, Labels: labels, Classes: MNISTClasses}
	ctx, cancel := context.WithCancel(context.Background())
	it, err := Iterate(ctx, d, BatchOptions{BatchSize: 4, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := it.Next(); !ok {
		t.Fatal("no first batch")
	}
	cancel()
	n := 0
	for {
		if _, ok := it.Next(); !ok {
			break
		}
		n++
	}
	it.Close() // must return: every worker has exited
	if n >= 24 {
		t.Errorf("%d more batches after cancel; the iterator should stop early", n)
	}
}

func TestParseSourceKnowsTheFormats(t *testing.T) {
	cases := map[string]Source{
		"fashion-mnist":         {Format: FormatFashionMNIST, Dir: FashionMNISTDir},
		"cifar10:/d":            {Format: FormatCIFAR10, Dir: "/d"},
		"/data/flowers":         {Format: FormatFolder, Dir: "/data/flowers"},
		"folder:/data/flowers2": {Format: FormatFolder, Dir: "/data/flowers2"},
	}
	for in, want := range cases {
		if got, err := ParseSource(in); err != nil || got != want {
			t.Errorf("ParseSource(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	if _, err := ParseSource("imagenet:/x"); err == nil {
		t.Error("unknown format accepted")
	}
}
