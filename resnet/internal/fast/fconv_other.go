//go:build !amd64 && !arm64

package fast

const (
	hasFMA       = false
	hasAVX512F   = false
	hasNEONFloat = false
)

func ftileAVX2(a *ftileArgs)     { panic("fast: AVX2 float kernel called off amd64") }
func ftileAVX512(a *ftileArgs)   { panic("fast: AVX-512 float kernel called off amd64") }
func ftileAVX512x6(a *ftileArgs) { panic("fast: AVX-512 float kernel called off amd64") }
func ftileNEON(a *ftileArgs)     { panic("fast: NEON float kernel called off arm64") }

func ftileRunAVX2(a *ftileArgs)     { panic("fast: AVX2 float kernel called off amd64") }
func ftileRunAVX512(a *ftileArgs)   { panic("fast: AVX-512 float kernel called off amd64") }
func ftileRunAVX512x6(a *ftileArgs) { panic("fast: AVX-512 float kernel called off amd64") }
func ftileAVX512x8(a *ftileArgs)    { panic("fast: AVX-512 float kernel called off amd64") }
func ftileRunAVX512x8(a *ftileArgs) { panic("fast: AVX-512 float kernel called off amd64") }
