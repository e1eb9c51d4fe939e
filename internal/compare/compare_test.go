package compare

import "testing"

func TestFloatsAndMaxAbs(t *testing.T) {
	if got := Floats([]int8{-128, 3}); len(got) != 2 || got[0] != -128 || got[1] != 3 {
		t.Errorf("Floats(int8) = %v", got)
	}
	if got := Floats([]float32{1.5, -2}); MaxAbs(got) != 2 {
		t.Errorf("MaxAbs(Floats(float32)) = %v, want 2", MaxAbs(got))
	}
	if Floats([]int32{1}) != nil || MaxAbs(nil) != 0 {
		t.Error("unsupported types and empty slices must give nil and 0")
	}
}
