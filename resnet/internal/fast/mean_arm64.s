#include "textflag.h"

// func sumPixels64NEON(dst *int32, src *int8, stride, pixels, blocks int)
//
// For each of blocks blocks of 64 channels (64 bytes apart at src, 64
// int32 apart at dst): dst[k] += the sum of src[p*stride+k] over p <
// pixels, 1 <= pixels <= 256. Each pixel's 64 bytes are added into eight
// int16 accumulators (SADDW/SADDW2, hand encoded: Go's assembler lacks
// them), exact since 256 * 128 fits an int16; eight independent chains
// keep the adds' latency hidden. The int16 sums are then widened into the
// int32 dst (SADDW/SADDW2 again) once per block.
TEXT ·sumPixels64NEON(SB), NOSPLIT, $0-40
	MOVD dst+0(FP), R0
	MOVD src+8(FP), R1
	MOVD stride+16(FP), R2
	MOVD pixels+24(FP), R3
	MOVD blocks+32(FP), R4
block:
	VEOR V16.B16, V16.B16, V16.B16
	VEOR V17.B16, V17.B16, V17.B16
	VEOR V18.B16, V18.B16, V18.B16
	VEOR V19.B16, V19.B16, V19.B16
	VEOR V20.B16, V20.B16, V20.B16
	VEOR V21.B16, V21.B16, V21.B16
	VEOR V22.B16, V22.B16, V22.B16
	VEOR V23.B16, V23.B16, V23.B16
	MOVD R1, R7
	MOVD R3, R8
pixel:
	VLD1.P (R7)(R2), [V0.B16, V1.B16, V2.B16, V3.B16]
	WORD $0x0E201210 // saddw v16.8h, v16.8h, v0.8b
	WORD $0x4E201231 // saddw2 v17.8h, v17.8h, v0.16b
	WORD $0x0E211252 // saddw v18.8h, v18.8h, v1.8b
	WORD $0x4E211273 // saddw2 v19.8h, v19.8h, v1.16b
	WORD $0x0E221294 // saddw v20.8h, v20.8h, v2.8b
	WORD $0x4E2212B5 // saddw2 v21.8h, v21.8h, v2.16b
	WORD $0x0E2312D6 // saddw v22.8h, v22.8h, v3.8b
	WORD $0x4E2312F7 // saddw2 v23.8h, v23.8h, v3.16b
	SUBS $1, R8, R8
	BNE pixel
	VLD1 (R0), [V24.S4, V25.S4, V26.S4, V27.S4]
	WORD $0x0E701318 // saddw v24.4s, v24.4s, v16.4h
	WORD $0x4E701339 // saddw2 v25.4s, v25.4s, v16.8h
	WORD $0x0E71135A // saddw v26.4s, v26.4s, v17.4h
	WORD $0x4E71137B // saddw2 v27.4s, v27.4s, v17.8h
	VST1.P [V24.S4, V25.S4, V26.S4, V27.S4], 64(R0)
	VLD1 (R0), [V24.S4, V25.S4, V26.S4, V27.S4]
	WORD $0x0E721318 // saddw v24.4s, v24.4s, v18.4h
	WORD $0x4E721339 // saddw2 v25.4s, v25.4s, v18.8h
	WORD $0x0E73135A // saddw v26.4s, v26.4s, v19.4h
	WORD $0x4E73137B // saddw2 v27.4s, v27.4s, v19.8h
	VST1.P [V24.S4, V25.S4, V26.S4, V27.S4], 64(R0)
	VLD1 (R0), [V24.S4, V25.S4, V26.S4, V27.S4]
	WORD $0x0E741318 // saddw v24.4s, v24.4s, v20.4h
	WORD $0x4E741339 // saddw2 v25.4s, v25.4s, v20.8h
	WORD $0x0E75135A // saddw v26.4s, v26.4s, v21.4h
	WORD $0x4E75137B // saddw2 v27.4s, v27.4s, v21.8h
	VST1.P [V24.S4, V25.S4, V26.S4, V27.S4], 64(R0)
	VLD1 (R0), [V24.S4, V25.S4, V26.S4, V27.S4]
	WORD $0x0E761318 // saddw v24.4s, v24.4s, v22.4h
	WORD $0x4E761339 // saddw2 v25.4s, v25.4s, v22.8h
	WORD $0x0E77135A // saddw v26.4s, v26.4s, v23.4h
	WORD $0x4E77137B // saddw2 v27.4s, v27.4s, v23.8h
	VST1.P [V24.S4, V25.S4, V26.S4, V27.S4], 64(R0)
	ADD $64, R1, R1
	SUBS $1, R4, R4
	BNE block
	RET
