package head

import "slices"

// RemoveExample forgets the one stored example named id (ExampleIDs) and
// returns its label; ok is false when no stored example has that id. A
// label whose last example goes is removed, as Remove would.
func (s *Store) RemoveExample(id string) (label string, remaining int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for li, l := range s.labels {
		i := slices.Index(exampleIDs(l).IDs, id)
		if i < 0 {
			continue
		}
		l.Embeddings = slices.Delete(l.Embeddings, i, i+1)
		if l.Thumbnails != nil {
			l.Thumbnails = slices.Delete(l.Thumbnails, i, i+1)
		}
		if len(l.Embeddings) == 0 {
			s.labels = slices.Delete(s.labels, li, li+1)
		}
		return l.Label, len(l.Embeddings), true
	}
	return "", 0, false
}
