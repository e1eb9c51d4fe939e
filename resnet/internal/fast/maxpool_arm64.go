package fast

// maxWindowNEON is dst[:c] = the max over an fh x fw window of c-byte
// pixels at src, rowStride bytes between rows; c a multiple of 16, fh and
// fw at least 1 (maxpool_arm64.s).
//
//go:noescape
func maxWindowNEON(dst, src *int8, c, fh, fw, rowStride int)

// maxWindow computes a non-empty window in one call when the channel count
// is a multiple of 16, else reports false.
func maxWindow(dst, src []int8, fh, fw, rowStride int) bool {
	c := len(dst)
	if c&15 != 0 || c == 0 {
		return false
	}
	_ = src[(fh-1)*rowStride+(fw-1)*c+c-1] // the last tap lies in src
	maxWindowNEON(&dst[0], &src[0], c, fh, fw, rowStride)
	return true
}
