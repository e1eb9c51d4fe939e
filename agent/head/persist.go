package head

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// State is what the agent keeps across restarts: the trained head (nil
// before the first training) and the stored examples.
type State struct {
	Head     *Head
	Examples Examples
}

// The state file format, version 1 (all integers little-endian):
//
//	magic    8 bytes  "SHCTHEAD"
//	version  uint32   1
//	mlen     uint32   length of the manifest
//	manifest mlen bytes of JSON (stateManifest): labels, report, and the
//	         offset and length of every array inside the payload
//	payload  float32 arrays (head weights, head bias, each label's
//	         embeddings) and JPEG thumbnails, at the manifest's offsets
//	crc      uint32   CRC-32C (Castagnoli) of every byte before it
//
// Each save writes a new generation, state-<generation>.bin, through a
// temporary file in the same directory (write, fsync, rename, fsync the
// directory). The rename is the commit: a crash before it leaves the old
// generation as the newest, a crash after it the new one. The newest two
// generations are kept, so a newest file found corrupt (a disk error, a
// power cut on a file system that reorders writes) still leaves the
// previous good state to load.
const (
	stateMagic   = "SHCTHEAD"
	stateVersion = 1
	headerSize   = 16
	keepGens     = 2
	// maxStateBytes bounds what Load reads: 1 GiB holds 256 labels x 100
	// examples x 2048 floats many times over.
	maxStateBytes = 1 << 30
)

type section struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

type headManifest struct {
	Labels     []string `json:"labels"`
	Background string   `json:"background,omitempty"`
	Weights    section  `json:"weights"`
	Bias       section  `json:"bias"`
	Report     Report   `json:"report"`
}

type labelManifest struct {
	Label      string    `json:"label"`
	Count      int       `json:"count"`
	Embeddings section   `json:"embeddings"`
	Thumbnails []section `json:"thumbnails,omitempty"` // one per example; length 0 for none
}

type stateManifest struct {
	Dim          int             `json:"dim"`
	Head         *headManifest   `json:"head,omitempty"`
	Examples     []labelManifest `json:"examples"`
	PayloadBytes int64           `json:"payload_bytes"`
}

// ErrUnknownVersion is wrapped by Load's error for a state file written by
// a newer (or foreign) format version.
var ErrUnknownVersion = errors.New("unknown state format version")

