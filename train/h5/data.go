package h5

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// Class is the kind of values a datatype holds.
type Class int

const (
	ClassInt Class = iota
	ClassFloat
	ClassString // fixed-length or variable-length
	ClassOther  // compound, enum, reference, ...: not decoded
)

// Datatype is a parsed datatype message (spec IV.A.2.d), as far as this package decodes it.
type Datatype struct {
	Class     Class
	Size      int // bytes per element (for a variable-length string: its heap reference)
	BigEndian bool
	Signed    bool
	VarLen    bool // a variable-length string, kept in the global heap
	hdfClass  int  // the file's class number, for messages
}

var classNames = []string{"fixed-point", "floating-point", "time", "string", "bitfield", "opaque", "compound",
	"reference", "enum", "variable-length", "array", "complex"}

func (t Datatype) String() string {
	order := ""
	if t.BigEndian {
		order = " big-endian"
	}
	switch t.Class {
	case ClassFloat:
		return fmt.Sprintf("float%d%s", 8*t.Size, order)
	case ClassInt:
		s := "int"
		if !t.Signed {
			s = "uint"
		}
		return fmt.Sprintf("%s%d%s", s, 8*t.Size, order)
	case ClassString:
		if t.VarLen {
			return "variable-length string"
		}
		return fmt.Sprintf("string of %d bytes", t.Size)
	}
	if t.hdfClass >= 0 && t.hdfClass < len(classNames) {
		return classNames[t.hdfClass] + " type"
	}
	return fmt.Sprintf("datatype class %d", t.hdfClass)
}

// datatype parses a datatype message.
func (f *File) datatype(b []byte) (Datatype, error) {
	r := &reader{b: b}
	cv := r.u8()
	bits := r.bytes(3)
	size := r.u32()
	if r.err != nil {
		return Datatype{}, fmt.Errorf("datatype message: %w", r.err)
	}
	t := Datatype{hdfClass: int(cv & 0x0f), Size: int(size), Class: ClassOther}
	if size == 0 || size > 1<<16 {
		return t, fmt.Errorf("datatype of %d bytes per element", size)
	}
	switch t.hdfClass {
	case 0: // fixed-point
		t.Class, t.BigEndian, t.Signed = ClassInt, bits[0]&1 != 0, bits[0]&8 != 0
		if size != 1 && size != 2 && size != 4 && size != 8 {
			return t, fmt.Errorf("integers of %d bytes are not supported", size)
		}
	case 1: // floating-point
		t.Class, t.BigEndian = ClassFloat, bits[0]&1 != 0
		if bits[0]&0x40 != 0 {
			return t, errors.New("VAX-order floats are not supported")
		}
		r.skip(4) // bit offset, bit precision
		_, esize, _, msize := r.u8(), r.u8(), r.u8(), r.u8()
		if r.err != nil {
			return t, fmt.Errorf("float datatype: %w", r.err)
		}
		if !(size == 4 && esize == 8 && msize == 23) && !(size == 8 && esize == 11 && msize == 52) {
			return t, fmt.Errorf("floats of %d bytes (exponent %d bits, mantissa %d bits) are not supported; want IEEE float32 or float64", size, esize, msize)
		}
	case 3: // string
		t.Class = ClassString
	case 9: // variable-length
		if bits[0]&0x0f != 1 {
			return t, errors.New("variable-length sequences are not supported (variable-length strings are)")
		}
		t.Class, t.VarLen = ClassString, true
		if int(size) != 4+f.offSize+4 {
			return t, fmt.Errorf("variable-length string of %d bytes per element, want %d", size, 4+f.offSize+4)
		}
	}
	return t, nil
}

