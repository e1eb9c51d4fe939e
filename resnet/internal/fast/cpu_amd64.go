package fast

import "golang.org/x/sys/cpu"

var hasAVX512VNNI = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512VNNI

// tileAVX512VNNI is the AVX-512 VNNI micro-kernel (tile_amd64.s, written by
// gen_tile.go): tileGo's contract, 4 pixels x 64 channels per call.
//
//go:noescape
func tileAVX512VNNI(a *tileArgs)
