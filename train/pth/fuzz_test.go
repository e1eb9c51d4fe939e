package pth

import (
	"os"
	"strings"
	"testing"
)

// checkResult holds what Parse returned to its contract: an error on one line, or tensors whose
// bytes are exactly their shape's worth.
func checkResult(t *testing.T, f *File, err error) {
	if err != nil {
		if strings.Contains(err.Error(), "\n") {
			t.Fatalf("error spans lines: %q", err)
		}
		return
	}
	size := map[string]int{"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8}
	if len(f.Names) != len(f.Tensors) {
		t.Fatalf("%d names for %d tensors", len(f.Names), len(f.Tensors))
	}
	for _, name := range f.Names {
		tt, ok := f.Tensors[name]
		if !ok {
			t.Fatalf("name %q has no tensor", name)
		}
		n, ok := size[tt.DType]
		for _, d := range tt.Shape {
			n *= d
		}
		if !ok || len(tt.Data) != n {
			t.Fatalf("tensor %q: %s %v with %d bytes", name, tt.DType, tt.Shape, len(tt.Data))
		}
	}
}

// FuzzReadPTH feeds Parse whole files: a valid one and its damaged copies (most mutations break
// a checksum, so this mostly exercises the zip layer; FuzzReadPTHPickle reaches the pickle). It
// must never panic or hang; it returns tensors that match their shapes or a one-line error.
func FuzzReadPTH(f *testing.F) {
	file := smallStateDict()
	fill(file, 3)
	b, err := file.Bytes()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	if b, err := os.ReadFile("testdata/cpython_state_dict.pkl"); err == nil {
		file := smallStateDict()
		file.Pickle = b
		if b, err := file.Bytes(); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(b)
		checkResult(t, file, err)
	})
}

// FuzzReadPTHPickle feeds Parse files whose data.pkl is the fuzzer's input, inside an archive
// that is otherwise valid, so that the mutations reach the pickle instead of the zip's checksums.
func FuzzReadPTHPickle(f *testing.F) {
	f.Add(smallStateDict().StatePickle())
	if b, err := os.ReadFile("testdata/cpython_state_dict.pkl"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("\x80\x02cposix\nsystem\nX\x02\x00\x00\x00lsq\x00\x85R."))
	f.Fuzz(func(t *testing.T, pkl []byte) {
		file := smallStateDict()
		fill(file, 4)
		file.Pickle = pkl
		b, err := file.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(b)
		checkResult(t, got, err)
	})
}
