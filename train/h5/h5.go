// Package h5 reads the part of HDF5 that Keras weight files use: what h5py (Keras 2's
// model.save_weights and the keras-applications downloads) and h5wasm write. It is read-only
// and works on the whole file in memory.
//
// Covered (HDF5 File Format Specification, version 3): superblocks 0 to 3; object headers 1
// and 2 with continuation blocks; old-style groups (symbol table: v1 B-tree and local heap) and
// new-style groups with compact link storage (link messages); attributes with fixed-length and
// variable-length strings (global heap), integers and floats, scalar or arrays; datasets with
// compact, contiguous or chunked layout (v1 B-tree index, or v4's single-chunk and implicit
// indexes) with no filter, deflate, shuffle or Fletcher-32; integers and IEEE floats of either
// byte order. Anything else (dense link or attribute storage in a fractal heap, shared
// messages, other filters, other chunk indexes, soft and external links, virtual datasets) is
// an error that names the feature.
//
// Files are untrusted: every offset and size is checked against the file, every loop and
// recursion is bounded, and nothing allocates more than the file can justify, so a damaged or
// hostile file gives an error, never a panic or an outsized allocation (FuzzReadH5).
package h5

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Limits that bound the work a file can ask for.
const (
	maxDepth        = 32      // nested groups and B-tree levels
	maxMessages     = 1 << 16 // header messages of one object
	maxHeaderBlocks = 1 << 10 // continuation blocks of one object
	maxLinks        = 1 << 20 // links of one group
	maxRank         = 32      // HDF5's own limit
	// A deflate stream expands at most about 1032 times, so no honest file holds a dataset
	// larger than this many times its own size.
	maxExpansion = 1100
	maxValueSize = 1 << 31 // bytes of one dataset or attribute, decoded
)

var signature = []byte("\x89HDF\r\n\x1a\n")

// IsHDF5 reports whether b starts with the HDF5 signature (at offset 0, where h5py and h5wasm
// put it).
func IsHDF5(b []byte) bool { return bytes.HasPrefix(b, signature) }

// File is an HDF5 file held in memory.
type File struct {
	b                []byte
	offSize, lenSize int
	base             uint64
	rootAddr         uint64
	heaps            map[uint64]map[uint16][]byte // global heap collections read so far
}

// Open parses the superblock of an HDF5 file. The signature may sit at 0, 512, 1024, ...
func Open(b []byte) (*File, error) {
	at := -1
	for off := 0; off+len(signature) <= len(b); off = max(512, 2*off) {
		if bytes.Equal(b[off:off+len(signature)], signature) {
			at = off
			break
		}
	}
	if at < 0 {
		return nil, fmt.Errorf("not an HDF5 file (no signature \\x89HDF\\r\\n\\x1a\\n; %d bytes)", len(b))
	}
	f := &File{b: b, heaps: map[uint64]map[uint16][]byte{}}
	r := f.at(uint64(at) + 8)
	version := r.u8()
	var eof uint64
	switch version {
	case 0, 1:
		r.skip(3) // free-space, root group symbol table and reserved versions
		r.skip(1) // shared header message format version
		f.offSize, f.lenSize = int(r.u8()), int(r.u8())
		r.skip(1 + 2 + 2 + 4) // reserved, group leaf/internal node K, consistency flags
		if version == 1 {
			r.skip(4) // indexed storage internal node K, reserved
		}
		if err := f.checkSizes(); err != nil {
			return nil, err
		}
		f.base = r.uint(f.offSize)
		r.skip(f.offSize) // free-space info
		eof = r.uint(f.offSize)
		r.skip(f.offSize) // driver information
		// Root group symbol table entry: link name offset, object header address, ...
		r.skip(f.offSize)
		f.rootAddr = r.uint(f.offSize)
	case 2, 3:
		f.offSize, f.lenSize = int(r.u8()), int(r.u8())
		r.skip(1)
		if err := f.checkSizes(); err != nil {
			return nil, err
		}
		f.base = r.uint(f.offSize)
		r.skip(f.offSize) // superblock extension
		eof = r.uint(f.offSize)
		f.rootAddr = r.uint(f.offSize)
	default:
		return nil, fmt.Errorf("superblock version %d is not supported (0 to 3 are)", version)
	}
	if r.err != nil {
		return nil, fmt.Errorf("superblock: %w", r.err)
	}
	if !f.undefined(eof) && eof > uint64(len(b))-f.base {
		return nil, fmt.Errorf("truncated: the superblock says the file is %d bytes long, it has %d", eof+f.base, len(b))
	}
	if f.base != 0 && f.base != uint64(at) {
		return nil, fmt.Errorf("superblock: base address %d is not supported (the signature is at %d)", f.base, at)
	}
	return f, nil
}