// dataspace parses a dataspace message (spec IV.A.2.b): the dimensions, or null (no data).
func (f *File) dataspace(b []byte) (dims []int, null bool, err error) {
	r := &reader{b: b}
	version, rank, flags := r.u8(), int(r.u8()), r.u8()
	switch version {
	case 1:
		r.skip(5)
	case 2:
		null = r.u8() == 2
	default:
		if r.err == nil {
			return nil, false, fmt.Errorf("dataspace message version %d, want 1 or 2", version)
		}
	}
	if rank > maxRank {
		return nil, false, fmt.Errorf("dataspace of rank %d (at most %d)", rank, maxRank)
	}
	dims = make([]int, rank)
	for i := range dims {
		d := r.uint(f.lenSize)
		if d > maxValueSize {
			return nil, false, fmt.Errorf("dataspace dimension %d is %d, too large", i, d)
		}
		dims[i] = int(d)
	}
	_ = flags // maximum dimensions and permutations do not change the data
	if r.err != nil {
		return nil, false, fmt.Errorf("dataspace message: %w", r.err)
	}
	return dims, null, nil
}

// count is the number of elements of dims, or an error when it exceeds limit.
func count(dims []int, limit int) (int, error) {
	n := 1
	for _, d := range dims {
		if d == 0 {
			return 0, nil
		}
		if n > limit/d {
			return 0, fmt.Errorf("shape %v holds more than %d elements", dims, limit)
		}
		n *= d
	}
	return n, nil
}

// limit is the largest decoded value (bytes) the file can justify.
func (f *File) limit() int {
	return int(min(int64(maxValueSize), int64(len(f.b))*maxExpansion+1<<20))
}

// Value is decoded data: Strings for a string type, Numbers for integers and floats.
type Value struct {
	Type    Datatype
	Shape   []int
	Strings []string
	Numbers []float64
}

// decode turns raw elements into a Value.
func (f *File) decode(t Datatype, shape []int, raw []byte) (Value, error) {
	v := Value{Type: t, Shape: shape}
	n, err := count(shape, f.limit())
	if err != nil {
		return v, err
	}
	if len(raw) < n*t.Size {
		return v, fmt.Errorf("%d bytes of data for %d elements of %s", len(raw), n, t)
	}
	switch t.Class {
	case ClassString:
		v.Strings = make([]string, 0, n)
		total := 0
		for i := range n {
			e := raw[i*t.Size : (i+1)*t.Size]
			if !t.VarLen {
				s, _, _ := strings.Cut(string(e), "\x00")
				v.Strings = append(v.Strings, strings.TrimRight(s, " "))
				continue
			}
			s, err := f.vlenString(e)
			if err != nil {
				return v, err
			}
			// Many elements may name one large heap object: bound the copies, not the names.
			if total += len(s); total > f.limit() {
				return v, fmt.Errorf("variable-length strings of more than %d bytes in all", f.limit())
			}
			v.Strings = append(v.Strings, s)
		}
	case ClassInt, ClassFloat:
		v.Numbers = make([]float64, n)
		for i := range v.Numbers {
			v.Numbers[i] = number(t, raw[i*t.Size:(i+1)*t.Size])
		}
	default:
		return v, fmt.Errorf("values of %s are not supported", t)
	}
	return v, nil
}

// number decodes one integer or float element.
func number(t Datatype, e []byte) float64 {
	var order binary.ByteOrder = binary.LittleEndian
	if t.BigEndian {
		order = binary.BigEndian
	}
	switch {
	case t.Class == ClassFloat && t.Size == 4:
		return float64(math.Float32frombits(order.Uint32(e)))
	case t.Class == ClassFloat:
		return math.Float64frombits(order.Uint64(e))
	}
	var u uint64
	switch t.Size {
	case 1:
		u = uint64(e[0])
	case 2:
		u = uint64(order.Uint16(e))
	case 4:
		u = uint64(order.Uint32(e))
	default:
		u = order.Uint64(e)
	}
	if t.Signed {
		shift := 64 - 8*t.Size
		return float64(int64(u<<shift) >> shift)
	}
	return float64(u)
}

// vlenString reads a variable-length string element: its length, then the global heap
// collection and the object's index in it.
func (f *File) vlenString(e []byte) (string, error) {
	r := &reader{b: e}
	n := r.u32()
	addr := r.uint(f.offSize)
	idx := r.u32()
	if r.err != nil {
		return "", r.err
	}
	if n == 0 {
		return "", nil
	}
	obj, err := f.heapObject(addr, idx)
	if err != nil {
		return "", err
	}
	if uint64(n) > uint64(len(obj)) {
		return "", fmt.Errorf("variable-length string of %d bytes in a heap object of %d", n, len(obj))
	}
	return string(obj[:n]), nil
}

