package head

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"sync"
)

// Hard limits that no configuration can raise: they keep a corrupt or
// hostile state file, or a runaway client, from exhausting memory.
const (
	MaxDim              = 1 << 16 // embedding width (ResNet-50 uses 2048)
	MaxPerLabelLimit    = 10000   // examples kept per label
	MaxLabelsLimit      = 4096    // labels in a store or head
	MaxThumbnailLimit   = 1 << 20 // bytes per thumbnail
	defaultPerLabel     = 100
	defaultMaxLabels    = 256
	defaultMaxThumbnail = 64 << 10
)

// Limits bound a Store. Zero fields take the defaults.
type Limits struct {
	// PerLabel is how many examples a label keeps (default 100). When a
	// label is full, Add drops its oldest example: the store follows the
	// scene as it changes (light, season, camera angle) rather than keeping
	// a uniform sample of all history, and the policy is deterministic.
	PerLabel int
	// MaxLabels bounds the number of labels (default 256).
	MaxLabels int
	// MaxThumbnailBytes bounds each JPEG thumbnail (default 64 KiB).
	MaxThumbnailBytes int
}

func (l Limits) withDefaults() (Limits, error) {
	if l.PerLabel == 0 {
		l.PerLabel = defaultPerLabel
	}
	if l.MaxLabels == 0 {
		l.MaxLabels = defaultMaxLabels
	}
	if l.MaxThumbnailBytes == 0 {
		l.MaxThumbnailBytes = defaultMaxThumbnail
	}
	switch {
	case l.PerLabel < 1 || l.PerLabel > MaxPerLabelLimit:
		return l, fmt.Errorf("head: examples per label %d is out of range [1, %d]", l.PerLabel, MaxPerLabelLimit)
	case l.MaxLabels < 1 || l.MaxLabels > MaxLabelsLimit:
		return l, fmt.Errorf("head: label limit %d is out of range [1, %d]", l.MaxLabels, MaxLabelsLimit)
	case l.MaxThumbnailBytes < 1 || l.MaxThumbnailBytes > MaxThumbnailLimit:
		return l, fmt.Errorf("head: thumbnail limit %d bytes is out of range [1, %d]", l.MaxThumbnailBytes, MaxThumbnailLimit)
	}
	return l, nil
}

// LabelExamples are one label's examples, oldest first. Thumbnails is
// either nil or as long as Embeddings, with nil entries where an example
// has no thumbnail.
type LabelExamples struct {
	Label      string
	Embeddings [][]float32
	Thumbnails [][]byte
}

// Examples is an immutable copy of a store's contents: what the Trainer and
// Dir.Save take. Labels keep the order in which they were first added.
type Examples struct {
	Dim    int
	Labels []LabelExamples
}

// Count is the total number of examples.
func (e Examples) Count() int {
	n := 0
	for _, l := range e.Labels {
		n += len(l.Embeddings)
	}
	return n
}

// Store holds labelled embeddings, bounded per label (see Limits). It is
// safe for concurrent use.
type Store struct {
	mu     sync.Mutex
	dim    int
	limits Limits
	labels []*LabelExamples // first-added order
}

// NewStore makes an empty store for embeddings of width dim.
func NewStore(dim int, limits Limits) (*Store, error) {
	if dim < 1 || dim > MaxDim {
		return nil, fmt.Errorf("head: embedding width %d is out of range [1, %d]", dim, MaxDim)
	}
	l, err := limits.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Store{dim: dim, limits: l}, nil
}