func (f *File) checkSizes() error {
	ok := func(n int) bool { return n == 2 || n == 4 || n == 8 }
	if !ok(f.offSize) || !ok(f.lenSize) {
		return fmt.Errorf("superblock: size of offsets %d, of lengths %d; want 2, 4 or 8", f.offSize, f.lenSize)
	}
	return nil
}

// undefined reports whether an address is HDF5's "undefined address" (all bits set).
func (f *File) undefined(a uint64) bool {
	return f.offSize == 8 && a == math.MaxUint64 || f.offSize < 8 && a == 1<<(8*f.offSize)-1
}

// reader reads little-endian fields from a slice of the file with a sticky error: once a read
// runs past the end, every later read returns zero and err says where it failed.
type reader struct {
	b   []byte
	pos int
	err error
}

func (f *File) at(addr uint64) *reader {
	r := &reader{b: f.b}
	a := addr + f.base
	if a < addr || a > uint64(len(f.b)) {
		r.err = fmt.Errorf("address %d is past the end of the file (%d bytes)", addr, len(f.b))
		r.pos = len(f.b)
		return r
	}
	r.pos = int(a)
	return r
}

func (r *reader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || n > len(r.b)-r.pos {
		r.err = fmt.Errorf("field of %d bytes at offset %d runs past the end (%d bytes)", n, r.pos, len(r.b))
		return false
	}
	return true
}

func (r *reader) bytes(n int) []byte {
	if !r.need(n) {
		return nil
	}
	r.pos += n
	return r.b[r.pos-n : r.pos]
}

func (r *reader) skip(n int) { r.bytes(n) }

