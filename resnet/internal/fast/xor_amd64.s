#include "textflag.h"

// func xorBytesAVX2(dst, src *byte, n int, x byte)
// dst[i] = src[i] ^ x for i < n, n a multiple of 32.
TEXT ·xorBytesAVX2(SB), NOSPLIT, $0-25
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVBLZX x+24(FP), AX
	MOVQ AX, X0
	VPBROADCASTB X0, Y0
	XORQ AX, AX
	CMPQ CX, $128
	JLT one
	MOVQ CX, DX
	ANDQ $-128, DX
four:
	VPXOR (SI)(AX*1), Y0, Y1
	VPXOR 32(SI)(AX*1), Y0, Y2
	VPXOR 64(SI)(AX*1), Y0, Y3
	VPXOR 96(SI)(AX*1), Y0, Y4
	VMOVDQU Y1, (DI)(AX*1)
	VMOVDQU Y2, 32(DI)(AX*1)
	VMOVDQU Y3, 64(DI)(AX*1)
	VMOVDQU Y4, 96(DI)(AX*1)
	ADDQ $128, AX
	CMPQ AX, DX
	JLT four
one:
	CMPQ AX, CX
	JGE done
	VPXOR (SI)(AX*1), Y0, Y1
	VMOVDQU Y1, (DI)(AX*1)
	ADDQ $32, AX
	JMP one
done:
	VZEROUPPER
	RET
