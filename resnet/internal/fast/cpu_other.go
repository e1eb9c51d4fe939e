//go:build !amd64 && !arm64

package fast

const (
	hasAVX2       = false
	hasAVXVNNI    = false
	hasAVX512VNNI = false
	hasNEON       = false
	hasNEONDot    = false
)

// fp32RequantArch: the families whose assembly has the "xnnpack" (float32)
// requantization stage.
var fp32RequantArch = map[ISA]bool{}

func tileAVX512VNNI(a *tileArgs)    { panic("fast: AVX-512 VNNI kernel called on a CPU without it") }
func tileAVX512VNNIx32(a *tileArgs) { panic("fast: AVX-512 VNNI kernel called on a CPU without it") }
func tileAVX512VNNIx16(a *tileArgs) { panic("fast: AVX-512 VNNI kernel called on a CPU without it") }
func tileAVXVNNI(a *tileArgs)       { panic("fast: AVX-VNNI kernel called on a CPU without it") }
func tileAVX2(a *tileArgs)          { panic("fast: AVX2 kernel called on a CPU without it") }
func tileAVX2x32(a *tileArgs)       { panic("fast: AVX2 kernel called on a CPU without it") }
func tileAVX2x16(a *tileArgs)       { panic("fast: AVX2 kernel called on a CPU without it") }
func tileNEON(a *tileArgs)          { panic("fast: NEON kernel called on a CPU without it") }
func tileNEONDot(a *tileArgs)       { panic("fast: NEON SDOT kernel called on a CPU without it") }
func tileNEONDot1(a *tileArgs)      { panic("fast: NEON SDOT kernel called on a CPU without it") }
func tileNEONDotAdd(a *tileArgs)    { panic("fast: NEON SDOT kernel called on a CPU without it") }