// NewStoreFrom makes a store holding ex (as loaded by Dir.Load), keeping
// only the newest PerLabel examples of each label.
func NewStoreFrom(ex Examples, limits Limits) (*Store, error) {
	s, err := NewStore(ex.Dim, limits)
	if err != nil {
		return nil, err
	}
	for _, l := range ex.Labels {
		for i, e := range l.Embeddings {
			var th []byte
			if l.Thumbnails != nil {
				th = l.Thumbnails[i]
			}
			if _, err := s.Add(l.Label, e, th); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// Dim is the embedding width the store accepts.
func (s *Store) Dim() int { return s.dim }

// checkEmbedding refuses wrong widths and non-finite values, which would
// poison every later training run.
func checkEmbedding(e []float32, dim int) error {
	if len(e) != dim {
		return fmt.Errorf("embedding has %d values; the model's embedding has %d", len(e), dim)
	}
	for i, v := range e {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("embedding value %d is %v; want finite values", i, v)
		}
	}
	return nil
}

// jpegMagic starts every JPEG file (SOI marker and the next marker's 0xFF).
var jpegMagic = []byte{0xFF, 0xD8, 0xFF}

// Add stores a copy of one labelled embedding with an optional JPEG
// thumbnail (nil for none). It reports whether the label was full and its
// oldest example was dropped.
func (s *Store) Add(label string, embedding []float32, thumbnail []byte) (dropped bool, err error) {
	if err := CheckLabel(label); err != nil {
		return false, fmt.Errorf("head: adding an example: %w", err)
	}
	if err := checkEmbedding(embedding, s.dim); err != nil {
		return false, fmt.Errorf("head: adding an example for %q: %w", label, err)
	}
	if len(thumbnail) > s.limits.MaxThumbnailBytes {
		return false, fmt.Errorf("head: adding an example for %q: thumbnail is %d bytes; the limit is %d (send a smaller JPEG)",
			label, len(thumbnail), s.limits.MaxThumbnailBytes)
	}
	if len(thumbnail) > 0 && !bytes.HasPrefix(thumbnail, jpegMagic) {
		return false, fmt.Errorf("head: adding an example for %q: thumbnail does not start like a JPEG file (FF D8 FF)", label)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	le := s.find(label)
	if le == nil {
		if len(s.labels) >= s.limits.MaxLabels {
			return false, fmt.Errorf("head: adding label %q: the store already holds %d labels, the limit; remove one first", label, len(s.labels))
		}
		le = &LabelExamples{Label: label}
		s.labels = append(s.labels, le)
	}
	if len(le.Embeddings) >= s.limits.PerLabel {
		le.Embeddings = slices.Delete(le.Embeddings, 0, 1)
		if le.Thumbnails != nil {
			le.Thumbnails = slices.Delete(le.Thumbnails, 0, 1)
		}
		dropped = true
	}
	le.Embeddings = append(le.Embeddings, slices.Clone(embedding))
	if len(thumbnail) > 0 && le.Thumbnails == nil {
		le.Thumbnails = make([][]byte, len(le.Embeddings)-1, cap(le.Embeddings))
	}
	if le.Thumbnails != nil {
		le.Thumbnails = append(le.Thumbnails, bytes.Clone(thumbnail))
	}
	return dropped, nil
}

func (s *Store) find(label string) *LabelExamples {
	for _, l := range s.labels {
		if l.Label == label {
			return l
		}
	}
	return nil
}

// Remove forgets a label and all its examples; it reports whether the
// label existed.
func (s *Store) Remove(label string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, l := range s.labels {
		if l.Label == label {
			s.labels = slices.Delete(s.labels, i, i+1)
			return true
		}
	}
	return false
}

// Counts returns the number of examples per label, in first-added order.
func (s *Store) Counts() []LabelCount {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]LabelCount, len(s.labels))
	for i, l := range s.labels {
		out[i] = LabelCount{l.Label, len(l.Embeddings)}
	}
	return out
}

// LabelCount is a label and how many examples it holds.
type LabelCount struct {
	Label string
	Count int
}

// Snapshot returns a deep copy of the contents, safe to hand to another
// goroutine while the store keeps changing.
func (s *Store) Snapshot() Examples {
	s.mu.Lock()
	defer s.mu.Unlock()
	ex := Examples{Dim: s.dim, Labels: make([]LabelExamples, len(s.labels))}
	for i, l := range s.labels {
		c := LabelExamples{Label: l.Label, Embeddings: make([][]float32, len(l.Embeddings))}
		for k, e := range l.Embeddings {
			c.Embeddings[k] = slices.Clone(e)
		}
		if l.Thumbnails != nil {
			c.Thumbnails = make([][]byte, len(l.Thumbnails))
			for k, t := range l.Thumbnails {
				c.Thumbnails[k] = bytes.Clone(t)
			}
		}
		ex.Labels[i] = c
	}
	return ex
}
