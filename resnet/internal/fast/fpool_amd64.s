#include "textflag.h"

// FMAX computes X = max(X, Y) with Go's semantics for float32 (runtime
// fmax): Y if Y is NaN or Y > X; X AND Y (bitwise) if X == Y, which makes
// max(-0, +0) = +0; X otherwise (X NaN included). T1-T4 are temporaries.
#define FMAX(X, Y, T1, T2, T3, T4) \
	VCMPPS $0x1E, X, Y, T1 \
	VCMPPS $0x03, Y, Y, T2 \
	VCMPPS $0x00, Y, X, T3 \
	VORPS T2, T1, T1 \
	VANDPS Y, X, T4 \
	VBLENDVPS T1, Y, X, X \
	VBLENDVPS T3, T4, X, X

// FMIN is X = min(X, Y) the same way: Y if Y is NaN or Y < X; X OR Y if
// X == Y (min(-0, +0) = -0); X otherwise.
#define FMIN(X, Y, T1, T2, T3, T4) \
	VCMPPS $0x11, X, Y, T1 \
	VCMPPS $0x03, Y, Y, T2 \
	VCMPPS $0x00, Y, X, T3 \
	VORPS T2, T1, T1 \
	VORPS Y, X, T4 \
	VBLENDVPS T1, Y, X, X \
	VBLENDVPS T3, T4, X, X

// func fmaxPoolAVX2(dst, src *float32, offs *int32, ntaps, n int, lo, hi float32)
//
// dst[i] = min(max(max(-MaxFloat32, src[offs[0]/4+i], src[offs[1]/4+i], ...), lo), hi)
// for i < n, n a multiple of 32, each max and min as Go's, the taps in
// order: ref.MaxPoolFloat's operations on each channel.
TEXT ·fmaxPoolAVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ offs+16(FP), BX
	MOVQ ntaps+24(FP), CX
	MOVQ n+32(FP), DX
	VBROADCASTSS lo+40(FP), Y13
	VBROADCASTSS hi+44(FP), Y14
	MOVL $0xFF7FFFFF, AX // -MaxFloat32
	MOVL AX, X12
	VBROADCASTSS X12, Y12
chunk:
	VMOVAPS Y12, Y0
	VMOVAPS Y12, Y1
	VMOVAPS Y12, Y2
	VMOVAPS Y12, Y3
	MOVQ BX, R9
	MOVQ CX, R8
tap:
	MOVLQSX (R9), AX
	VMOVUPS 0(SI)(AX*1), Y4
	VMOVUPS 32(SI)(AX*1), Y5
	VMOVUPS 64(SI)(AX*1), Y6
	VMOVUPS 96(SI)(AX*1), Y7
	FMAX(Y0, Y4, Y8, Y9, Y10, Y11)
	FMAX(Y1, Y5, Y8, Y9, Y10, Y11)
	FMAX(Y2, Y6, Y8, Y9, Y10, Y11)
	FMAX(Y3, Y7, Y8, Y9, Y10, Y11)
	ADDQ $4, R9
	DECQ R8
	JNZ tap
	FMAX(Y0, Y13, Y8, Y9, Y10, Y11)
	FMAX(Y1, Y13, Y8, Y9, Y10, Y11)
	FMAX(Y2, Y13, Y8, Y9, Y10, Y11)
	FMAX(Y3, Y13, Y8, Y9, Y10, Y11)
	FMIN(Y0, Y14, Y8, Y9, Y10, Y11)
	FMIN(Y1, Y14, Y8, Y9, Y10, Y11)
	FMIN(Y2, Y14, Y8, Y9, Y10, Y11)
	FMIN(Y3, Y14, Y8, Y9, Y10, Y11)
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	ADDQ $128, SI
	SUBQ $32, DX
	JNZ chunk
	VZEROUPPER
	RET
