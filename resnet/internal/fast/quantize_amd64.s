#include "textflag.h"

// func quantizeAVX2(in *float32, out *int8, n int, scale, lo, hi float32, zp int32)
//
// quantizeGo, 16 elements a step: q = x/scale (VDIVPS: IEEE float32
// division, as Go's), rounded half away from zero as math.Round does
// (truncate; the fraction q - trunc(q) is exact in float32; where |frac|
// >= 0.5 step one away from zero), NaN to 0, clamped to [lo, hi] in float
// (whole numbers, so exact), converted, zp added, packed to bytes.
TEXT ·quantizeAVX2(SB), NOSPLIT, $0-40
	MOVQ in+0(FP), SI
	MOVQ out+8(FP), DI
	MOVQ n+16(FP), CX
	VBROADCASTSS scale+24(FP), Y15
	VBROADCASTSS lo+28(FP), Y10
	VBROADCASTSS hi+32(FP), Y9
	MOVL zp+36(FP), AX
	MOVD AX, X8
	VPBROADCASTD X8, Y8
	MOVL $0x7fffffff, AX
	MOVD AX, X14
	VPBROADCASTD X14, Y14 // |x| mask
	MOVL $0x3f000000, AX
	MOVD AX, X13
	VPBROADCASTD X13, Y13 // 0.5
	MOVL $0x3f800000, AX
	MOVD AX, X11
	VPBROADCASTD X11, Y11 // 1.0
	XORQ AX, AX

loop:
	VMOVUPS (SI)(AX*4), Y0
	VMOVUPS 32(SI)(AX*4), Y4
	VDIVPS  Y15, Y0, Y0
	VDIVPS  Y15, Y4, Y4

	VROUNDPS $3, Y0, Y1 // trunc
	VROUNDPS $3, Y4, Y5
	VSUBPS   Y1, Y0, Y2 // fraction, exact
	VSUBPS   Y5, Y4, Y6
	VANDPS   Y14, Y2, Y2
	VANDPS   Y14, Y6, Y6
	VCMPPS   $0x1d, Y13, Y2, Y2 // |frac| >= 0.5 (GE_OQ: NaN false)
	VCMPPS   $0x1d, Y13, Y6, Y6
	VANDNPS  Y0, Y14, Y3        // sign of q
	VANDNPS  Y4, Y14, Y7
	VORPS    Y11, Y3, Y3        // +-1
	VORPS    Y11, Y7, Y7
	VANDPS   Y2, Y3, Y3
	VANDPS   Y6, Y7, Y7
	VADDPS   Y3, Y1, Y1
	VADDPS   Y7, Y5, Y5

	VCMPPS $7, Y1, Y1, Y2 // ordered: NaN to 0
	VCMPPS $7, Y5, Y5, Y6
	VANDPS Y2, Y1, Y1
	VANDPS Y6, Y5, Y5
	VMAXPS Y10, Y1, Y1
	VMAXPS Y10, Y5, Y5
	VMINPS Y9, Y1, Y1
	VMINPS Y9, Y5, Y5

	VCVTPS2DQ Y1, Y1
	VCVTPS2DQ Y5, Y5
	VPADDD    Y8, Y1, Y1
	VPADDD    Y8, Y5, Y5
	VPACKSSDW Y5, Y1, Y1 // [a0-3 b0-3 | a4-7 b4-7]
	VPERMQ    $0xd8, Y1, Y1 // [a0-3 a4-7 | b0-3 b4-7]
	VEXTRACTI128 $1, Y1, X5
	VPACKSSWB X5, X1, X1
	VMOVDQU   X1, (DI)(AX*1)

	ADDQ $16, AX
	CMPQ AX, CX
	JLT  loop
	VZEROUPPER
	RET
