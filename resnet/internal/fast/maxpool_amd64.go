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

// maxWindowAVX2 is dst[:c] = the max over an fh x fw window of c-byte
// pixels at src, rowStride bytes between rows; c a multiple of 32, fh and
// fw at least 1 (maxpool_amd64.s).
//
//go:noescape
func maxWindowAVX2(dst, src *int8, c, fh, fw, rowStride int)

// maxWindow computes a non-empty window in one call when the kernel takes
// its channel count, else reports false.
func maxWindow(dst, src []int8, fh, fw, rowStride int) bool {
	c := len(dst)
	if !hasAVX2 || c&31 != 0 || c == 0 {
		return false
	}
	_ = src[(fh-1)*rowStride+(fw-1)*c+c-1] // the last tap lies in src
	maxWindowAVX2(&dst[0], &src[0], c, fh, fw, rowStride)
	return true
}
