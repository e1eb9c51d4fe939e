//go:build !amd64

package fast

const hasAVX512VNNI = false

func tileAVX512VNNI(a *tileArgs) { panic("fast: AVX-512 VNNI kernel called on a CPU without it") }