// encodeState serializes st into the version 1 format.
func encodeState(st State) ([]byte, error) {
	dim := st.Examples.Dim
	if st.Head != nil {
		if dim != 0 && dim != st.Head.dim {
			return nil, fmt.Errorf("head: saving: examples have width %d but the head takes %d", dim, st.Head.dim)
		}
		dim = st.Head.dim
	}
	if dim != 0 || len(st.Examples.Labels) > 0 {
		ex := st.Examples
		ex.Dim = dim
		if err := checkExamples(ex); err != nil {
			return nil, fmt.Errorf("head: saving: %w", err)
		}
	}
	var payload bytes.Buffer
	put := func(v []float32) section {
		s := section{Offset: int64(payload.Len()), Length: int64(4 * len(v))}
		var b [4]byte
		for _, x := range v {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
			payload.Write(b[:])
		}
		return s
	}
	man := stateManifest{Dim: dim, Examples: []labelManifest{}}
	if h := st.Head; h != nil {
		man.Head = &headManifest{Labels: h.labels, Background: h.Background(), Report: h.report}
		man.Head.Weights = put(h.w)
		man.Head.Bias = put(h.b)
	}
	for _, l := range st.Examples.Labels {
		lm := labelManifest{Label: l.Label, Count: len(l.Embeddings)}
		lm.Embeddings.Offset = int64(payload.Len())
		for _, e := range l.Embeddings {
			lm.Embeddings.Length += put(e).Length
		}
		if l.Thumbnails != nil {
			for _, t := range l.Thumbnails {
				lm.Thumbnails = append(lm.Thumbnails, section{int64(payload.Len()), int64(len(t))})
				payload.Write(t)
			}
		}
		man.Examples = append(man.Examples, lm)
	}
	man.PayloadBytes = int64(payload.Len())
	mj, err := json.Marshal(man)
	if err != nil {
		return nil, fmt.Errorf("head: saving: encoding the manifest: %w", err)
	}
	out := make([]byte, 0, headerSize+len(mj)+payload.Len()+4)
	out = append(out, stateMagic...)
	out = binary.LittleEndian.AppendUint32(out, stateVersion)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(mj)))
	out = append(out, mj...)
	out = append(out, payload.Bytes()...)
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, crcTable))
	if len(out) > maxStateBytes {
		return nil, fmt.Errorf("head: saving: state is %d bytes, above the %d-byte limit; lower the examples per label or the thumbnail size", len(out), maxStateBytes)
	}
	return out, nil
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// decodeState parses and checks a state file's bytes.
func decodeState(data []byte) (State, error) {
	if len(data) < headerSize+4 || string(data[:8]) != stateMagic {
		return State{}, fmt.Errorf("not a Shortcut head state file (%d bytes, no %q header)", len(data), stateMagic)
	}
	if v := binary.LittleEndian.Uint32(data[8:]); v != stateVersion {
		return State{}, fmt.Errorf("%w %d: this build reads version %d; run the agent that wrote it, or move the state directory aside to start afresh",
			ErrUnknownVersion, v, stateVersion)
	}
	body := data[:len(data)-4]
	if got, want := crc32.Checksum(body, crcTable), binary.LittleEndian.Uint32(data[len(data)-4:]); got != want {
		return State{}, fmt.Errorf("checksum mismatch (file says %08x, contents give %08x): the file is truncated or damaged", want, got)
	}
	mlen := int64(binary.LittleEndian.Uint32(data[12:]))
	if mlen > int64(len(body)-headerSize) {
		return State{}, fmt.Errorf("manifest length %d runs past the end of the file", mlen)
	}
	var man stateManifest
	dec := json.NewDecoder(bytes.NewReader(body[headerSize : headerSize+mlen]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&man); err != nil {
		return State{}, fmt.Errorf("manifest: %v", err)
	}
	payload := body[headerSize+mlen:]
	if man.PayloadBytes != int64(len(payload)) {
		return State{}, fmt.Errorf("manifest says %d payload bytes, the file holds %d", man.PayloadBytes, len(payload))
	}
	get := func(what string, s section, want int64) ([]byte, error) {
		if want >= 0 && s.Length != want {
			return nil, fmt.Errorf("%s: %d bytes, want %d", what, s.Length, want)
		}
		if s.Offset < 0 || s.Length < 0 || s.Offset > int64(len(payload)) || s.Length > int64(len(payload))-s.Offset {
			return nil, fmt.Errorf("%s: bytes [%d, +%d) lie outside the %d-byte payload", what, s.Offset, s.Length, len(payload))
		}
		return payload[s.Offset : s.Offset+s.Length], nil
	}
	if man.Dim < 0 || man.Dim > MaxDim || (man.Dim == 0 && (man.Head != nil || len(man.Examples) > 0)) {
		return State{}, fmt.Errorf("embedding width %d is out of range [1, %d]", man.Dim, MaxDim)
	}
	if len(man.Examples) > MaxLabelsLimit {
		return State{}, fmt.Errorf("%d labels of examples; the limit is %d", len(man.Examples), MaxLabelsLimit)
	}
	dim := int64(man.Dim)
	var st State
	if hm := man.Head; hm != nil {
		if len(hm.Labels) == 0 || len(hm.Labels) > MaxLabelsLimit {
			return State{}, fmt.Errorf("head has %d labels; want 1 to %d", len(hm.Labels), MaxLabelsLimit)
		}
		nc := int64(len(hm.Labels))
		wb, err := get("head weights", hm.Weights, 4*nc*dim)
		if err != nil {
			return State{}, err
		}
		bb, err := get("head bias", hm.Bias, 4*nc)
		if err != nil {
			return State{}, err
		}
		h, err := NewHead(hm.Labels, man.Dim, floats(wb), floats(bb), hm.Background)
		if err != nil {
			return State{}, err
		}
		h.report = hm.Report
		st.Head = h
	}
	st.Examples.Dim = man.Dim
	for _, lm := range man.Examples {
		if lm.Count < 0 || lm.Count > MaxPerLabelLimit {
			return State{}, fmt.Errorf("label %q: %d examples; the limit is %d", lm.Label, lm.Count, MaxPerLabelLimit)
		}
		eb, err := get(fmt.Sprintf("label %q embeddings", lm.Label), lm.Embeddings, 4*int64(lm.Count)*dim)
		if err != nil {
			return State{}, err
		}
		all := floats(eb)
		le := LabelExamples{Label: lm.Label, Embeddings: make([][]float32, lm.Count)}
		for i := range le.Embeddings {
			le.Embeddings[i] = all[i*man.Dim : (i+1)*man.Dim : (i+1)*man.Dim]
		}
		if lm.Thumbnails != nil {
			if len(lm.Thumbnails) != lm.Count {
				return State{}, fmt.Errorf("label %q: %d thumbnails for %d examples", lm.Label, len(lm.Thumbnails), lm.Count)
			}
			le.Thumbnails = make([][]byte, lm.Count)
			for i, s := range lm.Thumbnails {
				if s.Length > MaxThumbnailLimit {
					return State{}, fmt.Errorf("label %q thumbnail %d: %d bytes; the limit is %d", lm.Label, i, s.Length, MaxThumbnailLimit)
				}
				tb, err := get(fmt.Sprintf("label %q thumbnail %d", lm.Label, i), s, -1)
				if err != nil {
					return State{}, err
				}
				if len(tb) > 0 {
					le.Thumbnails[i] = bytes.Clone(tb)
				}
			}
		}
		st.Examples.Labels = append(st.Examples.Labels, le)
	}
	if err := checkExamples(st.Examples); err != nil && man.Dim > 0 {
		return State{}, err
	}
	return st, nil
}

func floats(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// Dir is a state directory. Save and Load may be called from several
// goroutines; saves are serialized.
type Dir struct {
	path string
	mu   sync.Mutex
	// hook, when set (by tests), runs before each step of Save; an error
	// aborts the save there, as a failing disk would.
	hook func(step string) error
}

// OpenDir uses (creating, mode 0700, if needed) a state directory.
func OpenDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("head: state directory %q: %w", path, err)
	}
	return &Dir{path: path}, nil
}

