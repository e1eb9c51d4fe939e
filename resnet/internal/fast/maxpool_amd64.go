package fast

// maxBytesAVX2 is dst[i] = max(dst[i], src[i]) for i < n, n a multiple of 32.
//
//go:noescape
func maxBytesAVX2(dst, src *int8, n int)

func maxInto(dst, src []int8) {
	n := len(dst) &^ 31
	if hasAVX2 && n > 0 {
		maxBytesAVX2(&dst[0], &src[:len(dst)][0], n)
	}
	maxIntoGo(dst[n:], src[n:len(dst)])
}
