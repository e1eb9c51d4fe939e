package fast

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// softmaxRows gives rows that exercise every table entry and the edges:
// random values, narrow ranges under the maximum, all equal, one hot, only
// -128 and 127, every int8 once (every difference 0..255 in one row).
func softmaxRows(r *rand.Rand, depth int) [][]int8 {
	rows := make([][]int8, 0, 8)
	add := func(f func(i int) int8) {
		row := make([]int8, depth)
		for i := range row {
			row[i] = f(i)
		}
		rows = append(rows, row)
	}
	add(func(int) int8 { return int8(r.IntN(256) - 128) })
	lo, w := r.IntN(256)-128, 1+r.IntN(20)
	add(func(int) int8 { return int8(min(lo+r.IntN(w), 127)) })
	c := int8(r.IntN(256) - 128)
	add(func(int) int8 { return c })
	hot := r.IntN(depth)
	add(func(i int) int8 {
		if i == hot {
			return 127
		}
		return -128
	})
	add(func(int) int8 { return []int8{-128, 127}[r.IntN(2)] })
	add(func(i int) int8 { return int8(i%256 - 128) })
	add(func(int) int8 { return int8(r.NormFloat64()*20) - 60 })
	return rows
}

// fast.Softmax gives ref.SoftmaxInt8's bytes for random parameter sets
// (betas and input scales over several decades, so DiffMin from cutting
// nothing to cutting most differences) and rows of every kind, depths from
// 1 to past 4096 (where the reference's int32 sum can wrap).
func TestSoftmaxMatchesReferenceBitForBit(t *testing.T) {
	r := rand.New(rand.NewPCG(71, 72))
	params, rowsChecked := 0, 0
	for params < 300 {
		beta := float32(math.Pow(10, r.Float64()*3-1.5)) // 0.03 .. 30
		scale := float32(math.Pow(10, r.Float64()*4-4))  // 1e-4 .. 1
		if r.IntN(10) == 0 {
			beta = 1
		}
		depth := 1 + r.IntN(300)
		switch r.IntN(10) {
		case 0:
			depth = 1000
		case 1:
			depth = 4096 + r.IntN(3000)
		}
		outer := 1 + r.IntN(3)
		p, err := ref.NewSoftmaxInt8(outer, depth, beta, scale)
		if err != nil {
			continue
		}
		params++
		s := NewSoftmax(&p)
		rows := softmaxRows(r, depth)
		for i := 0; i+outer <= len(rows); i++ {
			in := slices.Concat(rows[i : i+outer]...)
			want, got := make([]int8, len(in)), make([]int8, len(in))
			ref.SoftmaxInt8(&p, in, want)
			s.Run(in, got)
			if !slices.Equal(got, want) {
				for j := range want {
					if got[j] != want[j] {
						t.Fatalf("beta %g scale %g (%+v) depth %d: element %d (input %d, row max %d) = %d, want %d", beta, scale, p, depth, j, in[j], slices.Max(in[j/depth*depth:][:depth]), got[j], want[j])
					}
				}
			}
			rowsChecked += outer
		}
	}
	t.Logf("%d parameter sets, %d rows", params, rowsChecked)
}