func (r *reader) u8() uint8 {
	if b := r.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() uint16 { return uint16(r.uint(2)) }
func (r *reader) u32() uint32 { return uint32(r.uint(4)) }

// uint reads an n-byte little-endian unsigned integer (n <= 8).
func (r *reader) uint(n int) uint64 {
	b := r.bytes(n)
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// sig checks a 4-byte signature.
func (r *reader) sig(want string) bool {
	b := r.bytes(4)
	if r.err == nil && string(b) != want {
		r.err = fmt.Errorf("signature %q at offset %d, want %q", b, r.pos-4, want)
	}
	return r.err == nil
}

// message is one header message of an object.
type message struct {
	typ   uint16
	flags uint8
	data  []byte
}

// Header message types used here (HDF5 spec IV.A.2).
const (
	msgDataspace    = 0x01
	msgLinkInfo     = 0x02
	msgDatatype     = 0x03
	msgLink         = 0x06
	msgLayout       = 0x08
	msgFilters      = 0x0B
	msgAttribute    = 0x0C
	msgContinuation = 0x10
	msgSymbolTable  = 0x11
	msgAttrInfo     = 0x15
)

// messages reads every header message of the object whose header is at addr, following
// continuation blocks.
func (f *File) messages(addr uint64) ([]message, error) {
	r := f.at(addr)
	if r.err != nil {
		return nil, r.err
	}
	type block struct{ addr, size uint64 }
	var out []message
	seen := map[uint64]bool{}
	var queue []block
	v2 := len(r.b)-r.pos >= 4 && string(r.b[r.pos:r.pos+4]) == "OHDR"
	var flags uint8
	if v2 {
		r.skip(4)
		if v := r.u8(); v != 2 && r.err == nil {
			return nil, fmt.Errorf("object header version %d at %d, want 2", v, addr)
		}
		flags = r.u8()
		if flags&0x20 != 0 {
			r.skip(16) // times
		}
		if flags&0x10 != 0 {
			r.skip(4) // attribute phase change values
		}
		size := r.uint(1 << (flags & 3))
		if r.err != nil {
			return nil, fmt.Errorf("object header at %d: %w", addr, r.err)
		}
		queue = append(queue, block{uint64(r.pos) - f.base, size})
	} else {
		if v := r.u8(); v != 1 && r.err == nil {
			return nil, fmt.Errorf("object header at %d: version %d, want 1 or 2 (OHDR)", addr, v)
		}
		r.skip(1 + 2 + 4) // reserved, message count, reference count
		size := uint64(r.u32())
		r.skip(4) // padding to an 8-byte boundary
		if r.err != nil {
			return nil, fmt.Errorf("object header at %d: %w", addr, r.err)
		}
		queue = append(queue, block{uint64(r.pos) - f.base, size})
	}
	for n := 0; len(queue) > 0; n++ {
		if n >= maxHeaderBlocks {
			return nil, fmt.Errorf("object header at %d: more than %d continuation blocks", addr, maxHeaderBlocks)
		}
		blk := queue[0]
		queue = queue[1:]
		if seen[blk.addr] {
			return nil, fmt.Errorf("object header at %d: continuation block %d is visited twice (a loop)", addr, blk.addr)
		}
		seen[blk.addr] = true
		br := f.at(blk.addr)
		if blk.size > uint64(len(br.b)-br.pos) {
			return nil, fmt.Errorf("object header at %d: block at %d of %d bytes runs past the end of the file (%d bytes)", addr, blk.addr, blk.size, len(f.b))
		}
		body := br.bytes(int(blk.size))
		if br.err != nil {
			return nil, fmt.Errorf("object header at %d: %w", addr, br.err)
		}
		if v2 {
			if n > 0 {
				if len(body) < 8 || string(body[:4]) != "OCHK" {
					return nil, fmt.Errorf("object header at %d: continuation block at %d has no OCHK signature", addr, blk.addr)
				}
				body = body[4 : len(body)-4]
			} // chunk 0's size leaves out its checksum
		}
		m := &reader{b: body}
		for {
			hdr := 8
			if v2 {
				hdr = 4
				if flags&0x04 != 0 {
					hdr = 6
				}
			}
			if len(body)-m.pos < hdr {
				break // gap at the end of a v2 block
			}
			var msg message
			var size int
			if v2 {
				msg.typ = uint16(m.u8())
				size = int(m.u16())
				msg.flags = m.u8()
				if flags&0x04 != 0 {
					m.skip(2)
				}
			} else {
				msg.typ = m.u16()
				size = int(m.u16())
				msg.flags = m.u8()
				m.skip(3)
			}
			msg.data = m.bytes(size)
			if m.err != nil {
				return nil, fmt.Errorf("object header at %d: message of type %#x: %w", addr, msg.typ, m.err)
			}
			if !v2 {
				m.skip((8 - size%8) % 8)
				m.err = nil
			}
			if len(out) >= maxMessages {
				return nil, fmt.Errorf("object header at %d: more than %d messages", addr, maxMessages)
			}
			if msg.typ == msgContinuation {
				c := &reader{b: msg.data}
				a, l := c.uint(f.offSize), c.uint(f.lenSize)
				if c.err != nil {
					return nil, fmt.Errorf("object header at %d: continuation message: %w", addr, c.err)
				}
				queue = append(queue, block{a, l})
				continue
			}
			out = append(out, msg)
		}
	}
	return out, nil
}

// Object is a group or a dataset with its attributes.
type Object struct {
	f     *File
	Path  string
	addr  uint64
	msgs  []message
	depth int
}

// Root opens the root group.
func (f *File) Root() (*Object, error) {
	msgs, err := f.messages(f.rootAddr)
	if err != nil {
		return nil, fmt.Errorf("root group: %w", err)
	}
	return &Object{f: f, Path: "/", addr: f.rootAddr, msgs: msgs}, nil
}

func (o *Object) find(typ uint16) (message, bool) {
	for _, m := range o.msgs {
		if m.typ == typ {
			return m, true
		}
	}
	return message{}, false
}

// IsGroup reports whether the object is a group (it has a symbol table or links) rather than
// a dataset.
func (o *Object) IsGroup() bool {
	_, layout := o.find(msgLayout)
	return !layout
}

// IsDataset reports whether the object is a dataset.
func (o *Object) IsDataset() bool { return !o.IsGroup() }

// Link is one named member of a group.
type Link struct {
	Name string
	addr uint64
	kind string // "" for a hard link, else "soft" or "external" (not followed)
}

// Links lists the members of a group in the file's order (sorted by name for old-style
// groups, as their B-tree keeps them).
func (o *Object) Links() ([]Link, error) {
	if m, ok := o.find(msgSymbolTable); ok {
		r := &reader{b: m.data}
		btree, heap := r.uint(o.f.offSize), r.uint(o.f.offSize)
		if r.err != nil {
			return nil, fmt.Errorf("group %s: symbol table message: %w", o.Path, r.err)
		}
		links, err := o.f.symbolTable(btree, heap)
		if err != nil {
			return nil, fmt.Errorf("group %s: %w", o.Path, err)
		}
		return links, nil
	}
	if m, ok := o.find(msgLinkInfo); ok {
		r := &reader{b: m.data}
		r.skip(1)
		fl := r.u8()
		if fl&1 != 0 {
			r.skip(8)
		}
		heap := r.uint(o.f.offSize)
		if r.err != nil {
			return nil, fmt.Errorf("group %s: link info message: %w", o.Path, r.err)
		}
		if !o.f.undefined(heap) {
			return nil, fmt.Errorf("group %s: dense link storage (a fractal heap, used for more than 8 links by HDF5 1.8+ formats) is not supported; write the file with h5py's default libver (earliest)", o.Path)
		}
	}
	var links []Link
	for _, m := range o.msgs {
		if m.typ != msgLink {
			continue
		}
		l, err := o.f.link(m.data)
		if err != nil {
			return nil, fmt.Errorf("group %s: %w", o.Path, err)
		}
		links = append(links, l)
		if len(links) > maxLinks {
			return nil, fmt.Errorf("group %s: more than %d links", o.Path, maxLinks)
		}
	}
	return links, nil
}

// link parses a link message (spec IV.A.2.g).
func (f *File) link(b []byte) (Link, error) {
	r := &reader{b: b}
	if v := r.u8(); v != 1 && r.err == nil {
		return Link{}, fmt.Errorf("link message version %d, want 1", v)
	}
	fl := r.u8()
	typ := uint8(0)
	if fl&0x08 != 0 {
		typ = r.u8()
	}
	if fl&0x04 != 0 {
		r.skip(8)
	}
	if fl&0x10 != 0 {
		r.skip(1)
	}
	n := r.uint(1 << (fl & 3))
	if n > uint64(len(b)) {
		return Link{}, fmt.Errorf("link name of %d bytes in a %d-byte message", n, len(b))
	}
	l := Link{Name: string(r.bytes(int(n)))}
	switch typ {
	case 0:
		l.addr = r.uint(f.offSize)
	case 1:
		l.kind = "soft"
	case 64:
		l.kind = "external"
	default:
		l.kind = fmt.Sprintf("type %d", typ)
	}
	if r.err != nil {
		return Link{}, fmt.Errorf("link message: %w", r.err)
	}
	return l, nil
}

// symbolTable lists an old-style group: a v1 B-tree of symbol table nodes whose entries name
// their links by offsets into a local heap.
func (f *File) symbolTable(btree, heapAddr uint64) ([]Link, error) {
	h := f.at(heapAddr)
	h.sig("HEAP")
	h.skip(4) // version, reserved
	size := h.uint(f.lenSize)
	h.skip(f.lenSize) // free list
	dataAddr := h.uint(f.offSize)
	if h.err != nil {
		return nil, fmt.Errorf("local heap at %d: %w", heapAddr, h.err)
	}
	d := f.at(dataAddr)
	if size > uint64(len(d.b)-d.pos) {
		return nil, fmt.Errorf("local heap at %d: data segment of %d bytes at %d runs past the end of the file", heapAddr, size, dataAddr)
	}
	heap := d.bytes(int(size))
	if d.err != nil {
		return nil, fmt.Errorf("local heap at %d: %w", heapAddr, d.err)
	}
	var links []Link
	seen := map[uint64]bool{}
	var walk func(addr uint64, depth int) error
	walk = func(addr uint64, depth int) error {
		if depth > maxDepth {
			return fmt.Errorf("B-tree at %d: deeper than %d levels", btree, maxDepth)
		}
		if seen[addr] {
			return fmt.Errorf("B-tree node %d is visited twice (a loop)", addr)
		}
		seen[addr] = true
		r := f.at(addr)
		r.sig("TREE")
		typ, level, entries := r.u8(), r.u8(), int(r.u16())
		r.skip(2 * f.offSize) // siblings
		if r.err != nil {
			return fmt.Errorf("B-tree node at %d: %w", addr, r.err)
		}
		if typ != 0 {
			return fmt.Errorf("B-tree node at %d: type %d, want 0 (group)", addr, typ)
		}
		if entries*(f.lenSize+f.offSize) > len(r.b)-r.pos {
			return fmt.Errorf("B-tree node at %d: %d entries run past the end of the file", addr, entries)
		}
		for range entries {
			r.skip(f.lenSize) // key
			child := r.uint(f.offSize)
			if r.err != nil {
				return fmt.Errorf("B-tree node at %d: %w", addr, r.err)
			}
			if level > 0 {
				if err := walk(child, depth+1); err != nil {
					return err
				}
				continue
			}
			if seen[child] {
				return fmt.Errorf("symbol table node %d is visited twice (a loop)", child)
			}
			seen[child] = true
			s := f.at(child)
			s.sig("SNOD")
			s.skip(2)
			n := int(s.u16())
			if s.err != nil {
				return fmt.Errorf("symbol table node at %d: %w", child, s.err)
			}
			if n*(2*f.offSize+24) > len(s.b)-s.pos {
				return fmt.Errorf("symbol table node at %d: %d entries run past the end of the file", child, n)
			}
			for range n {
				nameOff := s.uint(f.offSize)
				obj := s.uint(f.offSize)
				s.skip(24) // cache type, reserved, scratch pad
				if nameOff >= uint64(len(heap)) {
					return fmt.Errorf("symbol table node at %d: name offset %d outside the local heap (%d bytes)", child, nameOff, len(heap))
				}
				name, _, _ := strings.Cut(string(heap[nameOff:]), "\x00")
				links = append(links, Link{Name: name, addr: obj})
				if len(links) > maxLinks {
					return fmt.Errorf("more than %d links", maxLinks)
				}
			}
		}
		return nil
	}
	if err := walk(btree, 0); err != nil {
		return nil, err
	}
	return links, nil
}

// Open opens the member at a slash-separated path below o.
func (o *Object) Open(path string) (*Object, error) {
	cur := o
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		if part == "" {
			continue
		}
		if !cur.IsGroup() {
			return nil, fmt.Errorf("%s is a dataset, not a group", cur.Path)
		}
		if cur.depth >= maxDepth {
			return nil, fmt.Errorf("%s: groups nested deeper than %d", cur.Path, maxDepth)
		}
		links, err := cur.Links()
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(links, func(l Link) bool { return l.Name == part })
		if i < 0 {
			return nil, fmt.Errorf("%w: %s has no member %q", ErrNotFound, cur.Path, part)
		}
		child, err := cur.openLink(links[i])
		if err != nil {
			return nil, err
		}
		cur = child
	}
	return cur, nil
}

// ErrNotFound is returned (wrapped) by Open for a missing member.
var ErrNotFound = errors.New("not found")

func (o *Object) openLink(l Link) (*Object, error) {
	// Path is for messages: a name with control characters is quoted, so that an error about
	// a hostile file stays on one line.
	name := l.Name
	if strings.ContainsFunc(name, unicode.IsControl) {
		name = strconv.Quote(name)
	}
	p := strings.TrimSuffix(o.Path, "/") + "/" + name
	if l.kind != "" {
		return nil, fmt.Errorf("%s is a %s link, which is not followed", p, l.kind)
	}
	msgs, err := o.f.messages(l.addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &Object{f: o.f, Path: p, addr: l.addr, msgs: msgs, depth: o.depth + 1}, nil
}

// Child opens a member found by Links.
func (o *Object) Child(l Link) (*Object, error) {
	if o.depth >= maxDepth {
		return nil, fmt.Errorf("%s: groups nested deeper than %d", o.Path, maxDepth)
	}
	return o.openLink(l)
}

// Walk calls fn for every object reachable from the root, each once (hard links that point to
// an object already visited are not followed again), parents before children.
func (f *File) Walk(fn func(o *Object) error) error {
	root, err := f.Root()
	if err != nil {
		return err
	}
	seen := map[uint64]bool{}
	var walk func(o *Object) error
	walk = func(o *Object) error {
		if seen[o.addr] {
			return nil
		}
		seen[o.addr] = true
		if err := fn(o); err != nil {
			return err
		}
		if !o.IsGroup() {
			return nil
		}
		links, err := o.Links()
		if err != nil {
			return err
		}
		for _, l := range links {
			if l.kind != "" || seen[l.addr] {
				continue
			}
			c, err := o.Child(l)
			if err != nil {
				return err
			}
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root)
}
