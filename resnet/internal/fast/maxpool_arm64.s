#include "textflag.h"

// func maxWindowNEON(dst, src *int8, c, fh, fw, rowStride int)
//
// dst[j] = max over the fh x fw window at src (taps c bytes apart along a
// row, rowStride bytes between rows) for j < c, c a multiple of 16: 64
// channels at a time while they last (a ResNet stem pool pixel in one
// sweep), then 16, each chunk maxed in registers over every tap (SMAX,
// hand encoded: Go's assembler lacks it) and stored once. The first tap
// is loaded as the start and maxed again with itself: harmless.
TEXT ·maxWindowNEON(SB), NOSPLIT, $0-48
	MOVD dst+0(FP), R0
	MOVD src+8(FP), R1
	MOVD c+16(FP), R2
	MOVD fh+24(FP), R3
	MOVD fw+32(FP), R4
	MOVD rowStride+40(FP), R5
	MOVD R2, R11 // channels left
	CMP $64, R11
	BLT c16
c64:
	VLD1 (R1), [V0.B16, V1.B16, V2.B16, V3.B16]
	MOVD R1, R7
	MOVD R3, R8
r64:
	MOVD R7, R9
	MOVD R4, R10
t64:
	VLD1.P (R9)(R2), [V4.B16, V5.B16, V6.B16, V7.B16]
	WORD $0x4E246400 // smax v0.16b, v0.16b, v4.16b
	WORD $0x4E256421 // smax v1.16b, v1.16b, v5.16b
	WORD $0x4E266442 // smax v2.16b, v2.16b, v6.16b
	WORD $0x4E276463 // smax v3.16b, v3.16b, v7.16b
	SUBS $1, R10, R10
	BNE t64
	ADD R5, R7, R7
	SUBS $1, R8, R8
	BNE r64
	VST1.P [V0.B16, V1.B16, V2.B16, V3.B16], 64(R0)
	ADD $64, R1, R1
	SUB $64, R11, R11
	CMP $64, R11
	BGE c64
c16:
	CBZ R11, done
	VLD1 (R1), [V0.B16]
	MOVD R1, R7
	MOVD R3, R8
r16:
	MOVD R7, R9
	MOVD R4, R10
t16:
	VLD1.P (R9)(R2), [V4.B16]
	WORD $0x4E246400 // smax v0.16b, v0.16b, v4.16b
	SUBS $1, R10, R10
	BNE t16
	ADD R5, R7, R7
	SUBS $1, R8, R8
	BNE r16
	VST1.P [V0.B16], 16(R0)
	ADD $16, R1, R1
	SUB $16, R11, R11
	B c16
done:
	RET
