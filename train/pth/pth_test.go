package pth

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/train/pth/pthtest"
)

// cpythonStateDict is the state dict testdata/cpython_state_dict.py pickles with CPython.
func cpythonStateDict() *pthtest.File {
	f := &pthtest.File{Metadata: true}
	storage := func(class string, numel int) int {
		f.Storages = append(f.Storages, pthtest.Storage{Class: class, Data: make([]byte, numel*pthtest.ElementSize[class])})
		return len(f.Storages) - 1
	}
	f.Entries = append(f.Entries,
		pthtest.Entry{Name: "conv1.weight", Storage: storage("FloatStorage", 24), Shape: []int{2, 3, 2, 2}},
		pthtest.Entry{Name: "bn1.weight", Storage: storage("HalfStorage", 2), Shape: []int{2}},
		pthtest.Entry{Name: "bn1.num_batches_tracked", Storage: storage("LongStorage", 1), Shape: []int{}})
	fc := storage("FloatStorage", 70100)
	f.Entries = append(f.Entries,
		pthtest.Entry{Name: "fc.weight", Storage: fc, Shape: []int{100, 700}, Stride: []int{1, 100}},
		pthtest.Entry{Name: "fc.bias", Storage: fc, Offset: 70000, Shape: []int{100}},
		pthtest.Entry{Name: "layer1.0.conv1.weight", Storage: storage("FloatStorage", 4), Shape: []int{1, 1, 2, 2},
			Stride: []int{4, 4, 2, 1}, Parameter: true})
	for i := range 60 {
		f.Entries = append(f.Entries, pthtest.Entry{Name: "extra." + strconv.Itoa(i) + ".weight", Storage: storage("FloatStorage", 3),
			Shape: []int{3}})
	}
	return f
}

// fill gives every storage distinct values, so that a wrong element shows.
func fill(f *pthtest.File, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range f.Storages {
		for j := range f.Storages[i].Data {
			f.Storages[i].Data[j] = byte(rng.UintN(256))
		}
	}
}

