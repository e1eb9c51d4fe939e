package h5

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"math"
	"slices"
	"testing"
)

// smallFile builds a minimal HDF5 file in the layout h5py writes by default (superblock 0/1,
// object headers 1, a symbol-table root group) holding one group "layer" with a weight_names
// attribute and a float32 dataset "kernel:0", and root attributes with fixed-length and
// variable-length strings (a global heap, with vlen). The h5wasm files in testdata are 5-30 kB,
// mostly the library's block alignment; this one is under 1 kB (5 kB with vlen: a global heap
// collection is 4 kB at least), so that FuzzReadH5 spends its time on the structures. The HDF5
// library itself (h5wasm) reads every variant. With deflate, the dataset is chunked (a v1
// B-tree of chunks, one chunk per row).
func smallFile(deflate, vlen bool) []byte {
	const undef = math.MaxUint64
	var b []byte
	u8 := func(v ...byte) { b = append(b, v...) }
	u16 := func(v uint16) { b = binary.LittleEndian.AppendUint16(b, v) }
	u32 := func(v uint32) { b = binary.LittleEndian.AppendUint32(b, v) }
	u64 := func(v uint64) { b = binary.LittleEndian.AppendUint64(b, v) }
	pad8 := func() {
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
	}
	patch := func(at int, v uint64) { binary.LittleEndian.PutUint64(b[at:], v) }
	msg := func(typ uint16, data []byte) []byte {
		m := binary.LittleEndian.AppendUint16(nil, typ)
		m = binary.LittleEndian.AppendUint16(m, uint16((len(data)+7)&^7))
		m = append(m, 0, 0, 0, 0)
		m = append(m, data...)
		for len(m)%8 != 0 {
			m = append(m, 0)
		}
		return m
	}
	header := func(msgs ...[]byte) int {
		pad8()
		at := len(b)
		body := slices.Concat(msgs...)
		u8(1, 0)
		u16(uint16(len(msgs)))
		u32(1)
		u32(uint32(len(body)))
		u32(0)
		u8(body...)
		return at
	}
	fixedStrings := func(name string, size int, vals ...string) []byte {
		a := []byte{1, 0}
		a = binary.LittleEndian.AppendUint16(a, uint16(len(name)+1))
		dt := []byte{0x13, 0, 0, 0}
		dt = binary.LittleEndian.AppendUint32(dt, uint32(size))
		ds := dataspace1(uint64(len(vals)))
		a = binary.LittleEndian.AppendUint16(a, uint16(len(dt)))
		a = binary.LittleEndian.AppendUint16(a, uint16(len(ds)))
		for _, p := range [][]byte{append([]byte(name), 0), dt, ds} {
			a = append(a, p...)
			for len(a)%8 != 0 {
				a = append(a, 0)
			}
		}
		for _, v := range vals {
			e := make([]byte, size)
			copy(e, v)
			a = append(a, e...)
		}
		return a
	}

	// Superblock 1 (0 with the chunk B-tree's K): offsets and lengths of 8 bytes, every B-tree
	// K 1 (nodes of two children, so that the file needs no room for larger ones); the root
	// symbol table entry at the end.
	u8(signature...)
	u8(1, 0, 0, 0, 0, 8, 8, 0)
	u16(1)
	u16(1)
	u32(0)
	u16(1)
	u16(0)
	u64(0)     // base address
	u64(undef) // free space
	eofAt := len(b)
	u64(0)
	u64(undef) // driver information
	u64(0)     // root: link name offset
	rootAt := len(b)
	u64(0) // root: object header address (patched)
	u32(0)
	u32(0)
	u8(make([]byte, 16)...)

	// The dataset's values (rows 0 and 1 of a 2x3 float32 array), stored first.
	vals := []float32{1.5, -2, 0.25, 3, -0.5, 8}
	raw := make([]byte, 0, 24)
	for _, v := range vals {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
	}
	pad8()
	var layout []byte
	if !deflate {
		dataAt := len(b)
		u8(raw...)
		layout = []byte{3, 1}
		layout = binary.LittleEndian.AppendUint64(layout, uint64(dataAt))
		layout = binary.LittleEndian.AppendUint64(layout, uint64(len(raw)))
	} else {
		var chunks [2]int
		var sizes [2]int
		for r := range 2 {
			var z bytes.Buffer
			zw := zlib.NewWriter(&z)
			zw.Write(raw[12*r : 12*r+12])
			zw.Close()
			pad8()
			chunks[r], sizes[r] = len(b), z.Len()
			u8(z.Bytes()...)
		}
		pad8()
		treeAt := len(b)
		u8('T', 'R', 'E', 'E', 1, 0)
		u16(2)
		u64(undef)
		u64(undef)
		for r := range 3 {
			u32(uint32(sizes[min(r, 1)]))
			u32(0)
			u64(uint64(r)) // row offset
			u64(0)
			u64(0)
			if r < 2 {
				u64(uint64(chunks[r]))
			}
		}
		layout = []byte{3, 2, 3}
		layout = binary.LittleEndian.AppendUint64(layout, uint64(treeAt))
		for _, d := range []uint32{1, 3, 4} {
			layout = binary.LittleEndian.AppendUint32(layout, d)
		}
	}
	msgs := [][]byte{msg(msgDatatype, float32Type(false)), msg(msgDataspace, dataspace1(2, 3)), msg(msgLayout, layout)}
	if deflate {
		fp := []byte{1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 8, 0, 0, 0, 1, 0}
		fp = append(fp, 'd', 'e', 'f', 'l', 'a', 't', 'e', 0)
		fp = append(fp, 6, 0, 0, 0, 0, 0, 0, 0)
		msgs = append(msgs, msg(msgFilters, fp))
	}
	kernelAt := header(msgs...)

	// The group "layer": its own (empty of links) symbol table is not needed for a member
	// lookup; it holds the dataset through a nested symbol table of one entry.
	heapData := []byte{0, 0, 0, 0, 0, 0, 0, 0}
	nameOff := len(heapData)
	heapData = append(heapData, "kernel:0\x00"...)
	for len(heapData)%8 != 0 {
		heapData = append(heapData, 0)
	}
	symbolTable := func(nameOff int, heapData []byte, child int) (btree, heap int) {
		pad8()
		dataAt := len(b)
		u8(heapData...)
		pad8()
		heap = len(b)
		u8('H', 'E', 'A', 'P', 0, 0, 0, 0)
		u64(uint64(len(heapData)))
		u64(1) // no free block: the library's "free list is empty" value
		u64(uint64(dataAt))
		pad8()
		snod := len(b)
		u8('S', 'N', 'O', 'D', 1, 0)
		u16(1)
		u64(uint64(nameOff))
		u64(uint64(child))
		u8(make([]byte, 24)...)
		u8(make([]byte, 40)...) // room for the node's second entry (2K = 2)
		pad8()
		btree = len(b)
		u8('T', 'R', 'E', 'E', 0, 0)
		u16(1)
		u64(undef)
		u64(undef)
		u64(0)
		u64(uint64(snod))
		u64(uint64(nameOff))
		u8(make([]byte, 16)...) // room for a second child and key
		return btree, heap
	}
	bt, hp := symbolTable(nameOff, heapData, kernelAt)
	st := binary.LittleEndian.AppendUint64(nil, uint64(bt))
	st = binary.LittleEndian.AppendUint64(st, uint64(hp))
	layerAt := header(msg(msgSymbolTable, st), msg(msgAttribute, fixedStrings("weight_names", 8, "kernel:0")))

	// A global heap collection with one string, for a variable-length attribute.
	rootMsgs := [][]byte{nil, msg(msgAttribute, fixedStrings("layer_names", 5, "layer"))}
	if vlen {
		pad8()
		gcol := len(b)
		obj := []byte("tensorflow")
		u8('G', 'C', 'O', 'L', 1, 0, 0, 0)
		sizeAt := len(b)
		u64(0)
		u16(1)
		u16(1)
		u32(0)
		u64(uint64(len(obj)))
		u8(obj...)
		pad8()
		// The rest of the collection is free space: the library wants collections of 4096 bytes
		// at least.
		free := 4096 - (len(b) - gcol)
		u16(0)
		u16(0)
		u32(0)
		u64(uint64(free))
		u8(make([]byte, free-16)...)
		patch(sizeAt, uint64(len(b)-gcol))
		vl := []byte{1, 0}
		vl = binary.LittleEndian.AppendUint16(vl, 8)
		vdt := []byte{0x19, 0x01, 0, 0}
		vdt = binary.LittleEndian.AppendUint32(vdt, 16)
		vdt = append(vdt, 0x13, 0, 0, 0, 1, 0, 0, 0) // base: 1-byte strings
		vds := dataspace1(1)
		vl = binary.LittleEndian.AppendUint16(vl, uint16(len(vdt)))
		vl = binary.LittleEndian.AppendUint16(vl, uint16(len(vds)))
		for _, p := range [][]byte{[]byte("backend\x00"), vdt, vds} {
			vl = append(vl, p...)
			for len(vl)%8 != 0 {
				vl = append(vl, 0)
			}
		}
		vl = binary.LittleEndian.AppendUint32(vl, uint32(len(obj)))
		vl = binary.LittleEndian.AppendUint64(vl, uint64(gcol))
		vl = binary.LittleEndian.AppendUint32(vl, 1)
		rootMsgs = append(rootMsgs, msg(msgAttribute, vl))
	}

	rootHeap := []byte{0, 0, 0, 0, 0, 0, 0, 0}
	rootName := len(rootHeap)
	rootHeap = append(rootHeap, "layer\x00\x00\x00"...)
	bt, hp = symbolTable(rootName, rootHeap, layerAt)
	st = binary.LittleEndian.AppendUint64(nil, uint64(bt))
	st = binary.LittleEndian.AppendUint64(st, uint64(hp))
	rootMsgs[0] = msg(msgSymbolTable, st)
	root := header(rootMsgs...)
	patch(rootAt, uint64(root))
	patch(eofAt, uint64(len(b)))
	return b
}

