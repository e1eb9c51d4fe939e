#include "textflag.h"

// func quantizeNEON(in *float32, out *int8, n int, scale float32, zp int32)
//
// out[i] = QUANTIZE(in[i]) for i < n, n a multiple of 16, exactly as
// ref.QuantizeInt8: FDIV (the float32 division x/scale), FCVTAS (round
// to nearest, ties away from zero, saturating to int32, NaN to 0), SQADD
// of the zero point (saturating), then two saturating narrowings to int8.
// Hand encoded (Go's assembler lacks these); checked with GNU as.
TEXT ·quantizeNEON(SB), NOSPLIT, $0-32
	MOVD in+0(FP), R0
	MOVD out+8(FP), R1
	MOVD n+16(FP), R2
	MOVWU scale+24(FP), R4
	MOVW zp+28(FP), R5
	CBZ R2, done
	WORD $0x4E040C90 // dup v16.4s, w4
	WORD $0x4E040CB1 // dup v17.4s, w5
loop:
	VLD1.P 64(R0), [V0.S4, V1.S4, V2.S4, V3.S4]
	WORD $0x6E30FC00 // fdiv v0.4s, v0.4s, v16.4s
	WORD $0x6E30FC21 // fdiv v1.4s, v1.4s, v16.4s
	WORD $0x6E30FC42 // fdiv v2.4s, v2.4s, v16.4s
	WORD $0x6E30FC63 // fdiv v3.4s, v3.4s, v16.4s
	WORD $0x4E21C800 // fcvtas v0.4s, v0.4s
	WORD $0x4E21C821 // fcvtas v1.4s, v1.4s
	WORD $0x4E21C842 // fcvtas v2.4s, v2.4s
	WORD $0x4E21C863 // fcvtas v3.4s, v3.4s
	WORD $0x4EB10C00 // sqadd v0.4s, v0.4s, v17.4s
	WORD $0x4EB10C21 // sqadd v1.4s, v1.4s, v17.4s
	WORD $0x4EB10C42 // sqadd v2.4s, v2.4s, v17.4s
	WORD $0x4EB10C63 // sqadd v3.4s, v3.4s, v17.4s
	WORD $0x0E614804 // sqxtn v4.4h, v0.4s
	WORD $0x4E614824 // sqxtn2 v4.8h, v1.4s
	WORD $0x0E614845 // sqxtn v5.4h, v2.4s
	WORD $0x4E614865 // sqxtn2 v5.8h, v3.4s
	WORD $0x0E214886 // sqxtn v6.8b, v4.8h
	WORD $0x4E2148A6 // sqxtn2 v6.16b, v5.8h
	VST1.P [V6.B16], 16(R1)
	SUBS $16, R2, R2
	BNE loop
done:
	RET
