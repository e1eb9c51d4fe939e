package h5

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "regenerate testdata/*.h5 with h5wasm (tools/ort-node/keras-h5.mjs; needs node and tools/ort-node's packages)")

// The generated files hold a small Keras-shaped layout: layer_names, a layer without weights,
// and tensors whose element i of tensor t is want(t, i), exact in float32.
type genTensor struct {
	layer, name string
	shape       []int
}

var genTensors = []genTensor{
	{"conv1_conv", "conv1_conv/kernel:0", []int{3, 3, 2, 4}},
	{"conv1_conv", "conv1_conv/bias:0", []int{4}},
	{"conv1_bn", "conv1_bn/gamma:0", []int{4}},
	{"dense", "dense/kernel:0", []int{5, 7}},
	{"dense", "dense/bias:0", []int{7}},
}

var genLayers = []string{"input_1", "conv1_pad", "conv1_conv", "conv1_bn", "dense"}

func want(t, i int) float32 { return float32(t+1)*0.5 + float32(i%97)*0.125 - 2 }

// genVariants are the files in testdata: what h5py writes by default (superblock 0,
// symbol-table groups, fixed-length strings), and what other settings and h5wasm write.
var genVariants = map[string]map[string]any{
	"v0-fixed.h5":            {"strings": "fixed", "libver": []string{"earliest", "v108"}},
	"v0-vlen-deflate.h5":     {"strings": "vlen", "libver": []string{"earliest", "v108"}, "chunks": true, "compression": 6},
	"v0-float64-split.h5":    {"strings": "fixed", "libver": []string{"earliest", "v108"}, "dtype": "<d", "split_layer_names": 2},
	"v2-default.h5":          {"strings": "vlen"},
	"v3-latest-deflate.h5":   {"strings": "fixed", "libver": "latest", "chunks": true, "compression": 4},
	"v3-latest-chunked.h5":   {"strings": "vlen", "libver": "latest", "chunks": true},
	"v0-chunked-nofilter.h5": {"strings": "fixed", "libver": []string{"earliest", "v108"}, "chunks": true},
}

func TestRegenerateTestdata(t *testing.T) {
	if !*update {
		t.Skip("-update regenerates testdata")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal(err)
	}
	script, _ := filepath.Abs("../../tools/ort-node/keras-h5.mjs")
	dir := t.TempDir()
	var blob []byte
	type w struct {
		Name   string `json:"name"`
		Shape  []int  `json:"shape"`
		Offset int    `json:"offset"`
	}
	layers := []map[string]any{}
	for _, l := range genLayers {
		ws := []w{}
		for ti, gt := range genTensors {
			if gt.layer != l {
				continue
			}
			n := 1
			for _, d := range gt.shape {
				n *= d
			}
			ws = append(ws, w{gt.name, gt.shape, len(blob)})
			for i := range n {
				blob = binary.LittleEndian.AppendUint32(blob, math.Float32bits(want(ti, i)))
			}
		}
		layers = append(layers, map[string]any{"name": l, "weights": ws})
	}
	bp := filepath.Join(dir, "w.bin")
	if err := os.WriteFile(bp, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, v := range genVariants {
		spec := map[string]any{"blob": bp, "layers": layers}
		for k, x := range v {
			spec[k] = x
		}
		js, _ := json.Marshal(spec)
		sp := filepath.Join(dir, name+".json")
		os.WriteFile(sp, js, 0o644)
		out, _ := filepath.Abs(filepath.Join("testdata", name))
		cmd := exec.Command(node, script, "write", sp, out)
		cmd.Dir = filepath.Dir(script)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", name, err, b)
		}
	}
}

