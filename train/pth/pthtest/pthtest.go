// Package pthtest writes files the way torch.save (PyTorch >= 1.6) lays them out, for tests that
// have no PyTorch: a zip archive whose records sit in one folder, data.pkl first, then byteorder,
// one data/<key> record per storage (keys in string order), version and .data/serialization_id,
// each record stored uncompressed with its data aligned to 64 bytes by an "FB" extra field.
//
// The state-dict pickle is written opcode for opcode as CPython's pickler writes it at
// torch.save's default protocol 2, memo and all; pth's tests hold it to a pickle that CPython
// itself wrote (train/pth/testdata/cpython_state_dict.pkl).
package pthtest

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// ElementSize gives the bytes per element of the storage classes torch.save names.
var ElementSize = map[string]int{
	"FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "DoubleStorage": 8, "LongStorage": 8,
	"IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
}

// Storage is one storage record.
type Storage struct {
	Class string // FloatStorage, HalfStorage, BFloat16Storage, DoubleStorage, LongStorage, ...
	Data  []byte // the elements, little-endian
	// Numel is the element count the pickle claims; 0: len(Data) / the class's element size.
	Numel int
}

// Entry is one tensor of the state dict: a view of a storage.
type Entry struct {
	Name    string
	Storage int // index into File.Storages
	Offset  int // in elements
	Shape   []int
	Stride  []int // nil: contiguous (row-major)
	// Parameter saves it as an nn.Parameter (torch._utils._rebuild_parameter), as
	// state_dict(keep_vars=True) does.
	Parameter bool
}

// File is what torch.save writes for a state dict.
type File struct {
	Archive  string // the folder of every record; "": "archive"
	Storages []Storage
	Entries  []Entry
	// Metadata writes the _metadata attribute state_dict() sets (each module's version) and the
	// BUILD that restores it.
	Metadata bool
	// ByteOrder is the byteorder record; "": "little"; "-": no record (PyTorch < 1.13).
	ByteOrder string
	// Pickle, when set, is written as data.pkl instead of the state dict's pickle.
	Pickle []byte
}

// Contiguous is the row-major stride of a shape.
func Contiguous(shape []int) []int {
	stride := make([]int, len(shape))
	n := 1
	for i := len(shape) - 1; i >= 0; i-- {
		stride[i] = n
		n *= shape[i]
	}
	return stride
}

// Float32s encodes values as FloatStorage bytes.
func Float32s(v []float32) []byte {
	out := make([]byte, 0, 4*len(v))
	for _, x := range v {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(x))
	}
	return out
}

// Float64s encodes values as DoubleStorage bytes.
func Float64s(v []float64) []byte {
	out := make([]byte, 0, 8*len(v))
	for _, x := range v {
		out = binary.LittleEndian.AppendUint64(out, math.Float64bits(x))
	}
	return out
}

// Int64s encodes values as LongStorage bytes.
func Int64s(v []int64) []byte {
	out := make([]byte, 0, 8*len(v))
	for _, x := range v {
		out = binary.LittleEndian.AppendUint64(out, uint64(x))
	}
	return out
}

// key is the storage key torch.save gives the i-th storage it meets.
func key(i int) string { return strconv.Itoa(i) }