func build(t testing.TB, f *pthtest.File) []byte {
	t.Helper()
	b, err := f.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rowMajor gathers a view's elements the slow way: every index, its offset.
func rowMajor(data []byte, es, offset int, shape, stride []int) []byte {
	n := 1
	for _, d := range shape {
		n *= d
	}
	out := make([]byte, 0, n*es)
	for k := range n {
		src, rest := offset, k
		for d := len(shape) - 1; d >= 0; d-- {
			src += rest % shape[d] * stride[d]
			rest /= shape[d]
		}
		out = append(out, data[src*es:(src+1)*es]...)
	}
	return out
}

// check holds every tensor Parse read to what its entry describes.
func check(t *testing.T, f *pthtest.File, got *File) {
	t.Helper()
	dtypes := map[string]string{"FloatStorage": "F32", "HalfStorage": "F16", "BFloat16Storage": "BF16",
		"DoubleStorage": "F64", "LongStorage": "I64"}
	if len(got.Names) != len(f.Entries) {
		t.Fatalf("read %d tensors, the file has %d", len(got.Names), len(f.Entries))
	}
	for i, e := range f.Entries {
		if got.Names[i] != e.Name {
			t.Fatalf("tensor %d is %q, want %q (the file's order)", i, got.Names[i], e.Name)
		}
		tt := got.Tensors[e.Name]
		st := f.Storages[e.Storage]
		stride := e.Stride
		if stride == nil {
			stride = pthtest.Contiguous(e.Shape)
		}
		want := rowMajor(st.Data, pthtest.ElementSize[st.Class], e.Offset, e.Shape, stride)
		if tt.DType != dtypes[st.Class] || !equalInts(tt.Shape, e.Shape) || !bytes.Equal(tt.Data, want) {
			t.Errorf("%s: %s %v with %d bytes (equal: %v); want %s %v", e.Name, tt.DType, tt.Shape, len(tt.Data),
				bytes.Equal(tt.Data, want), dtypes[st.Class], e.Shape)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWriterPicklesLikeCPython(t *testing.T) {
	want, err := os.ReadFile("testdata/cpython_state_dict.pkl")
	if err != nil {
		t.Fatal(err)
	}
	f := cpythonStateDict()
	if got := f.StatePickle(); !bytes.Equal(got, want) {
		n := 0
		for n < min(len(got), len(want)) && got[n] == want[n] {
			n++
		}
		t.Fatalf("pthtest's pickle (%d bytes) differs from CPython's (%d bytes) from byte %d:\n ours   %x\n cpython %x",
			len(got), len(want), n, got[n:min(n+24, len(got))], want[n:min(n+24, len(want))])
	}
	// And the reader reads what CPython wrote: a transposed view, a view at an offset into a
	// shared storage, a Parameter, F16, I64, more than 256 memo entries, _metadata.
	fill(f, 1)
	f.Pickle = want
	got, err := Parse(build(t, f))
	if err != nil {
		t.Fatal(err)
	}
	check(t, f, got)
}

// TestReadsTorchSaveFiles reads files torch.save itself wrote (PyTorch 1.13.1, one tensor each,
// [1.2, -3.4, 5.6, -7.8] or [1, -2, 3, -4]): the test data gopickle ships, found in the module
// cache. They are single tensors rather than state dicts, so the tensor is read with the
// package's internals after Parse says what the file is.
func TestReadsTorchSaveFiles(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/nlpodyssey/gopickle").Output()
	dir := filepath.Join(strings.TrimSpace(string(out)), "pytorch", "testdata")
	if _, statErr := os.Stat(dir); err != nil || statErr != nil {
		t.Skipf("gopickle's torch.save test files are not in the module cache (%v %v)", err, statErr)
	}
	v := []float64{1.2, -3.4, 5.6, -7.8}
	var f32, f64 []byte
	for _, x := range v {
		f32 = binary.LittleEndian.AppendUint32(f32, math.Float32bits(float32(x)))
		f64 = binary.LittleEndian.AppendUint64(f64, math.Float64bits(x))
	}
	unhex := func(s string) []byte { b, _ := hex.DecodeString(s); return b }
	for _, tc := range []struct {
		file, dtype string
		data        []byte
	}{
		{"float32", "F32", f32},
		{"float64", "F64", f64},
		{"float16", "F16", unhex("cd3ccdc29a45cdc7")},   // binary16 of the values (Python struct "<e")
		{"bfloat16", "BF16", unhex("9a3f5ac0b340fac0")}, // float32 rounded to its top 16 bits, to nearest even
		{"int64", "I64", pthtest.Int64s([]int64{1, -2, 3, -4})},
	} {
		for _, proto := range []string{"2", "3"} {
			name := "tensor_" + tc.file + "_proto" + proto + "_zip.pt"
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Parse(b); err == nil || !strings.Contains(err.Error(), "holds a tensor, not a state dict") {
				t.Errorf("%s: Parse: %v; want: holds a tensor, not a state dict", name, err)
			}
			a, err := openArchive(b)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			root, err := a.unpickle()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			vw, ok := root.(*view)
			if !ok {
				t.Fatalf("%s: unpickled %s, want a tensor", name, pyType(root))
			}
			budget := len(b)
			got, err := a.tensor(name, vw, &budget)
			if err != nil || got.DType != tc.dtype || !equalInts(got.Shape, []int{4}) || !bytes.Equal(got.Data, tc.data) {
				t.Errorf("%s: %s %v % x (%v); want %s [4] % x", name, got.DType, got.Shape, got.Data, err, tc.dtype, tc.data)
			}
		}
	}
	for _, tc := range []struct{ file, want string }{
		{"tensor_float32_proto5_zip.pt", "FRAME"},          // protocol 4 and 5 open with a frame
		{"tensor_float32_proto1_zip.pt", "opcode INT"},     // protocol 1 writes False as INT
		{"tensor_int8_proto2_zip.pt", "torch.CharStorage"}, // integer storages are not weights
		{"tensor_bool_proto2_zip.pt", "torch.BoolStorage"},
		{"tensor_float32_proto2.pt", "PyTorch < 1.6"}, // the legacy format
	} {
		b, err := os.ReadFile(filepath.Join(dir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error naming %s", tc.file, err, tc.want)
		}
	}
}

func TestReadsWhatTorchSaveWrites(t *testing.T) {
	f := &pthtest.File{Archive: "resnet18-f37072fd", Metadata: true, ByteOrder: "-"}
	add := func(class string, numel int) int {
		f.Storages = append(f.Storages, pthtest.Storage{Class: class, Data: make([]byte, numel*pthtest.ElementSize[class])})
		return len(f.Storages) - 1
	}
	// Every dtype; a channels_last convolution weight (NHWC in memory: stride O, 1, W*I, I); a
	// transposed matrix; two views into one storage at offsets; a Parameter; a scalar.
	f.Entries = []pthtest.Entry{
		{Name: "conv1.weight", Storage: add("FloatStorage", 8*3*3*3), Shape: []int{8, 3, 3, 3}, Stride: []int{27, 1, 9, 3}},
		{Name: "bn1.weight", Storage: add("HalfStorage", 8), Shape: []int{8}},
		{Name: "bn1.bias", Storage: add("BFloat16Storage", 8), Shape: []int{8}},
		{Name: "bn1.running_var", Storage: add("DoubleStorage", 8), Shape: []int{8}},
		{Name: "bn1.num_batches_tracked", Storage: add("LongStorage", 1), Shape: []int{}},
		{Name: "fc.weight", Storage: add("FloatStorage", 5*7), Shape: []int{5, 7}, Stride: []int{1, 5}},
		{Name: "shared.a", Storage: add("FloatStorage", 30), Offset: 3, Shape: []int{2, 5}, Stride: []int{10, 1}},
		{Name: "shared.b", Storage: len(f.Storages) - 1, Offset: 29, Shape: []int{1}},
		{Name: "param", Storage: add("FloatStorage", 6), Shape: []int{2, 3}, Parameter: true},
		{Name: "empty", Storage: add("FloatStorage", 0), Shape: []int{0, 4}},
	}
	// More entries than one SETITEMS batch of CPython's pickler (1000).
	for i := range 1100 {
		f.Entries = append(f.Entries, pthtest.Entry{Name: "many." + strconv.Itoa(i), Storage: add("FloatStorage", 2), Shape: []int{2}})
	}
	fill(f, 2)
	got, err := Parse(build(t, f))
	if err != nil {
		t.Fatal(err)
	}
	check(t, f, got)

	// Read goes through the file system and names the file in its errors.
	dir := t.TempDir()
	path := filepath.Join(dir, "w.pth")
	if err := os.WriteFile(path, build(t, f), 0o644); err != nil {
		t.Fatal(err)
	}
	if r, err := Read(path); err != nil || r.Path != path || len(r.Names) != len(f.Entries) {
		t.Errorf("Read(%s): %v", path, err)
	}
	if _, err := Read(filepath.Join(dir, "none.pth")); err == nil || !strings.Contains(err.Error(), "none.pth") {
		t.Errorf("Read of a missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.pth")
	if err := os.WriteFile(bad, []byte("PK\x03\x04 no more"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(bad); err == nil || !strings.HasPrefix(err.Error(), "pth "+bad+": ") {
		t.Errorf("Read of a damaged file: %v; want an error that starts with the path", err)
	}
}

// zipOf writes records as they are (for archives torch.save would not write).
func zipOf(t *testing.T, method uint16, records ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i < len(records); i += 2 {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: records[i], Method: method})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(records[i+1]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// smallStateDict is a valid file of three tensors.
func smallStateDict() *pthtest.File {
	f := &pthtest.File{Storages: []pthtest.Storage{
		{Class: "FloatStorage", Data: pthtest.Float32s([]float32{1, 2, 3, 4, 5, 6})},
		{Class: "HalfStorage", Data: []byte{0, 0x3c, 0, 0x40}},
		{Class: "LongStorage", Data: pthtest.Int64s([]int64{7})},
	}, Metadata: true}
	f.Entries = []pthtest.Entry{
		{Name: "w", Storage: 0, Shape: []int{2, 3}},
		{Name: "wt", Storage: 0, Shape: []int{3, 2}, Stride: []int{1, 3}},
		{Name: "h", Storage: 1, Shape: []int{2}},
		{Name: "n", Storage: 2, Shape: []int{}},
	}
	return f
}

// statePickle builds a pickle: OrderedDict() with the items entries() pushes, then STOP.
func statePickle(entries func(p *pthtest.Pickler)) []byte {
	p := pthtest.NewPickler()
	p.Global("collections", "OrderedDict")
	p.EmptyTuple()
	p.Reduce()
	p.Put()
	p.Mark()
	entries(p)
	p.Raw('u', '.')
	return p.Bytes()
}

// tensorOf pushes _rebuild_tensor_v2 of a FloatStorage with the given size and stride.
func tensorOf(p *pthtest.Pickler, key string, numel, offset int, size, stride []int, hooks func()) {
	p.Global("torch._utils", "_rebuild_tensor_v2")
	p.Mark()
	p.Mark()
	p.Str("storage")
	p.Global("torch", "FloatStorage")
	p.Str(key)
	p.Str("cpu")
	p.Int(numel)
	p.Tuple(5)
	p.Raw('Q')
	p.Int(offset)
	p.Ints(size)
	p.Ints(stride)
	p.Bool(false)
	if hooks != nil {
		hooks()
	} else {
		p.Global("collections", "OrderedDict")
		p.EmptyTuple()
		p.Reduce()
	}
	p.Tuple(6)
	p.Reduce()
}

func TestRefusesWhatIsNotAStateDict(t *testing.T) {
	valid := build(t, smallStateDict())
	withPickle := func(p []byte) []byte {
		f := smallStateDict()
		f.Pickle = p
		return build(t, f)
	}
	withFile := func(edit func(f *pthtest.File)) []byte {
		f := smallStateDict()
		edit(f)
		return build(t, f)
	}
	call := func(module, name string, arg string) []byte { // module.name(arg) as the whole pickle
		p := pthtest.NewPickler()
		p.Global(module, name)
		p.Str(arg)
		p.Tuple(1)
		p.Reduce()
		p.Raw('.')
		return p.Bytes()
	}
	inEntry := func(module, name string) []byte { // a state dict whose second entry is module.name("x")
		return statePickle(func(p *pthtest.Pickler) {
			p.Str("w")
			tensorOf(p, "0", 6, 0, []int{6}, []int{1}, nil)
			p.Str("evil")
			p.Global(module, name)
			p.Str("x")
			p.Tuple(1)
			p.Reduce()
		})
	}
	corrupt := append([]byte{}, valid...)
	at := bytes.Index(corrupt, pthtest.Float32s([]float32{1, 2, 3, 4, 5, 6}))
	corrupt[at+5] ^= 0x40
	lots := make([]byte, 1<<20)
	for i := range lots {
		lots[i] = '('
	}
	// Two hundred transposed views of one 100x100 storage: 8 MB of copies from a 60 KB file.
	views := &pthtest.File{Storages: []pthtest.Storage{{Class: "FloatStorage", Data: make([]byte, 4*100*100)}}}
	for i := range 200 {
		views.Entries = append(views.Entries, pthtest.Entry{Name: "t" + strconv.Itoa(i), Shape: []int{100, 100}, Stride: []int{1, 100}})
	}
	for _, tc := range []struct {
		name string
		file []byte
		want []string
	}{
		{"posix.system", withPickle(call("posix", "system", "echo owned")), []string{"global posix.system", "refused", "state_dict"}},
		{"builtins.eval in an entry", withPickle(inEntry("builtins", "eval")), []string{"builtins.eval", "byte"}},
		{"os.system", withPickle(inEntry("os", "system")), []string{"os.system"}},
		// gopickle answers these two itself, before its FindClass hook; the scan refuses them first.
		{"copy_reg._reconstructor", withPickle(call("copy_reg", "_reconstructor", "x")), []string{"copy_reg._reconstructor"}},
		{"__builtin__.object", withPickle(call("__builtin__", "object", "x")), []string{"__builtin__.object"}},
		{"a pickled model", withPickle(call("torchvision.models.resnet", "ResNet", "x")), []string{"torchvision.models.resnet.ResNet", "model.state_dict()"}},
		{"a dotted name", withPickle(call("torch", "_utils._rebuild_tensor_v2", "x")), []string{"torch._utils._rebuild_tensor_v2 (byte 2)"}},
		{"an integer storage", withPickle(call("torch", "IntStorage", "x")), []string{"torch.IntStorage"}},
		{"a name with a newline", withPickle([]byte("\x80\x02cos\nsystem\x00\n.")), []string{`"system\x00"`}},
		{"protocol 4", withPickle([]byte("\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00.")), []string{"FRAME", "protocol 2"}},
		{"STACK_GLOBAL", withPickle([]byte("\x80\x02X\x02\x00\x00\x00osX\x06\x00\x00\x00system\x93.")), []string{"STACK_GLOBAL"}},
		{"not an opcode", withPickle([]byte("\x80\x02\xff.")), []string{"0xff is not a pickle opcode"}},
		{"no STOP", withPickle([]byte("\x80\x02K\x01")), []string{"without STOP"}},
		{"string past the end", withPickle([]byte("\x80\x02X\xff\xff\x00\x00ab.")), []string{"BINUNICODE", "truncated"}},
		{"GLOBAL cut short", withPickle([]byte("\x80\x02ctorch")), []string{"GLOBAL without its two lines"}},
		{"a million MARKs", withPickle(lots), []string{"more than 256 MB"}},
		{"odd SETITEMS", withPickle(statePickle(func(p *pthtest.Pickler) { p.Str("w") })), []string{"malformed pickle"}},
		{"not a dict", withPickle([]byte("\x80\x02]q\x00.")), []string{"holds a list, not a state dict"}},
		{"an int entry", withPickle(statePickle(func(p *pthtest.Pickler) {
			p.Str("epoch")
			p.Int(90)
			p.Str("w")
			tensorOf(p, "0", 6, 0, []int{6}, []int{1}, nil)
		})), []string{`entry "epoch" is an int, not a tensor`}},
		{"backward hooks", withPickle(statePickle(func(p *pthtest.Pickler) {
			p.Str("w")
			tensorOf(p, "0", 6, 0, []int{6}, []int{1}, func() { p.EmptyDict(); p.Int(1); p.Int(2); p.Raw('s') })
		})), []string{"backward hooks"}},
		{"storage named twice", withPickle(statePickle(func(p *pthtest.Pickler) {
			p.Str("w")
			tensorOf(p, "0", 6, 0, []int{6}, []int{1}, nil)
			p.Str("v")
			tensorOf(p, "0", 5, 0, []int{5}, []int{1}, nil)
		})), []string{`storage "0" is named twice`}},
		{"the same name twice", withPickle(func() []byte {
			p := pthtest.NewPickler()
			p.EmptyDict()
			p.Mark()
			p.Str("w")
			tensorOf(p, "0", 6, 0, []int{6}, []int{1}, nil)
			p.Str("w")
			tensorOf(p, "0", 6, 0, []int{6}, []int{1}, nil)
			p.Raw('u', '.')
			return p.Bytes()
		}()), []string{`holds "w" twice`}},
		{"view past the storage", withPickle(statePickle(func(p *pthtest.Pickler) {
			p.Str("w")
			tensorOf(p, "0", 6, 2, []int{5}, []int{1}, nil)
		})), []string{`tensor "w": size [5], stride [1] at storage offset 2`, "past the end of the storage"}},
		{"more elements than the storage", withPickle(statePickle(func(p *pthtest.Pickler) {
			p.Str("w")
			tensorOf(p, "0", 6, 0, []int{1 << 40, 1 << 40}, []int{0, 0}, nil)
		})), []string{"more elements than the storage holds"}},
		{"a stride that overflows", withPickle(statePickle(func(p *pthtest.Pickler) {
			p.Str("w")
			tensorOf(p, "0", 6, 0, []int{2, 3}, []int{1 << 62, 1}, nil)
		})), []string{"reach past the end"}},
		{"a storage larger than the file", withPickle(statePickle(func(p *pthtest.Pickler) {
			p.Str("w")
			tensorOf(p, "0", 1<<40, 0, []int{6}, []int{1}, nil)
		})), []string{"claims 1099511627776 FloatStorage elements"}},
		{"storage shorter than its numel", withFile(func(f *pthtest.File) { f.Storages[0].Numel = 7 }),
			[]string{`record "archive/data/0" holds 24 bytes; its 7 FloatStorage elements need 28`}},
		{"storage shorter than the view", withFile(func(f *pthtest.File) { f.Entries[0].Shape = []int{2, 4} }),
			[]string{`tensor "w": size [2 4], stride [4 1]`, "storage \"0\" holds 6 FloatStorage elements"}},
		{"a storage record missing", withPickle(statePickle(func(p *pthtest.Pickler) {
			p.Str("w")
			tensorOf(p, "9", 6, 0, []int{6}, []int{1}, nil)
		})), []string{`tensor "w": no record "archive/data/9" for storage "9" (6 FloatStorage elements)`}},
		{"a storage key with a newline", withPickle(statePickle(func(p *pthtest.Pickler) {
			p.Str("w")
			tensorOf(p, "a\nb", 6, 0, []int{6}, []int{1}, nil)
		})), []string{`no record "archive/data/a\nb" for storage "a\nb"`}},
		{"big-endian", withFile(func(f *pthtest.File) { f.ByteOrder = "big" }), []string{`"archive/byteorder" is "big"`, "little-endian"}},
		{"damaged storage", corrupt, []string{`record "archive/data/0": checksum`}},
		{"strided copies beyond the file's size", build(t, views), []string{"copying strided tensors"}},
		{"truncated in the directory", valid[:len(valid)-10], []string{"zip directory"}},
		{"truncated in half", valid[:len(valid)/2], []string{"zip directory"}},
		{"only a zip header", []byte("PK\x03\x04"), []string{"zip directory"}},
		{"empty", nil, []string{"does not start with a zip header"}},
		{"not a zip", []byte("GIF89a........"), []string{"does not start with a zip header", "47 49 46 38"}},
		{"legacy tar", func() []byte {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			tw.WriteHeader(&tar.Header{Name: "sys_info", Mode: 0o644, Size: 1})
			tw.Write([]byte("x"))
			tw.Close()
			return buf.Bytes()
		}(), []string{"oldest (tar) format", "save it again"}},
		{"legacy torch.save", append([]byte("\x80\x02\x8a\x0a"), append(legacyMagic, ".\x80\x02M\xe9\x03."...)...), []string{"PyTorch < 1.6", "save it again"}},
		{"no data.pkl", zipOf(t, zip.Store, "archive/version", "3\n"), []string{`no "archive/data.pkl" record`, `(records: "archive/version")`}},
		{"not in a folder", zipOf(t, zip.Store, "data.pkl", "."), []string{`first record "data.pkl" is not inside a folder`}},
		{"TorchScript", zipOf(t, zip.Store, "m/data.pkl", ".", "m/constants.pkl", "."), []string{"TorchScript"}},
		{"compressed", zipOf(t, zip.Deflate, "archive/data.pkl", "\x80\x02}."), []string{`record "archive/data.pkl" is compressed (method 8)`}},
		{"a control character in the folder", zipOf(t, zip.Store, "a\nb/data.pkl", "."), []string{`first record "a\nb/data.pkl" has control characters`}},
		{"twice the same record", zipOf(t, zip.Store, "archive/data.pkl", "\x80\x02}.", "archive/data.pkl", "."), []string{`holds "archive/data.pkl" twice`}},
	} {
		_, err := Parse(tc.file)
		if err == nil {
			t.Errorf("%s: Parse accepted it", tc.name)
			continue
		}
		t.Logf("%s: %v", tc.name, err)
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error spans lines: %q", tc.name, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
	}
	if _, err := Parse(valid); err != nil {
		t.Fatalf("the file every case above breaks is valid: %v", err)
	}
}
