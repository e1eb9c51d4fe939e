package fast

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestAddTableAVX2CoversEveryPairAndLength looks up every (x, y) pair
// through the AVX2 gather (table entries random, so that a wrong byte
// shows) and lengths around the 16-element steps.
func TestAddTableAVX2CoversEveryPairAndLength(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2")
	}
	r := rand.New(rand.NewPCG(7, 7))
	tab := new([1 << 16]int8)
	for i := range tab {
		tab[i] = int8(r.Uint32())
	}
	x, y := make([]uint8, 1<<16), make([]uint8, 1<<16)
	for i := range x {
		x[i], y[i] = uint8(i>>8), uint8(i)
	}
	r.Shuffle(len(x), func(i, j int) { x[i], x[j], y[i], y[j] = x[j], x[i], y[j], y[i] })
	for _, n := range []int{1 << 16, 0, 1, 15, 16, 17, 31, 33, 1000} {
		want, got := make([]int8, n), make([]int8, n+16)
		addTableGo(tab, x[:n], y[:n], want)
		addTable(tab, x[:n], y[:n], got[:n])
		if !slices.Equal(got[:n], want) {
			t.Fatalf("%d elements: the AVX2 lookup differs from the table", n)
		}
		if slices.ContainsFunc(got[n:], func(v int8) bool { return v != 0 }) {
			t.Fatalf("%d elements: written past the end", n)
		}
	}
}
