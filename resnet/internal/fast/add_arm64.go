package fast

import (
	"unsafe"

	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// addTableNEON is out[i] = t[uint8(x[i])<<8|uint8(y[i])] for i < n, n a
// multiple of 16 (add_arm64.s).
//
//go:noescape
func addTableNEON(t *[1 << 16]int8, x, y, out *int8, n int)

func addTable(t *[1 << 16]int8, x, y []uint8, o []int8) {
	n := len(x) &^ 15
	if n > 0 {
		addTableNEON(t, (*int8)(unsafe.Pointer(&x[0])), (*int8)(unsafe.Pointer(&y[0])), &o[0], n)
	}
	addTableGo(t, x[n:], y[n:], o[n:])
}

// maxBytesNEON is dst[i] = max(dst[i], src[i]) for i < n, n a multiple of
// 16 (add_arm64.s).
//
//go:noescape
func maxBytesNEON(dst, src *int8, n int)

func maxInto(dst, src []int8) {
	n := len(dst) &^ 15
	if n > 0 {
		maxBytesNEON(&dst[0], &src[:len(dst)][0], n)
	}
	if n < len(dst) {
		maxIntoGo(dst[n:], src[n:len(dst)])
	}
}

// addParams is amd64's computed ADD (add_amd64.go); none here.
type addParams struct{}

func newAddParams(*ref.Add) *addParams { return nil }

func addCompute(*addParams, []uint8, []uint8, []int8) int { return 0 }