func open(t testing.TB, name string) *File {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func strs(t *testing.T, o *Object, name string) []string {
	t.Helper()
	a, err := o.Attr(name)
	if err != nil {
		t.Fatal(err)
	}
	return a.Strings
}

func TestReadsWhatH5pyAndH5wasmWrite(t *testing.T) {
	for name := range genVariants {
		t.Run(name, func(t *testing.T) {
			f := open(t, name)
			root, err := f.Root()
			if err != nil {
				t.Fatal(err)
			}
			var layers []string
			if strings.Contains(name, "split") {
				for k := 0; ; k++ {
					a, err := root.Attr(fmt.Sprintf("layer_names%d", k))
					if err != nil {
						break
					}
					layers = append(layers, a.Strings...)
				}
			} else {
				layers = strs(t, root, "layer_names")
			}
			if !slices.Equal(layers, genLayers) {
				t.Fatalf("layer_names %q, want %q", layers, genLayers)
			}
			if b := strs(t, root, "backend"); !slices.Equal(b, []string{"tensorflow"}) {
				t.Errorf("backend %q", b)
			}
			for ti, gt := range genTensors {
				g, err := root.Open(gt.layer)
				if err != nil {
					t.Fatal(err)
				}
				wn := strs(t, g, "weight_names")
				if !slices.Contains(wn, gt.name) {
					t.Errorf("%s: weight_names %q lacks %q", gt.layer, wn, gt.name)
				}
				o, err := g.Open(gt.name)
				if err != nil {
					t.Fatal(err)
				}
				d, err := o.Dataset()
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(d.Shape, gt.shape) {
					t.Errorf("%s: shape %v, want %v", d.Path, d.Shape, gt.shape)
				}
				v, err := d.Float32s()
				if err != nil {
					t.Fatal(err)
				}
				for i, x := range v {
					if x != want(ti, i) {
						t.Fatalf("%s[%d] = %v, want %v", d.Path, i, x, want(ti, i))
					}
				}
			}
			// A layer without weights: an empty weight_names.
			g, err := root.Open("conv1_pad")
			if err != nil {
				t.Fatal(err)
			}
			a, err := g.Attr("weight_names")
			if err != nil || len(a.Strings)+len(a.Numbers) != 0 {
				t.Errorf("conv1_pad weight_names = %+v, %v; want empty", a, err)
			}
			n := 0
			if err := f.Walk(func(o *Object) error { n++; return nil }); err != nil {
				t.Fatal(err)
			}
			if n != 1+len(genLayers)+len(genTensors)+3 { // root, layer groups, datasets, the 3 nested groups
				t.Errorf("walked %d objects", n)
			}
		})
	}
}

// readAll reads everything a file holds: every object's attributes and every dataset's values.
func readAll(b []byte) error {
	f, err := Open(b)
	if err != nil {
		return err
	}
	return f.Walk(func(o *Object) error {
		if _, err := o.Attrs(); err != nil {
			return err
		}
		if o.IsGroup() {
			return nil
		}
		d, err := o.Dataset()
		if err != nil {
			return err
		}
		if _, err := d.Value(); err != nil {
			return err
		}
		return nil
	})
}

func TestDamagedFilesGiveErrors(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "v0-vlen-deflate.h5"))
	if err != nil {
		t.Fatal(err)
	}
	if err := readAll(b); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 7, 8, 40, 100, 600, 1000, 2000, 4096, len(b) / 2, len(b) - 1} {
		if err := readAll(b[:n]); err == nil {
			t.Errorf("truncated to %d bytes: no error", n)
		}
	}
	if _, err := Open([]byte("PK\x03\x04 not hdf5")); err == nil || !strings.Contains(err.Error(), "not an HDF5 file") {
		t.Errorf("zip: %v", err)
	}
	// Every single flipped byte: an error or the same reading, never a panic.
	for i := range min(len(b), 3000) {
		c := slices.Clone(b)
		c[i] ^= 0xff
		readAll(c)
	}
}

// FuzzReadH5 reads every object of mutated files: no panic, no hang, every error one line. Its seeds are the small files of
// seed_test.go (old-style groups, contiguous and chunked-deflate data, fixed and variable-length
// strings) and the two smallest h5wasm files (superblocks 2 and 3: OHDR headers, link messages,
// layout version 5): the Go fuzzer minimises every input that finds new code for up to
// -fuzzminimizetime (default 60 s), which on the 13-30 kB files took the whole run.
func FuzzReadH5(f *testing.F) {
	for _, p := range []string{filepath.Join("testdata", "v2-default.h5"), filepath.Join("testdata", "v3-latest-deflate.h5")} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(smallFile(false, false))
	f.Add(smallFile(true, false))
	f.Add(smallFile(false, true))
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := readAll(b); err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("error of more than one line: %q", err)
		}
	})
}

func TestNumbersOfEitherByteOrder(t *testing.T) {
	for _, tc := range []struct {
		t    Datatype
		b    []byte
		want float64
	}{
		{Datatype{Class: ClassFloat, Size: 4}, []byte{0, 0, 0xc0, 0x3f}, 1.5},
		{Datatype{Class: ClassFloat, Size: 4, BigEndian: true}, []byte{0x3f, 0xc0, 0, 0}, 1.5},
		{Datatype{Class: ClassFloat, Size: 8, BigEndian: true}, []byte{0xc0, 0x04, 0, 0, 0, 0, 0, 0}, -2.5},
		{Datatype{Class: ClassInt, Size: 2, Signed: true}, []byte{0xfe, 0xff}, -2},
		{Datatype{Class: ClassInt, Size: 2}, []byte{0xfe, 0xff}, 65534},
		{Datatype{Class: ClassInt, Size: 4, Signed: true, BigEndian: true}, []byte{0xff, 0xff, 0xff, 0xfd}, -3},
	} {
		if got := number(tc.t, tc.b); got != tc.want {
			t.Errorf("%s % x = %v, want %v", tc.t, tc.b, got, tc.want)
		}
	}
}

