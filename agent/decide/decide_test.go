package decide

import (
	"testing"
	"time"
)

func TestDebouncerChangesStateOnlyWhenALabelIsStable(t *testing.T) {
	cat, dog, weakCat, nothing := []float32{.9, .1}, []float32{.2, .8}, []float32{.5, .5}, []float32{.3, .3}
	tests := []struct {
		name   string
		frames [][]float32
		want   []int // state after each frame; changes are where it differs from the previous
	}{
		{"N frames above threshold make a state", [][]float32{cat, cat, cat}, []int{-1, -1, 0}},
		{"an interruption restarts the count", [][]float32{cat, cat, dog, cat, cat, cat}, []int{-1, -1, -1, -1, -1, 0}},
		{"a weak score above release keeps the state", [][]float32{cat, cat, cat, weakCat, weakCat, weakCat, weakCat}, []int{-1, -1, 0, 0, 0, 0, 0}},
		{"N frames below release lose the state", [][]float32{cat, cat, cat, nothing, nothing, nothing}, []int{-1, -1, 0, 0, 0, -1}},
		{"another stable label takes over", [][]float32{cat, cat, cat, dog, dog, dog}, []int{-1, -1, 0, 0, 0, 1}},
		{"scores below threshold never make a state", [][]float32{weakCat, weakCat, weakCat, weakCat}, []int{-1, -1, -1, -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDebouncer(Config{Threshold: .6, Release: .4, Frames: 3})
			prev := -1
			for i, f := range tc.frames {
				st, changed := d.Update(f)
				if st != tc.want[i] || changed != (st != prev) {
					t.Fatalf("frame %d: state %d changed %v, want state %d changed %v", i+1, st, changed, tc.want[i], tc.want[i] != prev)
				}
				prev = st
			}
		})
	}
}

func TestRateLimiterLetsOneEventThroughPerInterval(t *testing.T) {
	r := NewRateLimiter(2) // one per 500 ms
	t0 := time.Unix(100, 0)
	for _, c := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {100 * time.Millisecond, false}, {499 * time.Millisecond, false}, {500 * time.Millisecond, true}, {900 * time.Millisecond, false}, {1000 * time.Millisecond, true}} {
		if got := r.Allow(t0.Add(c.at)); got != c.want {
			t.Errorf("Allow at +%v = %v, want %v", c.at, got, c.want)
		}
	}
	all := NewRateLimiter(0)
	for range 5 {
		if !all.Allow(t0) {
			t.Fatal("a rate of 0 must let every event through")
		}
	}
}
