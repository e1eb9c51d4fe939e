package npy

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	npyio "github.com/sbinet/npyio/npy"
)

func TestWriteThenReadGivesBackShapeTypeAndValues(t *testing.T) {
	cases := []struct {
		name  string
		shape []int
		data  any
	}{
		{"float32 image", []int{1, 2, 2, 3}, []float32{0, -1.5, 3.25, 1e-7, -0, 65504, 1, 2, 3, 4, 5, 6}},
		{"int8 extremes", []int{2, 3}, []int8{-128, -1, 0, 1, 126, 127}},
		{"uint8 pixels", []int{4}, []uint8{0, 1, 254, 255}},
		{"int32 biases", []int{3}, []int32{-2147483648, 0, 2147483647}},
		{"scalar", []int{}, []float32{42}},
		{"empty", []int{0, 5}, []int8{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.npy")
			if err := Write(path, c.shape, c.data); err != nil {
				t.Fatal(err)
			}
			shape, data, err := Read(path)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(shape, c.shape) || !reflect.DeepEqual(data, c.data) {
				t.Errorf("read back %v %#v, want %v %#v", shape, data, c.shape, c.data)
			}
		})
	}
}

// Another implementation of the format must read what we write.
func TestFilesWeWriteReadBackWithSbinetNpyio(t *testing.T) {
	var buf bytes.Buffer
	if err := Encode(&buf, []int{2, 3}, []int8{1, -2, 3, -4, 5, -128}); err != nil {
		t.Fatal(err)
	}
	r, err := npyio.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if r.Header.Descr.Type != "|i1" || !reflect.DeepEqual(r.Header.Descr.Shape, []int{2, 3}) || r.Header.Descr.Fortran {
		t.Fatalf("npyio sees header %+v, want |i1 of shape [2 3] in C order", r.Header.Descr)
	}
	var got []int8
	if err := r.Read(&got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []int8{1, -2, 3, -4, 5, -128}) {
		t.Errorf("npyio read %v", got)
	}
}

func TestDataStartsOnA64ByteBoundary(t *testing.T) {
	for _, shape := range [][]int{{1}, {7, 11}, {1, 224, 224, 3}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		var buf bytes.Buffer
		if err := Encode(&buf, shape, make([]float32, n)); err != nil {
			t.Fatal(err)
		}
		if head := buf.Len() - 4*n; head%64 != 0 {
			t.Errorf("shape %v: data starts at byte %d, want a multiple of 64", shape, head)
		}
	}
}

func TestBadInputGivesErrorsThatSayWhatIsWrong(t *testing.T) {
	good := func(shape []int, data any) []byte {
		var buf bytes.Buffer
		if err := Encode(&buf, shape, data); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	f32 := good([]int{2}, []float32{1, 2})
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"not npy", []byte("hello world, not numpy"), "magic"},
		{"too short", []byte("\x93NUM"), "magic"},
		{"truncated data", f32[:len(f32)-1], "needs 8 data bytes"},
		{"extra data", append(append([]byte{}, f32...), 0), "needs 8 data bytes"},
		{"float64", bytes.Replace(f32, []byte("<f4"), []byte("<f8"), 1), "dtype <f8"},
		{"fortran order", bytes.Replace(f32, []byte("False"), []byte("True "), 1), "fortran_order"},
		{"unknown version", append([]byte("\x93NUMPY\x09\x00"), f32[8:]...), "version 9"},
		{"header past the end", append([]byte("\x93NUMPY\x01\x00\xff\xff"), f32[10:20]...), "past the end"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := Decode(c.file)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestWriteRefusesDataThatDoesNotFitTheShape(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name  string
		shape []int
		data  any
		want  string
	}{
		{"too few elements", []int{2, 2}, []float32{1, 2, 3}, "needs 4 elements"},
		{"negative dimension", []int{-1}, []int8{}, "negative"},
		{"unsupported type", []int{2}, []float64{1, 2}, "[]float64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name+".npy")
			err := Write(path, c.shape, c.data)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want one containing %q", err, c.want)
			}
			if _, statErr := os.Stat(path); statErr == nil {
				t.Errorf("a file was written despite the error")
			}
		})
	}
}

func TestReadNamesTheFileThatFailed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weird.npy")
	if err := os.WriteFile(path, []byte("nope"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Read(path); err == nil || !strings.Contains(err.Error(), "weird.npy") {
		t.Errorf("err = %v, want one naming weird.npy", err)
	}
}

// The inputs that made npyio panic or allocate gigabytes (see the package
// comment) get errors here, and so does a shape whose element count overflows.
func TestMalformedHeadersThatCrashNpyio(t *testing.T) {
	cases := map[string][]byte{
		"header without its newline": append([]byte("\x93NUMPY\x01\x00\x10\x00"), "{'descr': '<f4'}"...),
		"4 GiB version-2 header":     []byte("\x93NUMPY\x02\x00\xff\xff\xff\xff"),
		"shape that overflows": append([]byte("\x93NUMPY\x01\x00\x74\x00"),
			"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296, 4294967296), }              \n"...),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, _, err := Decode(b); err == nil {
				t.Errorf("Decode accepted %q", b)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	if err := Encode(&buf, []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	buf.Reset()
	if err := Encode(&buf, []int{4}, []int8{1, -2, 3, -4}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		shape, data, err := Decode(b)
		if err != nil {
			return
		}
		// What decodes must encode back to a file that decodes the same.
		var out bytes.Buffer
		if err := Encode(&out, shape, data); err != nil {
			t.Fatalf("Decode gave shape %v and %T that Encode refuses: %v", shape, data, err)
		}
		shape2, _, err := Decode(out.Bytes())
		if err != nil || len(shape2) != len(shape) {
			t.Fatalf("round trip: shape %v -> %v, %v", shape, shape2, err)
		}
	})
}
