#include "textflag.h"

// ROUND_STORE ends a step of both loops: the 16 float32 quotients in
// V0-V3 rounded (FCVTAS: to nearest, ties away from zero, saturating to
// int32, NaN to 0), plus the zero point (V17, SQADD, saturating), narrowed
// to int8 with saturation twice and stored at R1 (moved on 16).
#define ROUND_STORE \
	WORD $0x4E21C800 /* fcvtas v0.4s, v0.4s */ \
	WORD $0x4E21C821 /* fcvtas v1.4s, v1.4s */ \
	WORD $0x4E21C842 /* fcvtas v2.4s, v2.4s */ \
	WORD $0x4E21C863 /* fcvtas v3.4s, v3.4s */ \
	WORD $0x4EB10C00 /* sqadd v0.4s, v0.4s, v17.4s */ \
	WORD $0x4EB10C21 /* sqadd v1.4s, v1.4s, v17.4s */ \
	WORD $0x4EB10C42 /* sqadd v2.4s, v2.4s, v17.4s */ \
	WORD $0x4EB10C63 /* sqadd v3.4s, v3.4s, v17.4s */ \
	WORD $0x0E614804 /* sqxtn v4.4h, v0.4s */ \
	WORD $0x4E614824 /* sqxtn2 v4.8h, v1.4s */ \
	WORD $0x0E614845 /* sqxtn v5.4h, v2.4s */ \
	WORD $0x4E614865 /* sqxtn2 v5.8h, v3.4s */ \
	WORD $0x0E214886 /* sqxtn v6.8b, v4.8h */ \
	WORD $0x4E2148A6 /* sqxtn2 v6.16b, v5.8h */ \
	VST1.P [V6.B16], 16(R1)


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
	ROUND_STORE
	SUBS $16, R2, R2
	BNE loop
done:
	RET

// func quantizeMulNEON(in *float32, out *int8, n int, inv float64, zp int32)
//
// quantizeNEON without the division (FDIV is most of its cycles on a
// Cortex-A76): x/scale rounded to float32 is taken as the float64 product
// x * inv (inv = 1/scale rounded to float64) rounded to float32 (FCVTL,
// FMUL .2D, FCVTN: exact widening, one float64 rounding, one float32
// rounding), then FCVTAS, SQADD and the narrowings as there. Why that is
// the float32 quotient exactly: see quantizeBulk (quantize_arm64.go).
TEXT ·quantizeMulNEON(SB), NOSPLIT, $0-36
	MOVD in+0(FP), R0
	MOVD out+8(FP), R1
	MOVD n+16(FP), R2
	MOVD inv+24(FP), R4
	MOVW zp+32(FP), R5
	CBZ R2, mdone
	WORD $0x4E080C90 // dup v16.2d, x4
	WORD $0x4E040CB1 // dup v17.4s, w5
mloop:
	VLD1.P 64(R0), [V0.S4, V1.S4, V2.S4, V3.S4]
	WORD $0x0E617804 // fcvtl v4.2d, v0.2s
	WORD $0x4E617805 // fcvtl2 v5.2d, v0.4s
	WORD $0x0E617826 // fcvtl v6.2d, v1.2s
	WORD $0x4E617827 // fcvtl2 v7.2d, v1.4s
	WORD $0x0E617852 // fcvtl v18.2d, v2.2s
	WORD $0x4E617853 // fcvtl2 v19.2d, v2.4s
	WORD $0x0E617874 // fcvtl v20.2d, v3.2s
	WORD $0x4E617875 // fcvtl2 v21.2d, v3.4s
	WORD $0x6E70DC84 // fmul v4.2d, v4.2d, v16.2d
	WORD $0x6E70DCA5 // fmul v5.2d, v5.2d, v16.2d
	WORD $0x6E70DCC6 // fmul v6.2d, v6.2d, v16.2d
	WORD $0x6E70DCE7 // fmul v7.2d, v7.2d, v16.2d
	WORD $0x6E70DE52 // fmul v18.2d, v18.2d, v16.2d
	WORD $0x6E70DE73 // fmul v19.2d, v19.2d, v16.2d
	WORD $0x6E70DE94 // fmul v20.2d, v20.2d, v16.2d
	WORD $0x6E70DEB5 // fmul v21.2d, v21.2d, v16.2d
	WORD $0x0E616880 // fcvtn v0.2s, v4.2d
	WORD $0x4E6168A0 // fcvtn2 v0.4s, v5.2d
	WORD $0x0E6168C1 // fcvtn v1.2s, v6.2d
	WORD $0x4E6168E1 // fcvtn2 v1.4s, v7.2d
	WORD $0x0E616A42 // fcvtn v2.2s, v18.2d
	WORD $0x4E616A62 // fcvtn2 v2.4s, v19.2d
	WORD $0x0E616A83 // fcvtn v3.2s, v20.2d
	WORD $0x4E616AA3 // fcvtn2 v3.4s, v21.2d
	ROUND_STORE
	SUBS $16, R2, R2
	BNE mloop
mdone:
	RET