func TestSmallFilesReadAsBuilt(t *testing.T) {
	for _, v := range [][2]bool{{false, false}, {true, false}, {false, true}} {
		deflate, vlen := v[0], v[1]
		b := smallFile(deflate, vlen)
		f, err := Open(b)
		if err != nil {
			t.Fatal(err)
		}
		root, err := f.Root()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"layer_names": "layer"}
		if vlen {
			want["backend"] = "tensorflow"
		}
		for name, want := range want {
			if a, err := root.Attr(name); err != nil || !slices.Equal(a.Strings, []string{want}) {
				t.Fatalf("deflate %v: %s = %+v, %v", deflate, name, a, err)
			}
		}
		o, err := root.Open("layer/kernel:0")
		if err != nil {
			t.Fatal(err)
		}
		d, err := o.Dataset()
		if err != nil {
			t.Fatal(err)
		}
		v, err := d.Float32s()
		if err != nil || !slices.Equal(v, []float32{1.5, -2, 0.25, 3, -0.5, 8}) || !slices.Equal(d.Shape, []int{2, 3}) {
			t.Fatalf("deflate %v: %v %v %v", deflate, d.Shape, v, err)
		}
		if err := readAll(b); err != nil {
			t.Fatal(err)
		}
		t.Logf("deflate %v, vlen %v: %d bytes", deflate, vlen, len(b))
	}
}
