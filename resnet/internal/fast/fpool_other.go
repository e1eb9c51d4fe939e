//go:build !amd64

package fast

func fmaxPoolAVX2(dst, src *float32, offs *int32, ntaps, n int, lo, hi float32) {
	panic("fast: AVX2 float max pool called off amd64")
}
