package interp

import (
	"cmp"
	"slices"
)

// lifetime is the span of operator steps during which an activation tensor
// must keep its bytes: from the operator that writes it (step 0 for graph
// inputs) to the last operator that reads it (the last step for graph
// outputs).
type lifetime struct {
	tensor      int
	size        int64 // bytes, rounded up to alignment
	first, last int
}

func (a lifetime) overlaps(b lifetime) bool { return a.first <= b.last && b.first <= a.last }

// roundUp rounds n up to a multiple of alignment.
func roundUp(n int64) int64 { return (n + alignment - 1) / alignment * alignment }

// planArena places every tensor in one arena so that tensors alive at the
// same step never share bytes, and returns the offsets (by position in
// lives) and the arena size. It is TFLite's greedy-by-size strategy: largest
// tensors first, each at the lowest offset that fits between the tensors
// already placed whose lifetimes overlap its own. An operator's output never
// overlaps its inputs, because both are alive at that operator's step.
// With keepAll every tensor gets its own region.
func planArena(lives []lifetime, keepAll bool) (offsets []int64, total int64) {
	offsets = make([]int64, len(lives))
	if keepAll {
		for i, l := range lives {
			offsets[i] = total
			total += l.size
		}
		return offsets, total
	}
	order := make([]int, len(lives))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Compare(lives[b].size, lives[a].size) // largest first; stable keeps it deterministic
	})
	var placed []int // positions in lives, kept sorted by offset
	for _, i := range order {
		l := lives[i]
		offset := int64(0)
		for _, j := range placed {
			if !l.overlaps(lives[j]) {
				continue
			}
			if offsets[j] >= offset+l.size {
				break // the gap before j is big enough
			}
			offset = max(offset, offsets[j]+lives[j].size)
		}
		offsets[i] = offset
		total = max(total, offset+l.size)
		at, _ := slices.BinarySearchFunc(placed, offset, func(j int, off int64) int { return cmp.Compare(offsets[j], off) })
		placed = slices.Insert(placed, at, i)
	}
	return offsets, total
}
