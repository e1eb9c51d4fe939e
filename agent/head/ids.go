package head

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
)

// Example ids name stored examples for the agent's web page
// (GET /api/v1/examples/<id>.jpg): 16 hex digits of a hash of the label
// and the embedding, then "-<n>" for the n-th identical example of a label
// (a looping camera gives the same frame again). An id never holds the
// label itself, so a label can never become part of a path. Ids are stable
// while the example is stored.

// ExampleIDs are one label's example ids, oldest first; Thumbnail[i] says
// whether example i has a thumbnail.
type ExampleIDs struct {
	Label     string
	IDs       []string
	Thumbnail []bool
}

func exampleIDs(l *LabelExamples) ExampleIDs {
	out := ExampleIDs{Label: l.Label, IDs: make([]string, len(l.Embeddings)), Thumbnail: make([]bool, len(l.Embeddings))}
	seen := map[uint64]int{}
	var b [4]byte
	for i, e := range l.Embeddings {
		h := fnv.New64a()
		h.Write([]byte(l.Label))
		h.Write([]byte{0})
		for _, v := range e {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			h.Write(b[:])
		}
		sum := h.Sum64()
		seen[sum]++
		out.IDs[i] = fmt.Sprintf("%016x", sum)
		if n := seen[sum]; n > 1 {
			out.IDs[i] += fmt.Sprintf("-%d", n)
		}
		out.Thumbnail[i] = l.Thumbnails != nil && len(l.Thumbnails[i]) > 0
	}
	return out
}

// ExampleIDs lists every label's example ids, in the store's label order.
func (s *Store) ExampleIDs() []ExampleIDs {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ExampleIDs, len(s.labels))
	for i, l := range s.labels {
		out[i] = exampleIDs(l)
	}
	return out
}

// Thumbnail returns a copy of the JPEG thumbnail of the example with id
// and its label; ok is false when no stored example has that id or it has
// no thumbnail.
func (s *Store) Thumbnail(id string) (jpeg []byte, label string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.labels {
		if l.Thumbnails == nil {
			continue
		}
		for i, x := range exampleIDs(l).IDs {
			if x == id && len(l.Thumbnails[i]) > 0 {
				return append([]byte(nil), l.Thumbnails[i]...), l.Label, true
			}
		}
	}
	return nil, "", false
}
