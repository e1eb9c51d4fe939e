package fast

const (
	hasFMA     = false
	hasAVX512F = false
	// Advanced SIMD (FMLA on .4S included) is part of every ARMv8-A
	// application core.
	hasNEONFloat = true
)

// The float micro-kernel (ftile_arm64.s, written by gen_ftile.go).

//go:noescape
func ftileNEON(a *ftileArgs)

func ftileAVX2(a *ftileArgs)     { panic("fast: AVX2 float kernel called on arm64") }
func ftileAVX512(a *ftileArgs)   { panic("fast: AVX-512 float kernel called on arm64") }
func ftileAVX512x6(a *ftileArgs) { panic("fast: AVX-512 float kernel called on arm64") }

func ftileRunAVX2(a *ftileArgs)     { panic("fast: AVX2 float kernel called on arm64") }
func ftileRunAVX512(a *ftileArgs)   { panic("fast: AVX-512 float kernel called on arm64") }
func ftileRunAVX512x6(a *ftileArgs) { panic("fast: AVX-512 float kernel called on arm64") }
func ftileAVX512x8(a *ftileArgs)    { panic("fast: AVX-512 float kernel called on arm64") }
func ftileRunAVX512x8(a *ftileArgs) { panic("fast: AVX-512 float kernel called on arm64") }
