// Package pth reads the weights in a PyTorch torch.save file (`.pth`, `.pt`) of the zip format
// PyTorch writes since 1.6: torchvision's published weights, or anything saved with
// `torch.save(model.state_dict(), path)`. train.ImportWeights uses it beside the safetensors
// reader; what comes out is each tensor's name, dtype, shape and row-major little-endian bytes.
//
// The archive holds `<archive>/data.pkl`, a pickle of the state dict (an OrderedDict of name ->
// tensor, each rebuilt by torch._utils._rebuild_tensor_v2 from a storage, an offset, a size and
// a stride), and one raw storage per tensor in `<archive>/data/<key>`, stored uncompressed.
//
// A .pth file is untrusted input: a pickle can name any Python callable, and torch.load without
// weights_only runs it. Nothing here runs code, and this reader goes further than refusing to: it
// accepts only the pickle opcodes torch.save writes for a state dict and only the globals listed
// by Allowed, refuses every other global by name, and bounds everything it allocates by the size
// of the file (see scan.go). The pickle machine itself is github.com/nlpodyssey/gopickle's; the
// zip records, the storages and the tensor views are read here.
package pth

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"sort"
	"strings"
	"unicode"
)

// Tensor is one entry of a state dict, in the dtype it was stored in.
type Tensor struct {
	// DType in safetensors' spelling: F32, F16, BF16, F64, or I64 (batch norm's
	// num_batches_tracked counter).
	DType string
	Shape []int
	// Data holds the elements in row-major order, little-endian. It may share the file's bytes.
	Data []byte
}

// File is the state dict of a torch.save file.
type File struct {
	Path    string
	Names   []string // in the order of the file
	Tensors map[string]Tensor
}

// maxPickle bounds data.pkl. A ResNet-50 state dict's pickle is about 40 KB; one with a hundred
// thousand tensors stays below 16 MB.
const maxPickle = 16 << 20

// Read reads and checks a whole torch.save file.
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pth: %w", err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("pth %s: %w", path, err)
	}
	f.Path = path
	return f, nil
}

// Parse reads the state dict of a torch.save file held in b; the tensors may share b.
func Parse(b []byte) (*File, error) {
	a, err := openArchive(b)
	if err != nil {
		return nil, err
	}
	root, err := a.unpickle()
	if err != nil {
		return nil, err
	}
	items, err := stateDictItems(root)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.prefix+"data.pkl", err)
	}
	f := &File{Tensors: make(map[string]Tensor, len(items))}
	// Contiguous tensors are slices of b; only strided ones are copied, and never more than the
	// file's size in all, however many views of one storage the pickle makes.
	budget := len(b)
	for _, it := range items {
		t, err := a.tensor(it.name, it.view, &budget)
		if err != nil {
			return nil, err
		}
		f.Names = append(f.Names, it.name)
		f.Tensors[it.name] = t
	}
	return f, nil
}

// Magic reports whether b starts like a torch.save file: a zip archive (PyTorch >= 1.6), or the
// legacy format that Parse recognises only to say how to convert it.
func Magic(b []byte) bool {
	return bytes.HasPrefix(b, zipMagic) || legacyFormat(b) != ""
}

var zipMagic = []byte("PK\x03\x04")

// legacyMagic is the number torch.save pickled first in its pre-1.6 format
// (0x1950a86a20f9469cfc6c as a little-endian LONG1).
var legacyMagic = []byte{0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}

// legacyFormat names the pre-1.6 torch.save format b is in, or "".
func legacyFormat(b []byte) string {
	switch {
	case len(b) >= 16 && bytes.Contains(b[:16], legacyMagic):
		return "the pickle format of PyTorch < 1.6"
	case len(b) >= 262 && string(b[257:262]) == "ustar":
		return "torch.save's oldest (tar) format"
	}
	return ""
}

// archive is an opened torch.save zip.
type archive struct {
	file     []byte
	prefix   string               // "<archive>/", the folder every record sits in
	records  map[string]*zip.File // by full name
	storages map[string][]byte    // data/<key> records already checked, by key
}

