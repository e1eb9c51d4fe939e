#include "textflag.h"

// func maxBytesAVX2(dst, src *int8, n int)
TEXT ·maxBytesAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	XORQ AX, AX
loop:
	VMOVDQU (DI)(AX*1), Y0
	VPMAXSB (SI)(AX*1), Y0, Y0
	VMOVDQU Y0, (DI)(AX*1)
	ADDQ $32, AX
	CMPQ AX, CX
	JLT loop
	VZEROUPPER
	RET

// func maxWindowAVX2(dst, src *int8, c, fh, fw, rowStride int)
//
// dst[j] = max over the fh x fw window at src (taps c bytes apart along a
// row, rowStride bytes between rows) for j < c, c a multiple of 32: each
// 32-byte chunk is maxed in a register over all taps and stored once.
TEXT ·maxWindowAVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ c+16(FP), CX
	MOVQ fh+24(FP), R8
	MOVQ fw+32(FP), R9
	MOVQ rowStride+40(FP), R10
	XORQ AX, AX

chunk:
	LEAQ    (SI)(AX*1), BX
	VMOVDQU (BX), Y0
	MOVQ    R8, DX

row:
	MOVQ BX, R12
	MOVQ R9, R13

col:
	VPMAXSB (R12), Y0, Y0
	ADDQ    CX, R12
	DECQ    R13
	JNZ     col
	ADDQ    R10, BX
	DECQ    DX
	JNZ     row
	VMOVDQU Y0, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JLT     chunk
	VZEROUPPER
	RET
