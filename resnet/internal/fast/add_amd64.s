#include "textflag.h"

// func addTableAVX2(t *[1 << 16]int8, x, y, out *int8, n int)
// out[i] = t[uint8(x[i])<<8|uint8(y[i])] for i < n, n a multiple of 16.
// Each index's aligned dword is gathered (VPGATHERDD, never outside the
// table) and its byte idx&3 shifted down; sixteen per iteration.
TEXT ·addTableAVX2(SB), NOSPLIT, $0-40
	MOVQ t+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DX
	MOVQ out+24(FP), R8
	MOVQ n+32(FP), CX
	XORQ AX, AX
	MOVL $-4, BX
	MOVQ BX, X15
	VPBROADCASTD X15, Y15 // ^3: the aligned dword
	MOVL $3, BX
	MOVQ BX, X14
	VPBROADCASTD X14, Y14 // 3: the byte in it
	VPCMPEQD Y13, Y13, Y13 // all lanes gathered
loop:
	VPMOVZXBD (SI)(AX*1), Y0
	VPMOVZXBD (DX)(AX*1), Y1
	VPSLLD $8, Y0, Y0
	VPOR Y1, Y0, Y0 // index
	VPMOVZXBD 8(SI)(AX*1), Y2
	VPMOVZXBD 8(DX)(AX*1), Y3
	VPSLLD $8, Y2, Y2
	VPOR Y3, Y2, Y2
	VPAND Y15, Y0, Y4
	VMOVDQA Y13, Y12
	VPGATHERDD Y12, (DI)(Y4*1), Y5
	VPAND Y15, Y2, Y6
	VMOVDQA Y13, Y12
	VPGATHERDD Y12, (DI)(Y6*1), Y7
	VPAND Y14, Y0, Y0
	VPSLLD $3, Y0, Y0 // bit offset of the byte
	VPSRLVD Y0, Y5, Y5
	VPAND Y14, Y2, Y2
	VPSLLD $3, Y2, Y2
	VPSRLVD Y2, Y7, Y7
	VPSLLD $24, Y5, Y5
	VPSRAD $24, Y5, Y5 // the byte, sign-extended: packing cannot saturate
	VPSLLD $24, Y7, Y7
	VPSRAD $24, Y7, Y7
	VPACKSSDW Y7, Y5, Y5 // 0-3 8-11 | 4-7 12-15
	VPERMQ $0xD8, Y5, Y5
	VEXTRACTI128 $1, Y5, X6
	VPACKSSWB X6, X5, X5
	VMOVDQU X5, (R8)(AX*1)
	ADDQ $16, AX
	CMPQ AX, CX
	JLT loop
	VZEROUPPER
	RET