// float32Type is a datatype message for IEEE float32 (spec IV.A.2.d), big-endian when asked.
func float32Type(bigEndian bool) []byte {
	bits := byte(0x20) // mantissa normalization: implied msb
	if bigEndian {
		bits |= 1
	}
	b := []byte{0x11, bits, 31, 0, 4, 0, 0, 0}
	b = append(b, 0, 0, 32, 0, 23, 8, 0, 23)
	return binary.LittleEndian.AppendUint32(b, 127)
}

// dataspace1 is a version-1 dataspace message of the given dims (8-byte lengths).
func dataspace1(dims ...uint64) []byte {
	b := []byte{1, byte(len(dims)), 0, 0, 0, 0, 0, 0}
	for _, d := range dims {
		b = binary.LittleEndian.AppendUint64(b, d)
	}
	return b
}

// A compact dataset (its data inside the layout message) of big-endian floats: no writer we
// have produces one, so the object is put together from its messages here.
func TestCompactBigEndianDataset(t *testing.T) {
	data := []byte{0x3f, 0xc0, 0, 0, 0xc0, 0x20, 0, 0} // 1.5, -2.5 big-endian
	layout := append([]byte{3, 0, byte(len(data)), 0}, data...)
	o := &Object{f: &File{offSize: 8, lenSize: 8, b: make([]byte, 64)}, Path: "/x", msgs: []message{
		{typ: msgDatatype, data: float32Type(true)}, {typ: msgDataspace, data: dataspace1(2)}, {typ: msgLayout, data: layout}}}
	d, err := o.Dataset()
	if err != nil {
		t.Fatal(err)
	}
	v, err := d.Float32s()
	if err != nil || !slices.Equal(v, []float32{1.5, -2.5}) {
		t.Fatalf("got %v, %v; want [1.5 -2.5]", v, err)
	}
	if d.Type.String() != "float32 big-endian" {
		t.Errorf("type %s", d.Type)
	}
	// Compact data shorter than the shape: an error, not a short read.
	o.msgs[1].data = dataspace1(3)
	if d, err = o.Dataset(); err == nil {
		_, err = d.Float32s()
	}
	if err == nil || !strings.Contains(err.Error(), "compact data of 8 bytes for 3 elements") {
		t.Errorf("3 elements in 8 bytes: %v", err)
	}
}

// Shuffle, deflate and Fletcher-32 undone in reverse order, and a filter mask that skips one.
func TestUnfilterUndoesShuffleDeflateAndFletcher32(t *testing.T) {
	want := make([]byte, 4*50)
	for i := range 50 {
		binary.LittleEndian.PutUint32(want[4*i:], math.Float32bits(float32(i)*0.75-3))
	}
	shuffled := make([]byte, len(want))
	for e := range 50 {
		for b := range 4 {
			shuffled[b*50+e] = want[e*4+b]
		}
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(shuffled)
	zw.Close()
	stored := append(z.Bytes(), 1, 2, 3, 4) // the checksum is not verified, only removed
	pipeline := []filter{{id: filterShuffle, client: []uint32{4}}, {id: filterDeflate}, {id: filterFletcher32}}
	got, err := unfilter(pipeline, 0, stored, len(want))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("unfilter: %v (equal %v)", err, bytes.Equal(got, want))
	}
	// Mask bit 0: the shuffle was skipped for this chunk.
	got, err = unfilter(pipeline, 1, stored, len(want))
	if err != nil || !bytes.Equal(got, shuffled) {
		t.Fatalf("unfilter with mask 1: %v", err)
	}
	// A chunk that inflates past its size is refused.
	if _, err := unfilter(pipeline, 0, stored, len(want)-1); err == nil {
		t.Error("a chunk larger than its shape: no error")
	}
	// An unknown filter is named.
	// Version 2, one filter: id 32000 (lzf), name length 0, flags 0, no client values.
	fm := []byte{2, 1, 0x00, 0x7d, 0, 0, 0, 0, 0, 0}
	if _, err := (&File{offSize: 8, lenSize: 8}).filters(fm); err == nil || !strings.Contains(err.Error(), "lzf") {
		t.Errorf("lzf: %v", err)
	}
}
