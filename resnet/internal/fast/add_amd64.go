package fast

import "unsafe"

// addTableAVX2 is out[i] = t[uint8(x[i])<<8|uint8(y[i])] for i < n, n a
// multiple of 16 (add_amd64.s).
//
//go:noescape
func addTableAVX2(t *[1 << 16]int8, x, y, out *int8, n int)

func addTable(t *[1 << 16]int8, x, y []uint8, o []int8) {
	n := 0
	if hasAVX2 {
		n = len(x) &^ 15
		if n > 0 {
			addTableAVX2(t, (*int8)(unsafe.Pointer(&x[0])), (*int8)(unsafe.Pointer(&y[:len(x)][0])), &o[:len(x)][0], n)
		}
	}
	addTableGo(t, x[n:], y[n:], o[n:])
}