func openArchive(b []byte) (*archive, error) {
	if legacy := legacyFormat(b); legacy != "" {
		return nil, fmt.Errorf("saved in %s, which this reader does not read; load it in PyTorch and "+
			"save it again with torch.save(state_dict, path), or as safetensors", legacy)
	}
	if !bytes.HasPrefix(b, zipMagic) {
		return nil, fmt.Errorf("not a torch.save file: it does not start with a zip header (PK\\x03\\x04); first bytes % x",
			b[:min(len(b), 8)])
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("reading the zip directory of %d bytes: %w (truncated or damaged?)", len(b), err)
	}
	if len(zr.File) == 0 {
		return nil, errors.New("the zip archive has no records")
	}
	a := &archive{file: b, records: make(map[string]*zip.File, len(zr.File)), storages: map[string][]byte{}}
	for _, f := range zr.File {
		if a.records[f.Name] != nil {
			return nil, fmt.Errorf("the zip archive holds %q twice", f.Name)
		}
		a.records[f.Name] = f
	}
	// PyTorch's reader takes the folder of the first record as the archive's name (torch.save
	// uses the file name without its extension, or "archive").
	first := zr.File[0].Name
	slash := strings.IndexByte(first, '/')
	if slash <= 0 {
		return nil, fmt.Errorf("first record %q is not inside a folder; torch.save writes <archive>/data.pkl first", first)
	}
	a.prefix = first[:slash+1]
	if strings.ContainsFunc(a.prefix, unicode.IsControl) {
		return nil, fmt.Errorf("first record %q has control characters in its folder name", first)
	}
	if a.records[a.prefix+"constants.pkl"] != nil {
		return nil, errors.New("a TorchScript archive (torch.jit.save), not a state dict; save model.state_dict() with torch.save")
	}
	if a.records[a.prefix+"data.pkl"] == nil {
		return nil, fmt.Errorf("no %q record (records: %s)", a.prefix+"data.pkl", a.names(6))
	}
	if order, err := a.record("byteorder", 16); err == nil {
		if string(order) != "little" {
			return nil, fmt.Errorf("%q is %q; only little-endian files are read", a.prefix+"byteorder", order)
		}
	} else if !errors.Is(err, errNoRecord) {
		return nil, err
	}
	return a, nil
}

var errNoRecord = errors.New("no such record")

// record returns the bytes of the record prefix+name, which must be stored uncompressed (as
// torch.save stores every record) and at most limit bytes long.
func (a *archive) record(name string, limit int) ([]byte, error) {
	full := a.prefix + name
	f := a.records[full]
	if f == nil {
		return nil, fmt.Errorf("%q: %w", full, errNoRecord)
	}
	if f.Method != zip.Store {
		return nil, fmt.Errorf("record %q is compressed (method %d); torch.save stores records uncompressed", full, f.Method)
	}
	if f.CompressedSize64 != f.UncompressedSize64 {
		return nil, fmt.Errorf("record %q: stored size %d differs from its size %d", full, f.CompressedSize64, f.UncompressedSize64)
	}
	if f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("record %q is %d bytes; more than the %d this reader accepts", full, f.UncompressedSize64, limit)
	}
	off, err := f.DataOffset()
	if err != nil {
		return nil, fmt.Errorf("record %q: %w", full, err)
	}
	size := int64(f.UncompressedSize64)
	if off < 0 || off > int64(len(a.file)) || size > int64(len(a.file))-off {
		return nil, fmt.Errorf("record %q: %d bytes at offset %d run past the end of the %d-byte file (truncated?)",
			full, size, off, len(a.file))
	}
	data := a.file[off : off+size]
	// torch.serialization.config.save.compute_crc32 = False writes 0 instead of a checksum.
	if f.CRC32 != 0 && crc32.ChecksumIEEE(data) != f.CRC32 {
		return nil, fmt.Errorf("record %q: checksum %08x, the zip directory says %08x (damaged file)", full,
			crc32.ChecksumIEEE(data), f.CRC32)
	}
	return data, nil
}

// names lists up to n record names.
func (a *archive) names(n int) string {
	var all []string
	for name := range a.records {
		all = append(all, fmt.Sprintf("%q", name))
	}
	sort.Strings(all)
	if len(all) > n {
		return fmt.Sprintf("%s and %d more", strings.Join(all[:n], ", "), len(all)-n)
	}
	return strings.Join(all, ", ")
}
