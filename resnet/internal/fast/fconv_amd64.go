package fast

import "golang.org/x/sys/cpu"

var (
	hasFMA     = cpu.X86.HasAVX2 && cpu.X86.HasFMA
	hasAVX512F = cpu.X86.HasAVX512F
)

const hasNEONFloat = false

// The float micro-kernels (ftile_amd64.s, written by gen_ftile.go).

//go:noescape
func ftileAVX2(a *ftileArgs)

//go:noescape
func ftileAVX512(a *ftileArgs)

//go:noescape
func ftileAVX512x6(a *ftileArgs)

//go:noescape
func ftileAVX512x8(a *ftileArgs)

//go:noescape
func ftileRunAVX2(a *ftileArgs)

//go:noescape
func ftileRunAVX512(a *ftileArgs)

//go:noescape
func ftileRunAVX512x6(a *ftileArgs)

//go:noescape
func ftileRunAVX512x8(a *ftileArgs)

func ftileNEON(a *ftileArgs) { panic("fast: NEON float kernel called on amd64") }
