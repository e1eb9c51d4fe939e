package head

import (
	"math"
	"strings"
	"testing"
)

func TestLabelValidation(t *testing.T) {
	for _, tc := range []struct {
		label string
		want  string // "" for valid
	}{
		{"cat", ""},
		{"red car 2", ""},
		{"v1.2_beta-x", ""},
		{"Äpfel", ""},
		{"猫", ""},
		{"cafe\u0301", ""}, // decomposed é
		{"", "empty"},
		{"a/b", "'/'"},
		{"tab\there", "'\\t'"},
		{"nul\x00", "'\\x00'"},
		{"emoji 🐈", "not allowed"},
		{" lead", "space"},
		{"trail ", "space"},
		{"..", "reserved"},
		{"\xff\xfe", "UTF-8"},
		{strings.Repeat("a", MaxLabelBytes+1), "bytes long"},
		{"\u0301accent first", "not allowed"},
	} {
		err := ValidateLabel(tc.label)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("ValidateLabel(%q) = %v, want it accepted", tc.label, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("ValidateLabel(%q) = %v, want an error containing %q", tc.label, err, tc.want)
		}
	}
}

func TestAFullLabelDropsItsOldestExample(t *testing.T) {
	s, _ := NewStore(1, Limits{PerLabel: 3})
	for i := range 5 {
		dropped, err := s.Add("x", []float32{float32(i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if dropped != (i >= 3) {
			t.Errorf("adding example %d: dropped=%v", i, dropped)
		}
	}
	got := s.Snapshot().Labels[0].Embeddings
	if len(got) != 3 || got[0][0] != 2 || got[2][0] != 4 {
		t.Fatalf("kept %v, want the newest three [2 3 4]", got)
	}
}

func TestThumbnailsStayBesideTheirEmbeddings(t *testing.T) {
	s, _ := NewStore(1, Limits{PerLabel: 2})
	jpeg := func(b byte) []byte { return []byte{0xFF, 0xD8, 0xFF, b} }
	s.Add("x", []float32{0}, nil)
	s.Add("x", []float32{1}, jpeg(1))
	s.Add("x", []float32{2}, jpeg(2))
	l := s.Snapshot().Labels[0]
	if len(l.Thumbnails) != 2 || l.Thumbnails[0][3] != 1 || l.Thumbnails[1][3] != 2 || l.Embeddings[0][0] != 1 {
		t.Fatalf("got embeddings %v thumbnails %v", l.Embeddings, l.Thumbnails)
	}
}

func TestStoreRejectsBadInput(t *testing.T) {
	s, _ := NewStore(2, Limits{MaxLabels: 1, MaxThumbnailBytes: 8})
	s.Add("a", []float32{1, 2}, nil)
	for _, tc := range []struct {
		name, label string
		emb         []float32
		thumb       []byte
		want        string
	}{
		{"empty label", "", []float32{1, 2}, nil, "empty"},
		{"label not UTF-8", "a\xffb", []float32{1, 2}, nil, "not valid UTF-8"},
		{"wrong width", "a", []float32{1}, nil, "has 1 values"},
		{"NaN", "a", []float32{1, float32(math.NaN())}, nil, "NaN"},
		{"infinity", "a", []float32{float32(math.Inf(1)), 0}, nil, "Inf"},
		{"too many labels", "b", []float32{1, 2}, nil, "limit"},
		{"huge thumbnail", "a", []float32{1, 2}, make([]byte, 9), "9 bytes"},
		{"not a JPEG", "a", []float32{1, 2}, []byte("GIF89a"), "JPEG"},
	} {
		if _, err := s.Add(tc.label, tc.emb, tc.thumb); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	for _, l := range []Limits{{PerLabel: MaxPerLabelLimit + 1}, {MaxLabels: -1}, {MaxThumbnailBytes: 1 << 30}} {
		if _, err := NewStore(2, l); err == nil {
			t.Errorf("NewStore accepted limits %+v", l)
		}
	}
	for _, dim := range []int{0, -1, MaxDim + 1} {
		if _, err := NewStore(dim, Limits{}); err == nil {
			t.Errorf("NewStore accepted width %d", dim)
		}
	}
}

func TestSnapshotsDoNotChangeWithTheStore(t *testing.T) {
	s, _ := NewStore(1, Limits{})
	s.Add("x", []float32{1}, nil)
	snap := s.Snapshot()
	s.Add("x", []float32{2}, nil)
	s.Remove("x")
	if len(snap.Labels) != 1 || len(snap.Labels[0].Embeddings) != 1 {
		t.Fatalf("snapshot changed: %+v", snap)
	}
}