// StatePickle is data.pkl for the state dict: an OrderedDict of name -> tensor, each
// torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()), the
// storage a persistent id ('storage', torch.<Class>, key, 'cpu', numel).
func (f *File) StatePickle() []byte {
	p := NewPickler()
	p.Global("collections", "OrderedDict")
	p.EmptyTuple()
	p.Reduce()
	p.Put()
	p.SetItems(len(f.Entries), func(i int) {
		e := f.Entries[i]
		p.Str(e.Name)
		if e.Parameter { // (_rebuild_parameter, (tensor, requires_grad, OrderedDict()))
			p.Global("torch._utils", "_rebuild_parameter")
		}
		p.Global("torch._utils", "_rebuild_tensor_v2")
		p.Mark()
		st := f.Storages[e.Storage]
		numel := st.Numel
		if numel == 0 && ElementSize[st.Class] > 0 {
			numel = len(st.Data) / ElementSize[st.Class]
		}
		p.Mark()
		p.Str("storage")
		p.Global("torch", st.Class)
		p.Str(key(e.Storage))
		p.Str("cpu")
		p.Int(numel)
		p.Tuple(5)
		p.Raw('Q') // BINPERSID
		p.Int(e.Offset)
		p.Ints(e.Shape)
		stride := e.Stride
		if stride == nil {
			stride = Contiguous(e.Shape)
		}
		p.Ints(stride)
		p.Bool(false)
		p.Global("collections", "OrderedDict")
		p.EmptyTuple()
		p.Reduce()
		p.Put()
		p.Tuple(6)
		p.Reduce()
		p.Put()
		if e.Parameter {
			p.Bool(true)
			p.Global("collections", "OrderedDict")
			p.EmptyTuple()
			p.Reduce()
			p.Put()
			p.Tuple(3)
			p.Reduce()
			p.Put()
		}
	})
	if f.Metadata {
		// state_dict() sets _metadata = OrderedDict(module prefix -> {"version": 1}); pickle
		// saves it as the OrderedDict's state: {"_metadata": ...}, then BUILD.
		var modules []string
		seen := map[string]bool{}
		for _, e := range f.Entries {
			m := ""
			if i := strings.LastIndexByte(e.Name, '.'); i >= 0 {
				m = e.Name[:i]
			}
			for _, name := range []string{"", m} {
				if !seen[name] {
					seen[name] = true
					modules = append(modules, name)
				}
			}
		}
		p.EmptyDict()
		p.Put()
		p.Str("_metadata")
		p.Global("collections", "OrderedDict")
		p.EmptyTuple()
		p.Reduce()
		p.Put()
		p.SetItems(len(modules), func(i int) {
			p.Str(modules[i])
			p.EmptyDict()
			p.Put()
			p.Str("version")
			p.Int(1)
			p.Raw('s') // SETITEM
		})
		p.Raw('s') // SETITEM
		p.Raw('b') // BUILD
	}
	p.Raw('.') // STOP
	return p.Bytes()
}

// Bytes is the whole file.
func (f *File) Bytes() ([]byte, error) {
	archive := f.Archive
	if archive == "" {
		archive = "archive"
	}
	type record struct {
		name string
		data []byte
	}
	pkl := f.Pickle
	if pkl == nil {
		for _, e := range f.Entries {
			if e.Storage < 0 || e.Storage >= len(f.Storages) {
				return nil, fmt.Errorf("pthtest: entry %s names storage %d of %d", e.Name, e.Storage, len(f.Storages))
			}
		}
		pkl = f.StatePickle()
	}
	records := []record{{"data.pkl", pkl}}
	switch f.ByteOrder {
	case "":
		records = append(records, record{"byteorder", []byte("little")})
	case "-":
	default:
		records = append(records, record{"byteorder", []byte(f.ByteOrder)})
	}
	keys := make([]int, len(f.Storages))
	for i := range keys {
		keys[i] = i
	}
	sort.Slice(keys, func(a, b int) bool { return key(keys[a]) < key(keys[b]) })
	for _, i := range keys {
		records = append(records, record{"data/" + key(i), f.Storages[i].Data})
	}
	records = append(records, record{"version", []byte("3\n")}, record{".data/serialization_id", []byte("1234567890123456789012345678901234567890")})

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, r := range records {
		if err := zw.Flush(); err != nil {
			return nil, err
		}
		name := archive + "/" + r.name
		// The local header is 30 bytes, the name, and the extra field ("FB", its length, padding).
		pad := (64 - (buf.Len()+30+len(name)+4)%64) % 64
		extra := binary.LittleEndian.AppendUint16([]byte("FB"), uint16(pad))
		extra = append(extra, bytes.Repeat([]byte("Z"), pad)...)
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Extra: extra})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(r.data); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Pickler writes pickle opcodes as CPython's pickler does at protocol 2: strings, globals and
// non-empty tuples are memoized (BINPUT), a string or global met again is fetched (BINGET).
type Pickler struct {
	buf  []byte
	memo map[string]int
}

// NewPickler starts a protocol-2 pickle.
func NewPickler() *Pickler {
	return &Pickler{buf: []byte{0x80, 2}, memo: map[string]int{}}
}

// Bytes returns the pickle so far.
func (p *Pickler) Bytes() []byte { return p.buf }

