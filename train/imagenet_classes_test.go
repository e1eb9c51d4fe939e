package train

import "testing"

func TestImageNetClassesAreTheThousandInIndexOrder(t *testing.T) {
	names := ImageNetClasses()
	if len(names) != 1000 {
		t.Fatalf("%d ImageNet class names, want 1000", len(names))
	}
	for i, want := range map[int]string{0: "tench", 1: "goldfish", 2: "great white shark", 134: "crane", 207: "golden retriever",
		409: "analog clock", 517: "crane", 999: "toilet tissue"} {
		if names[i] != want {
			t.Errorf("class %d is %q, want %q", i, names[i], want)
		}
	}
}
