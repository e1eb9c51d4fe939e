package fast

import "golang.org/x/sys/cpu"

var (
	hasAVX2       = cpu.X86.HasAVX2
	hasAVXVNNI    = cpu.X86.HasAVX2 && cpu.X86.HasAVXVNNI && !avxvnniAsEVEX() || avxvnniAsEVEX() && hasAVX512VNNI
	hasAVX512VNNI = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512VNNI
	hasAVX512BW   = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW // the computed ADD's ZMM kernels
)

// avxvnniAsEVEX reports whether tile_amd64.s was assembled with
// -D AVXVNNI_AS_EVEX (scripts/test-avxvnni.sh): the AVX-VNNI kernel then
// holds the EVEX VPDPBUSD (AVX-512 VNNI and VL) instead of the VEX one, so
// that its tests run on an AVX-512 VNNI CPU; it runs where that does.
func avxvnniAsEVEX() bool

const (
	hasNEON    = false
	hasNEONDot = false
)

// fp32RequantArch: the families whose assembly has the "xnnpack" (float32)
// requantization stage.
var fp32RequantArch = map[ISA]bool{AVX2: true, AVXVNNI: true, AVX512VNNI: true}

// The amd64 micro-kernels (tile_amd64.s, written by gen_tile.go): tileGo's
// contract, 4 pixels x 64 channels per call (AVX-512 VNNI and AVX2 also 32 and 16).

//go:noescape
func tileAVX512VNNI(a *tileArgs)

//go:noescape
func tileAVX512VNNIx32(a *tileArgs)

//go:noescape
func tileAVX512VNNIx16(a *tileArgs)

//go:noescape
func tileAVXVNNI(a *tileArgs)

//go:noescape
func tileAVX2(a *tileArgs)

//go:noescape
func tileAVX2x32(a *tileArgs)

//go:noescape
func tileAVX2x16(a *tileArgs)

func tileNEON(a *tileArgs)     { panic("fast: NEON kernel called on amd64") }
func tileNEONDot(a *tileArgs)  { panic("fast: NEON SDOT kernel called on amd64") }
func tileNEONDot1(a *tileArgs) { panic("fast: NEON SDOT kernel called on amd64") }

func tileNEONDotAdd(a *tileArgs) { panic("fast: NEON SDOT kernel called on amd64") }