// Raw writes opcodes and arguments as they are.
func (p *Pickler) Raw(b ...byte) { p.buf = append(p.buf, b...) }

// Put memoizes the top of the stack under the next index.
func (p *Pickler) Put() {
	p.put(len(p.memo))
	p.memo[fmt.Sprintf("#%d", len(p.memo))] = len(p.memo)
}

func (p *Pickler) put(i int) {
	if i < 256 {
		p.Raw('q', byte(i))
	} else {
		p.Raw('r')
		p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(i))
	}
}

// get fetches a memoized value, or reports that k is new (and takes the next index for it).
func (p *Pickler) get(k string) bool {
	if i, ok := p.memo[k]; ok {
		if i < 256 {
			p.Raw('h', byte(i))
		} else {
			p.Raw('j')
			p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(i))
		}
		return true
	}
	return false
}

func (p *Pickler) remember(k string) {
	i := len(p.memo)
	p.memo[k] = i
	p.put(i)
}

// Global pushes module.name (GLOBAL).
func (p *Pickler) Global(module, name string) {
	k := "global " + module + "\n" + name
	if p.get(k) {
		return
	}
	p.Raw('c')
	p.Raw([]byte(module + "\n" + name + "\n")...)
	p.remember(k)
}

// Str pushes a str (BINUNICODE).
func (p *Pickler) Str(s string) {
	k := "str " + s
	if p.get(k) {
		return
	}
	p.Raw('X')
	p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(len(s)))
	p.Raw([]byte(s)...)
	p.remember(k)
}

// Int pushes an int in the shortest form CPython picks.
func (p *Pickler) Int(v int) {
	switch {
	case v >= 0 && v <= 0xff:
		p.Raw('K', byte(v))
	case v >= 0 && v <= 0xffff:
		p.Raw('M')
		p.buf = binary.LittleEndian.AppendUint16(p.buf, uint16(v))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		p.Raw('J')
		p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(int32(v)))
	default: // LONG1: two's complement, little-endian, as few bytes as hold the sign
		var b []byte
		for x := v; ; x >>= 8 {
			b = append(b, byte(x))
			if (x >= -128 && x < 128) && (x < 0) == (b[len(b)-1]&0x80 != 0) {
				break
			}
		}
		p.Raw(0x8a, byte(len(b)))
		p.Raw(b...)
	}
}

// Bool pushes True or False.
func (p *Pickler) Bool(v bool) {
	if v {
		p.Raw(0x88)
	} else {
		p.Raw(0x89)
	}
}

// Mark pushes a MARK.
func (p *Pickler) Mark() { p.Raw('(') }

// EmptyTuple pushes () (not memoized, as in CPython).
func (p *Pickler) EmptyTuple() { p.Raw(')') }

// EmptyDict pushes {}.
func (p *Pickler) EmptyDict() { p.Raw('}') }

// Reduce calls the callable below the argument tuple.
func (p *Pickler) Reduce() { p.Raw('R') }

// Tuple ends a tuple of n items and memoizes it. Up to 3 items are pushed as they are (TUPLE1,
// TUPLE2, TUPLE3); more must follow a Mark.
func (p *Pickler) Tuple(n int) {
	switch n {
	case 0:
		p.Raw(')')
		return
	case 1, 2, 3:
		p.Raw(0x84 + byte(n))
	default:
		p.Raw('t')
	}
	p.Put()
}

// Ints pushes a tuple of ints.
func (p *Pickler) Ints(v []int) {
	if len(v) > 3 {
		p.Mark()
	}
	for _, x := range v {
		p.Int(x)
	}
	p.Tuple(len(v))
}

// SetItems adds n key/value pairs, each pushed by item(i), to the dict on the stack, in
// CPython's batches of 1000 (SETITEMS after a MARK, SETITEM for a batch of one).
func (p *Pickler) SetItems(n int, item func(i int)) {
	for start := 0; start < n; start += 1000 {
		end := min(start+1000, n)
		if end-start > 1 {
			p.Mark()
		}
		for i := start; i < end; i++ {
			item(i)
		}
		if end-start > 1 {
			p.Raw('u')
		} else {
			p.Raw('s')
		}
	}
}
