package fast

import "golang.org/x/sys/cpu"

const (
	hasAVX2       = false
	hasAVXVNNI    = false
	hasAVX512VNNI = false
	// Advanced SIMD is part of every ARMv8-A application core.
	hasNEON = true
)

// The SDOT kernel's epilogue also uses SQRDMLAH (ARMv8.1's RDM, part of
// every ARMv8.2 core, and so of every core with SDOT).
var hasNEONDot = cpu.ARM64.HasASIMDDP && cpu.ARM64.HasASIMDRDM

// fp32RequantArch: the families whose assembly has the "xnnpack" (float32)
// requantization stage.
var fp32RequantArch = map[ISA]bool{NEON: true, NEONDot: true}

// The arm64 micro-kernels (tile_arm64.s, written by gen_tile.go): tileGo's
// contract, 4 pixels x 64 channels per call, on signed input bytes.

//go:noescape
func tileNEON(a *tileArgs)

//go:noescape
func tileNEONDot(a *tileArgs)

// tileNEONDot1 is tileNEONDot for one pixel (in[0], out[0]), for layers
// with Conv.dot1 only.
//
//go:noescape
func tileNEONDot1(a *tileArgs)

// tileNEONDotAdd is tileNEONDot with the fused residual ADD (tileArgs.addT,
// resd), for layers that Conv.fusedKernel accepts only.
//
//go:noescape
func tileNEONDotAdd(a *tileArgs)

func tileAVX512VNNI(a *tileArgs)    { panic("fast: AVX-512 VNNI kernel called on arm64") }
func tileAVX512VNNIx32(a *tileArgs) { panic("fast: AVX-512 VNNI kernel called on arm64") }
func tileAVX512VNNIx16(a *tileArgs) { panic("fast: AVX-512 VNNI kernel called on arm64") }
func tileAVXVNNI(a *tileArgs)       { panic("fast: AVX-VNNI kernel called on arm64") }
func tileAVX2(a *tileArgs)          { panic("fast: AVX2 kernel called on arm64") }
func tileAVX2x32(a *tileArgs)       { panic("fast: AVX2 kernel called on arm64") }
func tileAVX2x16(a *tileArgs)       { panic("fast: AVX2 kernel called on arm64") }
