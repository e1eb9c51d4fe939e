package fast

// fmaxPoolAVX2 is the inner window of FMaxPool (fpool_amd64.s).
//
//go:noescape
func fmaxPoolAVX2(dst, src *float32, offs *int32, ntaps, n int, lo, hi float32)
