package fast

import "unsafe"

// xorBytesAVX2 is dst[i] = src[i] ^ x for i < n, n a multiple of 32
// (xor_amd64.s): the padding copy of the families that read x+128.
//
//go:noescape
func xorBytesAVX2(dst, src *byte, n int, x byte)

func init() {
	if hasAVX2 {
		xorBytesArch = func(dst, src []byte, x byte) int {
			n := len(src) &^ 31
			if n > 0 {
				xorBytesAVX2(unsafe.SliceData(dst[:n]), unsafe.SliceData(src), n, x)
			}
			return n
		}
	}
}