// heapObject returns object idx of the global heap collection at addr (spec III.E).
func (f *File) heapObject(addr uint64, idx uint32) ([]byte, error) {
	objs, ok := f.heaps[addr]
	if !ok {
		if len(f.heaps) > 1<<16 {
			return nil, errors.New("more than 65536 global heap collections")
		}
		r := f.at(addr)
		start := r.pos
		r.sig("GCOL")
		r.skip(4) // version, reserved
		size := r.uint(f.lenSize)
		if r.err != nil {
			return nil, fmt.Errorf("global heap at %d: %w", addr, r.err)
		}
		if size > uint64(len(r.b)-start) || size < 16 {
			return nil, fmt.Errorf("global heap at %d: collection of %d bytes does not fit the file", addr, size)
		}
		c := &reader{b: r.b[:start+int(size)], pos: r.pos}
		objs = map[uint16][]byte{}
		for len(c.b)-c.pos >= 8+f.lenSize {
			id := c.u16()
			c.skip(6) // reference count, reserved
			n := c.uint(f.lenSize)
			if id == 0 || c.err != nil {
				break // free space
			}
			if n > uint64(len(c.b)-c.pos) {
				return nil, fmt.Errorf("global heap at %d: object %d of %d bytes runs past the collection", addr, id, n)
			}
			objs[id] = c.bytes(int(n))
			c.skip(int((8 - n%8) % 8))
			c.err = nil
		}
		f.heaps[addr] = objs
	}
	obj, ok := objs[uint16(idx)]
	if !ok || idx > math.MaxUint16 {
		return nil, fmt.Errorf("global heap at %d has no object %d", addr, idx)
	}
	return obj, nil
}

// Attribute is a named value attached to a group or dataset.
type Attribute struct {
	Name string
	Value
}