// Path is the directory.
func (d *Dir) Path() string { return d.path }

const genPrefix, genSuffix, tmpPattern = "state-", ".bin", ".state-*.tmp"

func genName(gen uint64) string { return fmt.Sprintf("%s%020d%s", genPrefix, gen, genSuffix) }

// generations lists the committed generations, newest first.
func (d *Dir) generations() ([]uint64, error) {
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return nil, fmt.Errorf("head: reading state directory %q: %w", d.path, err)
	}
	var gens []uint64
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, genPrefix) || !strings.HasSuffix(n, genSuffix) {
			continue
		}
		g, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(n, genPrefix), genSuffix), 10, 64)
		if err == nil && e.Type().IsRegular() {
			gens = append(gens, g)
		}
	}
	slices.Sort(gens)
	slices.Reverse(gens)
	return gens, nil
}

func (d *Dir) step(name string) error {
	if d.hook != nil {
		if err := d.hook(name); err != nil {
			return fmt.Errorf("head: saving state in %q: %s: %w", d.path, name, err)
		}
	}
	return nil
}

// Save writes st as a new generation and returns its number. When it
// returns an error the previous state is still what Load returns, except
// for an error from the final directory sync, after which either may be.
func (d *Dir) Save(st State) (uint64, error) {
	data, err := encodeState(st)
	if err != nil {
		return 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	gens, err := d.generations()
	if err != nil {
		return 0, err
	}
	gen := uint64(1)
	if len(gens) > 0 {
		gen = gens[0] + 1
	}
	final := filepath.Join(d.path, genName(gen))
	if err := d.step("create"); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(d.path, tmpPattern)
	if err != nil {
		return 0, fmt.Errorf("head: saving state: %w", err)
	}
	tmp := f.Name()
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	half := len(data) / 2
	for _, s := range []struct {
		name string
		do   func() error
	}{
		{"write", func() error { _, err := f.Write(data[:half]); return err }},
		{"write-rest", func() error { _, err := f.Write(data[half:]); return err }},
		{"fsync", f.Sync},
		{"close", f.Close},
		{"rename", func() error { return os.Rename(tmp, final) }},
	} {
		if err := d.step(s.name); err != nil {
			return 0, err
		}
		if err := s.do(); err != nil {
			return 0, fmt.Errorf("head: saving state to %q: %s: %w; the previous state is kept", final, s.name, err)
		}
	}
	committed = true
	if err := d.step("fsync-dir"); err != nil {
		return 0, err
	}
	if err := syncDir(d.path); err != nil {
		return 0, fmt.Errorf("head: saving state: syncing directory %q after writing %s: %w", d.path, genName(gen), err)
	}
	if err := d.step("prune"); err != nil {
		return gen, nil // committed; pruning is housekeeping
	}
	d.prune(append([]uint64{gen}, gens...))
	return gen, nil
}

// prune removes all but the newest keepGens generations and stale
// temporary files (left by a crash). Failures are harmless: the files are
// removed on a later save.
func (d *Dir) prune(gens []uint64) {
	for _, g := range gens[min(keepGens, len(gens)):] {
		os.Remove(filepath.Join(d.path, genName(g)))
	}
	if tmps, err := filepath.Glob(filepath.Join(d.path, tmpPattern)); err == nil {
		for _, t := range tmps {
			os.Remove(t)
		}
	}
	syncDir(d.path)
}

func syncDir(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// LoadInfo says which generation Load returned and what it passed over.
type LoadInfo struct {
	Generation uint64 // 0 when the directory holds no state yet
	Path       string
	// Skipped lists newer generations that could not be read (truncated,
	// damaged): the state returned is the newest good one. Report them.
	Skipped []error
}

// Load returns the newest readable generation, passing over damaged ones
// (listed in LoadInfo.Skipped). An empty directory gives an empty State.
// A file of an unknown format version is an error wrapping
// ErrUnknownVersion: it was written by newer software, and falling back
// to an older generation would silently lose its changes.
func (d *Dir) Load() (State, LoadInfo, error) {
	var info LoadInfo
	gens, err := d.generations()
	if err != nil {
		return State{}, info, err
	}
	for _, g := range gens {
		p := filepath.Join(d.path, genName(g))
		st, err := readState(p)
		if err == nil {
			info.Generation, info.Path = g, p
			return st, info, nil
		}
		err = fmt.Errorf("head: state file %q: %w", p, err)
		if errors.Is(err, ErrUnknownVersion) {
			return State{}, info, err
		}
		info.Skipped = append(info.Skipped, err)
	}
	if len(info.Skipped) > 0 {
		return State{}, info, fmt.Errorf("head: no readable state in %q: %w", d.path, errors.Join(info.Skipped...))
	}
	return State{}, info, nil
}

func readState(path string) (State, error) {
	f, err := os.Open(path)
	if err != nil {
		return State{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return State{}, err
	}
	if fi.Size() > maxStateBytes {
		return State{}, fmt.Errorf("%d bytes, above the %d-byte limit", fi.Size(), maxStateBytes)
	}
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return State{}, err
	}
	return decodeState(data)
}

func crc32Checksum(b []byte) uint32 { return crc32.Checksum(b, crcTable) }
