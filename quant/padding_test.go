package quant

import "testing"

func TestExplicitPaddingBecomesSameOnlyWhereTFLiteAgrees(t *testing.T) {
	cases := []struct {
		name            string
		n, k, s, before int
		after           int
		valid, same     bool
	}{
		{"3x3 stride 1 pad 1", 14, 3, 1, 1, 1, false, true},
		{"3x3 stride 2 pad 1, even input", 14, 3, 2, 1, 1, false, false},
		{"3x3 stride 2 pad 1, odd input", 7, 3, 2, 1, 1, false, true},
		{"1x1 stride 2 no padding, even input", 8, 1, 2, 0, 0, true, true},
		{"1x1 stride 2 no padding, odd input", 7, 1, 2, 0, 0, true, true},
		{"7x7 stride 2 pad 3, even input", 224, 7, 2, 3, 3, false, false},
		{"3x3 stride 1 no padding", 9, 3, 1, 0, 0, true, false},
		{"2x2 stride 2 no padding, odd input", 7, 2, 2, 0, 0, true, false},
	}
	for _, tc := range cases {
		_, valid, same := padding(tc.n, tc.k, tc.s, tc.before, tc.after)
		if valid != tc.valid || same != tc.same {
			t.Errorf("%s: VALID %v SAME %v, want %v %v", tc.name, valid, same, tc.valid, tc.same)
		}
	}
}