// Attrs decodes every attribute of the object (compact storage, in the object header).
func (o *Object) Attrs() ([]Attribute, error) {
	if m, ok := o.find(msgAttrInfo); ok {
		r := &reader{b: m.data}
		r.skip(1)
		if fl := r.u8(); fl&1 != 0 {
			r.skip(2)
		}
		if heap := r.uint(o.f.offSize); r.err == nil && !o.f.undefined(heap) {
			return nil, fmt.Errorf("%s: dense attribute storage (a fractal heap) is not supported", o.Path)
		}
	}
	var out []Attribute
	for _, m := range o.msgs {
		if m.typ != msgAttribute {
			continue
		}
		a, err := o.f.attribute(m.data)
		if err != nil {
			return nil, fmt.Errorf("%s: attribute %q: %w", o.Path, a.Name, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// Attr returns one attribute by name; the error wraps ErrNotFound when there is none.
func (o *Object) Attr(name string) (*Attribute, error) {
	as, err := o.Attrs()
	if err != nil {
		return nil, err
	}
	for i := range as {
		if as[i].Name == name {
			return &as[i], nil
		}
	}
	return nil, fmt.Errorf("%w: %s has no attribute %q", ErrNotFound, o.Path, name)
}

// attribute parses an attribute message (spec IV.A.2.m, versions 1 to 3).
func (f *File) attribute(b []byte) (Attribute, error) {
	r := &reader{b: b}
	version, flags := r.u8(), r.u8()
	nameSize, typeSize, spaceSize := int(r.u16()), int(r.u16()), int(r.u16())
	pad := func(n int) int { return n }
	switch version {
	case 1:
		pad = func(n int) int { return (n + 7) &^ 7 }
	case 2:
	case 3:
		r.skip(1) // name character set
	default:
		if r.err == nil {
			return Attribute{}, fmt.Errorf("attribute message version %d, want 1 to 3", version)
		}
	}
	if flags&3 != 0 {
		return Attribute{}, errors.New("shared datatypes or dataspaces in attributes are not supported")
	}
	name, _, _ := strings.Cut(string(r.bytes(nameSize)), "\x00")
	a := Attribute{Name: name}
	r.skip(pad(nameSize) - nameSize)
	tb := r.bytes(typeSize)
	r.skip(pad(typeSize) - typeSize)
	sb := r.bytes(spaceSize)
	r.skip(pad(spaceSize) - spaceSize)
	if r.err != nil {
		return a, r.err
	}
	t, err := f.datatype(tb)
	if err != nil {
		return a, err
	}
	dims, null, err := f.dataspace(sb)
	if err != nil {
		return a, err
	}
	if null {
		a.Value = Value{Type: t}
		return a, nil
	}
	n, err := count(dims, f.limit())
	if err != nil {
		return a, err
	}
	if n == 0 {
		a.Value = Value{Type: t, Shape: dims}
		return a, nil
	}
	if n > (len(b)-r.pos)/t.Size {
		return a, fmt.Errorf("%d elements of %s do not fit the %d bytes left in the message", n, t, len(b)-r.pos)
	}
	a.Value, err = f.decode(t, dims, r.b[r.pos:])
	return a, err
}

// Dataset is a dataset's description; Read and Float32s read its values.
type Dataset struct {
	Path  string
	Type  Datatype
	Shape []int
	o     *Object
}

// Dataset describes the object as a dataset.
func (o *Object) Dataset() (*Dataset, error) {
	tm, ok1 := o.find(msgDatatype)
	sm, ok2 := o.find(msgDataspace)
	if _, ok := o.find(msgLayout); !ok || !ok1 || !ok2 {
		return nil, fmt.Errorf("%s is not a dataset (no datatype, dataspace or layout message)", o.Path)
	}
	if tm.flags&2 != 0 || sm.flags&2 != 0 {
		return nil, fmt.Errorf("%s: shared (committed) datatypes or dataspaces are not supported", o.Path)
	}
	t, err := o.f.datatype(tm.data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Path, err)
	}
	dims, null, err := o.f.dataspace(sm.data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Path, err)
	}
	if null {
		dims = nil
	}
	return &Dataset{Path: o.Path, Type: t, Shape: dims, o: o}, nil
}

// Len is the number of elements.
func (d *Dataset) Len() int {
	n, err := count(d.Shape, maxValueSize)
	if err != nil {
		return -1
	}
	return n
}

// Value reads and decodes the whole dataset.
func (d *Dataset) Value() (Value, error) {
	raw, err := d.raw()
	if err != nil {
		return Value{}, err
	}
	v, err := d.o.f.decode(d.Type, d.Shape, raw)
	if err != nil {
		return v, fmt.Errorf("%s: %w", d.Path, err)
	}
	return v, nil
}

// Float32s reads a float dataset (float32 or float64, either byte order) as float32.
func (d *Dataset) Float32s() ([]float32, error) {
	if d.Type.Class != ClassFloat {
		return nil, fmt.Errorf("%s holds %s, want float32 or float64", d.Path, d.Type)
	}
	raw, err := d.raw()
	if err != nil {
		return nil, err
	}
	n := len(raw) / d.Type.Size
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(number(d.Type, raw[i*d.Type.Size:(i+1)*d.Type.Size]))
	}
	return out, nil
}

// filter is one stage of a filter pipeline.
type filter struct {
	id     uint16
	name   string
	client []uint32
}

// Filter identifiers (spec IV.A.2.l) decoded here.
const (
	filterDeflate    = 1
	filterShuffle    = 2
	filterFletcher32 = 3
)

// filters parses a filter pipeline message.
func (f *File) filters(b []byte) ([]filter, error) {
	r := &reader{b: b}
	version, n := r.u8(), int(r.u8())
	if version == 1 {
		r.skip(6)
	} else if version != 2 && r.err == nil {
		return nil, fmt.Errorf("filter pipeline message version %d, want 1 or 2", version)
	}
	var out []filter
	for range n {
		var fl filter
		fl.id = r.u16()
		nameLen := 0
		if version == 1 || fl.id >= 256 {
			nameLen = int(r.u16())
		}
		r.skip(2) // flags
		nv := int(r.u16())
		if version == 1 {
			nameLen = (nameLen + 7) &^ 7
		}
		fl.name, _, _ = strings.Cut(string(r.bytes(nameLen)), "\x00")
		if nv > len(b) {
			return nil, fmt.Errorf("filter %d: %d client values in a %d-byte message", fl.id, nv, len(b))
		}
		for range nv {
			fl.client = append(fl.client, r.u32())
		}
		if version == 1 && nv%2 == 1 {
			r.skip(4)
		}
		if r.err != nil {
			return nil, fmt.Errorf("filter pipeline message: %w", r.err)
		}
		switch fl.id {
		case filterDeflate, filterShuffle, filterFletcher32:
		default:
			name := fl.name
			if name == "" {
				name = map[uint16]string{4: "szip", 5: "nbit", 6: "scaleoffset", 32000: "lzf", 32001: "blosc", 32004: "lz4", 32015: "zstd"}[fl.id]
			}
			return nil, fmt.Errorf("filter %d (%s) is not supported (deflate, shuffle and fletcher32 are)", fl.id, name)
		}
		out = append(out, fl)
	}
	return out, nil
}

// unfilter undoes the pipeline on one chunk; bit i of mask set means filter i was skipped.
// want is the chunk's decoded size: nothing larger is ever produced.
func unfilter(fs []filter, mask uint32, data []byte, want int) ([]byte, error) {
	for i := len(fs) - 1; i >= 0; i-- {
		if i < 32 && mask&(1<<i) != 0 {
			continue
		}
		switch fs[i].id {
		case filterDeflate:
			zr, err := zlib.NewReader(bytes.NewReader(data))
			if err != nil {
				return nil, fmt.Errorf("deflate: %w", err)
			}
			out, err := io.ReadAll(io.LimitReader(zr, int64(want)+1))
			if err != nil {
				return nil, fmt.Errorf("deflate: %w", err)
			}
			if len(out) > want {
				return nil, fmt.Errorf("deflate: chunk inflates past its %d bytes", want)
			}
			data = out
		case filterShuffle:
			size := 1
			if len(fs[i].client) > 0 {
				size = int(fs[i].client[0])
			}
			if size > 1 && size <= len(data) {
				n := len(data) / size
				out := make([]byte, len(data))
				copy(out[n*size:], data[n*size:])
				for b := range size {
					for e := range n {
						out[e*size+b] = data[b*n+e]
					}
				}
				data = out
			}
		case filterFletcher32:
			if len(data) < 4 {
				return nil, errors.New("fletcher32: chunk shorter than its checksum")
			}
			data = data[:len(data)-4]
		}
	}
	return data, nil
}

// raw reads the dataset's bytes in C order (missing chunks and unallocated storage read as
// zeros, HDF5's default fill value).
func (d *Dataset) raw() ([]byte, error) {
	f := d.o.f
	n, err := count(d.Shape, f.limit()/d.Type.Size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (the file is %d bytes)", d.Path, err, len(f.b))
	}
	size := n * d.Type.Size
	lm, _ := d.o.find(msgLayout)
	r := &reader{b: lm.data}
	version, class := r.u8(), r.u8()
	if r.err != nil {
		return nil, fmt.Errorf("%s: layout message: %w", d.Path, r.err)
	}
	if version < 3 || version > 5 {
		return nil, fmt.Errorf("%s: data layout message version %d is not supported (3 to 5 are)", d.Path, version)
	}
	var pipeline []filter
	if fm, ok := d.o.find(msgFilters); ok {
		if pipeline, err = f.filters(fm.data); err != nil {
			return nil, fmt.Errorf("%s: %w", d.Path, err)
		}
	}
	switch class {
	case 0: // compact
		m := int(r.u16())
		data := r.bytes(m)
		if r.err != nil || m < size {
			return nil, fmt.Errorf("%s: compact data of %d bytes for %d elements of %s", d.Path, m, n, d.Type)
		}
		return data[:size], nil
	case 1: // contiguous
		addr := r.uint(f.offSize)
		r.uint(f.lenSize)
		if r.err != nil {
			return nil, fmt.Errorf("%s: layout message: %w", d.Path, r.err)
		}
		if len(pipeline) > 0 {
			return nil, fmt.Errorf("%s: filters on contiguous data are not supported", d.Path)
		}
		if f.undefined(addr) {
			return make([]byte, size), nil
		}
		dr := f.at(addr)
		data := dr.bytes(size)
		if dr.err != nil {
			return nil, fmt.Errorf("%s: %d bytes of data at %d: %w (the file is truncated?)", d.Path, size, addr, dr.err)
		}
		return data, nil
	case 2:
		return d.chunked(r, version, size, pipeline)
	case 3:
		return nil, fmt.Errorf("%s: virtual datasets are not supported", d.Path)
	}
	return nil, fmt.Errorf("%s: layout class %d is not supported", d.Path, class)
}

// chunked reads a chunked dataset: the layout message's chunk shape and index, then every
// chunk, unfiltered and copied into place.
func (d *Dataset) chunked(r *reader, version uint8, size int, pipeline []filter) ([]byte, error) {
	f := d.o.f
	rank := len(d.Shape)
	// Version 5 (HDF5 2.0) has version 4's fields.
	var flags uint8
	if version >= 4 {
		flags = r.u8()
	}
	nd := int(r.u8())
	if nd != rank+1 {
		if r.err == nil {
			return nil, fmt.Errorf("%s: chunks of rank %d for a dataset of rank %d", d.Path, nd-1, rank)
		}
		return nil, fmt.Errorf("%s: layout message: %w", d.Path, r.err)
	}
	var addr uint64
	encLen := 4
	if version == 3 {
		addr = r.uint(f.offSize)
	} else {
		encLen = int(r.u8())
		if encLen < 1 || encLen > 8 {
			return nil, fmt.Errorf("%s: chunk dimensions encoded in %d bytes", d.Path, encLen)
		}
	}
	chunk := make([]int, rank)
	for i := range nd {
		v := r.uint(encLen)
		if i < rank {
			if v == 0 || v > maxValueSize {
				return nil, fmt.Errorf("%s: chunk dimension %d is %d", d.Path, i, v)
			}
			chunk[i] = int(v)
		}
	}
	chunkN, err := count(chunk, f.limit()/d.Type.Size)
	if err != nil {
		return nil, fmt.Errorf("%s: chunk %w", d.Path, err)
	}
	chunkBytes := chunkN * d.Type.Size
	grid := 1
	for i := range rank {
		grid *= (d.Shape[i] + chunk[i] - 1) / chunk[i]
	}
	out := make([]byte, size)
	if size == 0 {
		return out, nil
	}
	place := func(off []uint64, stored []byte, mask uint32) error {
		data, err := unfilter(pipeline, mask, stored, chunkBytes)
		if err != nil {
			return err
		}
		if len(data) != chunkBytes {
			return fmt.Errorf("chunk at %v decodes to %d bytes, want %d", off, len(data), chunkBytes)
		}
		d.copyChunk(out, data, chunk, off)
		return nil
	}
	var index uint8 = 0 // v1 B-tree (version 3)
	var filteredSize uint64
	var singleMask uint32
	if version >= 4 {
		index = r.u8()
		switch index {
		case 1: // single chunk
			if flags&2 != 0 {
				filteredSize = r.uint(f.lenSize)
				singleMask = r.u32()
			}
		case 2: // implicit
		default:
			name := map[uint8]string{3: "fixed array", 4: "extensible array", 5: "version 2 B-tree"}[index]
			return nil, fmt.Errorf("%s: chunk index %d (%s) is not supported; write the file with h5py's default libver (earliest)", d.Path, index, name)
		}
		addr = r.uint(f.offSize)
	}
	if r.err != nil {
		return nil, fmt.Errorf("%s: layout message: %w", d.Path, r.err)
	}
	if f.undefined(addr) {
		return out, nil
	}
	switch index {
	case 1:
		n := uint64(chunkBytes)
		if flags&2 != 0 {
			n = filteredSize
		}
		cr := f.at(addr)
		if n > uint64(len(cr.b)-cr.pos) {
			return nil, fmt.Errorf("%s: chunk of %d bytes at %d runs past the end of the file", d.Path, n, addr)
		}
		if err := place(make([]uint64, rank), cr.bytes(int(n)), singleMask); err != nil {
			return nil, fmt.Errorf("%s: %w", d.Path, err)
		}
		return out, nil
	case 2:
		if len(pipeline) > 0 {
			return nil, fmt.Errorf("%s: filters with an implicit chunk index are not supported", d.Path)
		}
		cr := f.at(addr)
		if grid > (len(cr.b)-cr.pos)/chunkBytes {
			return nil, fmt.Errorf("%s: %d chunks of %d bytes at %d run past the end of the file", d.Path, grid, chunkBytes, addr)
		}
		off := make([]uint64, rank)
		for range grid {
			if err := place(off, cr.bytes(chunkBytes), 0); err != nil {
				return nil, fmt.Errorf("%s: %w", d.Path, err)
			}
			for k := rank - 1; k >= 0; k-- {
				off[k] += uint64(chunk[k])
				if off[k] < uint64(d.Shape[k]) {
					break
				}
				off[k] = 0
			}
		}
		return out, nil
	}
	// Version 1 B-tree of chunks (node type 1): keys hold each chunk's stored size, filter
	// mask and offset; level-0 children are the chunks.
	seen := map[uint64]bool{}
	leaves := 0
	var walk func(addr uint64, depth int) error
	walk = func(addr uint64, depth int) error {
		if depth > maxDepth {
			return fmt.Errorf("chunk B-tree deeper than %d levels", maxDepth)
		}
		if seen[addr] {
			return fmt.Errorf("chunk B-tree node %d is visited twice (a loop)", addr)
		}
		seen[addr] = true
		t := f.at(addr)
		t.sig("TREE")
		typ, level, entries := t.u8(), t.u8(), int(t.u16())
		t.skip(2 * f.offSize)
		if t.err != nil {
			return fmt.Errorf("chunk B-tree node at %d: %w", addr, t.err)
		}
		if typ != 1 {
			return fmt.Errorf("chunk B-tree node at %d has type %d, want 1", addr, typ)
		}
		keySize := 8 + 8*nd
		if entries*(keySize+f.offSize) > len(t.b)-t.pos {
			return fmt.Errorf("chunk B-tree node at %d: %d entries run past the end of the file", addr, entries)
		}
		off := make([]uint64, nd)
		for range entries {
			stored := uint64(t.u32())
			mask := t.u32()
			for k := range off {
				off[k] = t.uint(8)
			}
			child := t.uint(f.offSize)
			if t.err != nil {
				return fmt.Errorf("chunk B-tree node at %d: %w", addr, t.err)
			}
			if level > 0 {
				if err := walk(child, depth+1); err != nil {
					return err
				}
				continue
			}
			if leaves++; leaves > grid {
				return fmt.Errorf("more chunks than the %d the shape has room for", grid)
			}
			for k := range rank {
				if off[k] >= uint64(d.Shape[k]) || off[k]%uint64(chunk[k]) != 0 {
					return fmt.Errorf("chunk offset %v outside the shape %v or off the chunk grid %v", off[:rank], d.Shape, chunk)
				}
			}
			cr := f.at(child)
			if stored > uint64(len(cr.b)-cr.pos) {
				return fmt.Errorf("chunk of %d bytes at %d runs past the end of the file (%d bytes)", stored, child, len(f.b))
			}
			if err := place(off[:rank], cr.bytes(int(stored)), mask); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(addr, 0); err != nil {
		return nil, fmt.Errorf("%s: %w", d.Path, err)
	}
	return out, nil
}

// copyChunk copies a decoded chunk (C order, shape chunk) at offset off into the dataset's
// bytes, clipping what lies past the dataset's edge.
func (d *Dataset) copyChunk(out, data []byte, chunk []int, off []uint64) {
	rank := len(d.Shape)
	es := d.Type.Size
	if rank == 0 {
		copy(out, data)
		return
	}
	last := rank - 1
	run := min(chunk[last], d.Shape[last]-int(off[last])) * es
	idx := make([]int, rank) // position inside the chunk, last axis always 0
	for {
		src, dst := 0, 0
		inside := true
		for k := range rank {
			src = src*chunk[k] + idx[k]
			p := int(off[k]) + idx[k]
			if p >= d.Shape[k] {
				inside = false
			}
			dst = dst*d.Shape[k] + p
		}
		if inside {
			copy(out[dst*es:dst*es+run], data[src*es:src*es+run])
		}
		k := last - 1
		for ; k >= 0; k-- {
			idx[k]++
			if idx[k] < chunk[k] {
				break
			}
			idx[k] = 0
		}
		if k < 0 {
			return
		}
	}
}
