package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/internal/npy"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

// cli runs the command in-process and returns exit code, stdout, stderr.
func cli(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func smallModel(t *testing.T, int8IO bool) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.tflite")
	args := []string{"random-model", "--depth", "20", "--input", "12,10,3", "--classes", "5", "--out", p}
	if int8IO {
		args = append(args, "--int8-io")
	}
	if code, _, e := cli(args...); code != 0 {
		t.Fatalf("random-model failed: %s", e)
	}
	return p
}

func TestInferWritesWhatTheInterpreterComputes(t *testing.T) {
	for _, int8IO := range []bool{false, true} {
		model := smallModel(t, int8IO)
		m, err := resnet.LoadFile(model)
		if err != nil {
			t.Fatal(err)
		}
		it, err := interp.New(m, interp.Options{})
		if err != nil {
			t.Fatal(err)
		}
		fillRandom(it, 5)
		dir := t.TempDir()
		in := filepath.Join(dir, "in.npy")
		var err2 error
		if int8IO {
			err2 = npy.Write(in, it.Input(0).Shape, it.Input(0).Int8())
		} else {
			err2 = npy.Write(in, it.Input(0).Shape, it.Input(0).Float32())
		}
		if err2 != nil {
			t.Fatal(err2)
		}
		if err := it.Invoke(); err != nil {
			t.Fatal(err)
		}
		o0, o1 := filepath.Join(dir, "o0.npy"), filepath.Join(dir, "o1.npy")
		if code, _, e := cli("infer", "--model", model, "--input", in, "--output", o0, "--output", o1); code != 0 {
			t.Fatalf("infer (int8IO=%v) failed: %s", int8IO, e)
		}
		for k, p := range []string{o0, o1} {
			shape, data, err := npy.Read(p)
			if err != nil {
				t.Fatal(err)
			}
			want := it.Output(k)
			if !sameShape(shape, want.Shape) {
				t.Errorf("output %d shape %v, want %v", k, shape, want.Shape)
			}
			var got, exp []byte
			switch v := data.(type) {
			case []float32:
				got, exp = npyBytes(t, shape, v), npyBytes(t, want.Shape, want.Float32())
			case []int8:
				got, exp = npyBytes(t, shape, v), npyBytes(t, want.Shape, want.Int8())
			}
			if !bytes.Equal(got, exp) {
				t.Errorf("int8IO=%v output %d differs from the interpreter's", int8IO, k)
			}
		}
	}
}

func npyBytes(t *testing.T, shape []int, data any) []byte {
	var b bytes.Buffer
	if err := npy.Encode(&b, shape, data); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestInferRejectsBadInputWithOneLine(t *testing.T) {
	model := smallModel(t, false)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.npy")
	if err := npy.Write(good, []int{1, 12, 10, 3}, make([]float32, 360)); err != nil {
		t.Fatal(err)
	}
	wrongShape := filepath.Join(dir, "shape.npy")
	if err := npy.Write(wrongShape, []int{1, 10, 12, 3}, make([]float32, 360)); err != nil {
		t.Fatal(err)
	}
	wrongType := filepath.Join(dir, "type.npy")
	if err := npy.Write(wrongType, []int{1, 12, 10, 3}, make([]int8, 360)); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.tflite")
	if err := os.WriteFile(garbage, []byte("this is not a model at all, not even close"), 0o644); err != nil {
		t.Fatal(err)
	}
	notNpy := filepath.Join(dir, "not.npy")
	if err := os.WriteFile(notNpy, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "o.npy")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no model", []string{"infer", "--input", good, "--output", out}, "--model is required"},
		{"missing model file", []string{"infer", "--model", filepath.Join(dir, "nope.tflite"), "--input", good, "--output", out}, "no such file"},
		{"garbage model", []string{"infer", "--model", garbage, "--input", good, "--output", out}, "garbage.tflite"},
		{"wrong input count", []string{"infer", "--model", model, "--input", good, "--input", good, "--output", out}, "has 1 inputs, got 2"},
		{"no outputs", []string{"infer", "--model", model, "--input", good}, "outputs"},
		{"wrong shape", []string{"infer", "--model", model, "--input", wrongShape, "--output", out}, "the model wants [1 12 10 3]"},
		{"wrong dtype", []string{"infer", "--model", model, "--input", wrongType, "--output", out}, "holds int8, the model wants FLOAT32"},
		{"not npy", []string{"infer", "--model", model, "--input", notNpy, "--output", out}, "not a .npy file"},
		{"unknown arithmetic", []string{"infer", "--model", model, "--input", good, "--output", out, "--arithmetic", "bogus"}, "bogus"},
		{"unknown command", []string{"infre"}, "unknown command"},
		{"bench bad iters", []string{"bench", "--model", model, "--iters", "0"}, "--iters must be at least 1"},
	} {
		code, _, stderr := cli(tc.args...)
		if code == 0 {
			t.Errorf("%s: exit code 0, want non-zero", tc.name)
			continue
		}
		if !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: stderr %q does not mention %q", tc.name, stderr, tc.want)
		}
		if tc.name != "unknown command" && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%s: error is not one line: %q", tc.name, stderr)
		}
	}
}

func TestBenchPrintsMsPerInferenceLast(t *testing.T) {
	model := smallModel(t, false)
	code, out, e := cli("bench", "--model", model, "--iters", "2")
	if code != 0 {
		t.Fatalf("bench failed: %s", e)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !regexp.MustCompile(`^ms_per_inference=[0-9]+\.[0-9]+$`).MatchString(lines[len(lines)-1]) {
		t.Errorf("last line %q is not ms_per_inference=<mean>", lines[len(lines)-1])
	}
}
