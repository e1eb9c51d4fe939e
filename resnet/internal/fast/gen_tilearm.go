//go:build ignore

// The arm64 half of gen_tile.go: run both files together (go run
// gen_tile.go gen_tilearm.go gen_armas.go).

package main

import (
	"fmt"
	"go/format"
	"os"
	"strings"
)

// ---- arm64 ----
//
// Go's arm64 assembler lacks most of the Advanced SIMD integer
// instructions these kernels need (SDOT, SMULL, SADALP, SQRDMULH, SRSHL,
// SQXTN...), so every vector instruction is emitted as WORD $encoding with
// its GNU spelling beside it; scalar bookkeeping uses Go's mnemonics. The
// encodings below follow the Arm A64 instruction set manual (field names
// as there); -check assembles the GNU spellings and compares.
//
//	three-same, Q=1:  0 1 U 01110 size 1 Rm opcode 1 Rn Rd
//	  ADD .4S 0x4EA08400   SSHL .4S 0x4EA04400   SRSHL .4S 0x4EA05400
//	  SQADD .4S 0x4EA00C00 SMAX .4S 0x4EA06400   SMIN .4S 0x4EA06C00
//	  SQRDMULH .4S 0x6EA0B400 (U=1)  ADDP .4S 0x4EA0BC00  ADD .8H 0x4E608400
//	SQRDMLAH .4S (three-same extra): 0x6E808400
//	  AND .16B 0x4E201C00  EOR .16B 0x6E201C00 (U=1)
//	SDOT Vd.4S, Vn.16B, Vm.4B[i]: 0x4F80E000 | L<<21 | Rm<<16 | H<<11, i = H:L
//	SMULL(2) Vd.8H, Vn.8B(16B), Vm: 0x0E20C000 (| 1<<30 for the upper halves)
//	SADALP Vd.4S, Vn.8H: 0x4E606800
//	SSHR Vd.4S, Vn.4S, #31: 0x4F000400 | immh:immb<<16, immh:immb = 64-31
//	SQXTN(2): .4S->.4H 0x0E614800, .8H->.8B 0x0E214800 (| 1<<30 for the 2 forms)
//	LD1 {Vt.16B x2 | x4}, [Xn], Xm: 0x4CC0A000 | 0x4CC02000, | Rm<<16
//	LD1R {Vt.4S}, [Xn], #4: 0x4DDFC800
//	LDR Qt, [Xn], #16: 0x3CC10400    LDR St, [Xn], #4: 0xBC404400
//	LDR Qt, [Xn, #imm]: 0x3DC00000 | imm/16<<10   LDR Qt, [Xn, Xm]: 0x3CE06800 | Rm<<16
//	STR Qt, [Xn]: 0x3D800000         STR Dt, [Xn]: 0xFD000000
//	DUP Vd.4S, Wn: 0x4E040C00
//	SADDLP Vd.4S, Vn.8H: 0x4E602800    CMLT Vd.4S, Vn.4S, #0: 0x4EA0A800
//	ST1 {Vt.16B}, [Xn]: 0x4C007000     UZP1 .8H 0x4E401800, .16B 0x4E001800
//	float, .4S: SCVTF 0x4E21D800  FCVTNS 0x4E21A800  FMUL 0x6E20DC00
//	  FADD 0x4E20D400  FMAX 0x4E20F400  FMIN 0x4EA0F400;  SUB .4S 0x6EA08400

var (
	armChecked []armInst
	armRegion  string         // the counting region instructions go to
	armCounts  map[string]int // instructions per region, for the current kernel
	armVec     map[string]int // of which Advanced SIMD arithmetic (not loads or stores)
	armMem     map[string]int // of which loads and stores
)

func rnd(n, d int) uint32 { return uint32(n<<5 | d) }

// av emits one hand-encoded vector instruction.
func av(word uint32, gnu string, args ...any) {
	text := fmt.Sprintf(gnu, args...)
	armChecked = append(armChecked, armInst{text, word})
	armCounts[armRegion]++
	if strings.HasPrefix(text, "ld") || strings.HasPrefix(text, "st") {
		armMem[armRegion]++
	} else {
		armVec[armRegion]++
	}
	fmt.Fprintf(&b, "\tWORD $0x%08X // %s\n", word, text)
}

// ag emits one instruction Go's assembler knows.
func ag(format string, args ...any) {
	armCounts[armRegion]++
	if strings.HasPrefix(format, "MOVD ") && strings.Contains(format, "(R") || strings.HasPrefix(format, "MOVW ") {
		armMem[armRegion]++
	}
	p(format, args...)
}

func same3(base uint32, name, arr string, d, n, m int) {
	av(base|uint32(m)<<16|rnd(n, d), "%s v%d.%s, v%d.%s, v%d.%s", name, d, arr, n, arr, m, arr)
}
func vadd(d, n, m int)      { same3(0x4EA08400, "add", "4s", d, n, m) }
func vsshl(d, n, m int)     { same3(0x4EA04400, "sshl", "4s", d, n, m) }
func vsrshl(d, n, m int)    { same3(0x4EA05400, "srshl", "4s", d, n, m) }
func vsqadd(d, n, m int)    { same3(0x4EA00C00, "sqadd", "4s", d, n, m) }
func vsmax(d, n, m int)     { same3(0x4EA06400, "smax", "4s", d, n, m) }
func vsmin(d, n, m int)     { same3(0x4EA06C00, "smin", "4s", d, n, m) }
func vsqrdmulh(d, n, m int) { same3(0x6EA0B400, "sqrdmulh", "4s", d, n, m) }
func vaddp(d, n, m int)     { same3(0x4EA0BC00, "addp", "4s", d, n, m) }
func vand(d, n, m int)      { same3(0x4E201C00, "and", "16b", d, n, m) }
func vadd8h(d, n, m int)    { same3(0x4E608400, "add", "8h", d, n, m) }
func veor(d, n, m int)      { same3(0x6E201C00, "eor", "16b", d, n, m) }

// sqrdmlah (ARMv8.1 RDM, which every SDOT core has) is Vd + SQRDMULH(Vn, Vm)
// with one saturation, at the end: three-same extra, U=1, opcode 10000.
func sqrdmlah(d, n, m int) { same3(0x6E808400, "sqrdmlah", "4s", d, n, m) }

func sdot(d, n, m, i int) {
	av(0x4F80E000|uint32(i&1)<<21|uint32(m)<<16|uint32(i>>1)<<11|rnd(n, d), "sdot v%d.4s, v%d.16b, v%d.4b[%d]", d, n, m, i)
}
func smull(d, n, m int) {
	av(0x0E20C000|uint32(m)<<16|rnd(n, d), "smull v%d.8h, v%d.8b, v%d.8b", d, n, m)
}
func smull2(d, n, m int) {
	av(0x4E20C000|uint32(m)<<16|rnd(n, d), "smull2 v%d.8h, v%d.16b, v%d.16b", d, n, m)
}
func smlal(d, n, m int) {
	av(0x0E208000|uint32(m)<<16|rnd(n, d), "smlal v%d.8h, v%d.8b, v%d.8b", d, n, m)
}
func smlal2(d, n, m int) {
	av(0x4E208000|uint32(m)<<16|rnd(n, d), "smlal2 v%d.8h, v%d.16b, v%d.16b", d, n, m)
}
func sadalp(d, n int)      { av(0x4E606800|rnd(n, d), "sadalp v%d.4s, v%d.8h", d, n) }
func saddlp(d, n int)      { av(0x4E602800|rnd(n, d), "saddlp v%d.4s, v%d.8h", d, n) }
func sshr31(d, n int)      { av(0x4F000400|(64-31)<<16|rnd(n, d), "sshr v%d.4s, v%d.4s, #31", d, n) }
func cmlt0(d, n int)       { av(0x4EA0A800|rnd(n, d), "cmlt v%d.4s, v%d.4s, #0", d, n) }
func ssra31(d, n int)      { av(0x4F001400|(64-31)<<16|rnd(n, d), "ssra v%d.4s, v%d.4s, #31", d, n) }
func vsqadd8h(d, n, m int) { same3(0x4E600C00, "sqadd", "8h", d, n, m) }
func vsmax16b(d, n, m int) { same3(0x4E206400, "smax", "16b", d, n, m) }
func vsmin16b(d, n, m int) { same3(0x4E206C00, "smin", "16b", d, n, m) }
func vsmax8b(d, n, m int)  { same3(0x0E206400, "smax", "8b", d, n, m) }
func vsmin8b(d, n, m int)  { same3(0x0E206C00, "smin", "8b", d, n, m) }
func dup8h(d, n int)       { av(0x4E020C00|rnd(n, d), "dup v%d.8h, w%d", d, n) }
func dup16b(d, n int)      { av(0x4E010C00|rnd(n, d), "dup v%d.16b, w%d", d, n) }
func sqxtunB(d, n int)     { av(0x2E212800|rnd(n, d), "sqxtun v%d.8b, v%d.8h", d, n) }
func sqxtun2B(d, n int)    { av(0x6E212800|rnd(n, d), "sqxtun2 v%d.16b, v%d.8h", d, n) }
func sqxtnH(d, n int)      { av(0x0E614800|rnd(n, d), "sqxtn v%d.4h, v%d.4s", d, n) }
func sqxtn2H(d, n int)     { av(0x4E614800|rnd(n, d), "sqxtn2 v%d.8h, v%d.4s", d, n) }
func sqxtnB(d, n int)      { av(0x0E214800|rnd(n, d), "sqxtn v%d.8b, v%d.8h", d, n) }
func sqxtn2B(d, n int)     { av(0x4E214800|rnd(n, d), "sqxtn2 v%d.16b, v%d.8h", d, n) }
func ld1x2(t, n, m int) {
	av(0x4CC0A000|uint32(m)<<16|rnd(n, t), "ld1 {v%d.16b, v%d.16b}, [x%d], x%d", t, t+1, n, m)
}
func ld1x4(t, n, m int) {
	av(0x4CC02000|uint32(m)<<16|rnd(n, t), "ld1 {v%d.16b, v%d.16b, v%d.16b, v%d.16b}, [x%d], x%d", t, t+1, t+2, t+3, n, m)
}
func ld1x4s(t, n int) {
	av(0x4C402800|rnd(n, t), "ld1 {v%d.4s, v%d.4s, v%d.4s, v%d.4s}, [x%d]", t, t+1, t+2, t+3, n)
}
func ld1r4(t, n int) { av(0x4DDFC800|rnd(n, t), "ld1r {v%d.4s}, [x%d], #4", t, n) }
func ldrQreg(t, n, m int) {
	av(0x3CE06800|uint32(m)<<16|rnd(n, t), "ldr q%d, [x%d, x%d]", t, n, m)
}
func ldrQpost(t, n int) { av(0x3CC10400|rnd(n, t), "ldr q%d, [x%d], #16", t, n) }
func ldrSpost(t, n int) { av(0xBC404400|rnd(n, t), "ldr s%d, [x%d], #4", t, n) }
func ldrQ(t, n, off int) {
	av(0x3DC00000|uint32(off/16)<<10|rnd(n, t), "ldr q%d, [x%d, #%d]", t, n, off)
}

// The float32 forms (size bit 0: .4S).
func fcvtns(d, n int)   { av(0x4E21A800|rnd(n, d), "fcvtns v%d.4s, v%d.4s", d, n) }
func scvtf(d, n int)    { av(0x4E21D800|rnd(n, d), "scvtf v%d.4s, v%d.4s", d, n) }
func vfmul(d, n, m int) { same3(0x6E20DC00, "fmul", "4s", d, n, m) }
func vfadd(d, n, m int) { same3(0x4E20D400, "fadd", "4s", d, n, m) }
func vfmax(d, n, m int) { same3(0x4E20F400, "fmax", "4s", d, n, m) }
func vfmin(d, n, m int) { same3(0x4EA0F400, "fmin", "4s", d, n, m) }
func vsub(d, n, m int)  { same3(0x6EA08400, "sub", "4s", d, n, m) }
func uzp1H(d, n, m int) { same3(0x4E401800, "uzp1", "8h", d, n, m) }
func uzp1B(d, n, m int) { same3(0x4E001800, "uzp1", "16b", d, n, m) }

// tileArgs' arm64-only fields after nopair, which gen_tile.go places
// last: sat, more (the tiles after this one), tstep and ostep; then a
// fused ADD's table and the residual's distance from the output (addT,
// resd).
const (
	offSat   = offNoPair + 4
	offMore  = offNoPair + 8
	offTStep = offNoPair + 16
	offOStep = offNoPair + 24
	offAddT  = offNoPair + 32
	offResd  = offNoPair + 40
	offSink  = offNoPair + 48 // 16 bytes tileNEONDotAdd may write (addInit)
)

// armRowScale is the parameter row of the "xnnpack" float32 scales
// (conv.go's parScale), after gen_tile.go's rowNrsh.
const armRowScale = rowNrsh + 1

func st1Qpost(t, n int) { av(0x4C9F7000|rnd(n, t), "st1 {v%d.16b}, [x%d], #16", t, n) }
func strQ(t, n int)     { av(0x3D800000|rnd(n, t), "str q%d, [x%d]", t, n) }
func st1Q(t, n int)     { av(0x4C007000|rnd(n, t), "st1 {v%d.16b}, [x%d]", t, n) }
func strD(t, n int)     { av(0xFD000000|rnd(n, t), "str d%d, [x%d]", t, n) }
func dup4s(d, n int)    { av(0x4E040C00|rnd(n, d), "dup v%d.4s, w%d", d, n) }

// armKernel describes one arm64 kernel for the counting table.
type armKernel struct {
	name   string
	isa    string // the ISA constant's name
	lanes  int    // channels per pass
	add    bool   // the fused residual ADD (tileArgs.addT): tileNEONDotAdd
	counts map[string]int
	vec    map[string]int
	mem    map[string]int
}

// genARM64 writes tile_arm64.s and tile_counts.go.
//
// Registers: R0 args; R1-R4 the pixels' input pointers at this tap
// (post-incremented); R5 weights; R6 tap offsets; R7 taps left (the fast
// copy: the tap's index); R8 bytes per tap; R9 bytes (the fast copy:
// chunks) left in this tap; R10 first channel of the pass; R11
// parameters; R12 scratch; R13 the weights' group stride (nr*4 bytes); R14
// NEON's no-pairs flag (SDOT: scratch); R15 the float32 flag; R19-R22 the pixels' inputs
// at tap (0, 0); R23 output pointer; R24 the out-of-line epilogue flag;
// R25 chunks per tap. Vector: V0-V15 accumulators (4 pixels x 4), V16-V19
// weights, V20-V23 inputs, V24-V31 products and requantization
// temporaries (SDOT: V28-V30 the output constants).
func genARM64(check bool) {
	fmt.Fprintf(&b, "// Code generated by gen_tile.go; DO NOT EDIT.\n\n#include \"textflag.h\"\n")
	kernels := []*armKernel{
		{name: "tileNEONDot", isa: "NEONDot", lanes: 16},
		{name: "tileNEON", isa: "NEON", lanes: 8},
	}
	for _, k := range kernels {
		armCounts, armVec, armMem = map[string]int{}, map[string]int{}, map[string]int{}
		genARMKernel(k)
		k.counts, k.vec, k.mem = armCounts, armVec, armMem
	}
	// The SDOT kernel with a fused ADD: not in the counting table (its
	// instructions are priced by the estimate's trace only).
	armCounts, armVec, armMem = map[string]int{}, map[string]int{}, map[string]int{}
	genARMKernel(&armKernel{name: "tileNEONDotAdd", isa: "NEONDot", lanes: 16, add: true})
	armCounts, armVec, armMem = map[string]int{}, map[string]int{}, map[string]int{}
	genARMDot1()
	write("tile_arm64.s", b.String())

	var c strings.Builder
	fmt.Fprintf(&c, "// Code generated by gen_tile.go; DO NOT EDIT.\n\npackage fast\n\n")
	fmt.Fprintf(&c, "// armKernelCounts is the number of instructions the arm64 micro-kernels\n// execute, by region of tile_arm64.s, in the fast copy [0] and the general\n// one [1] (see ArmKernelCost).\nvar armKernelCounts = map[ISA]armCount{\n")
	for _, k := range kernels {
		chunk := 16
		if k.isa == "NEON" {
			chunk = 8
		}
		fmt.Fprintf(&c, "\t%s: {lanes: %d, chunkBytes: %d,\n", k.isa, k.lanes, chunk)
		for _, m := range []struct {
			name string
			c    map[string]int
		}{{"all", k.counts}, {"vec", k.vec}, {"mem", k.mem}} {
			// The common entry code runs in both copies.
			fmt.Fprintf(&c, "\t\t%s: [2]armRegions{{call: %d, pass: %d, tap: %d, chunk: %d}, {call: %d, pass: %d, tap: %d, chunk: %d, single: %d}},\n",
				m.name, m.c["common"]+m.c["call"], m.c["pass"], m.c["tap"], m.c["chunk"],
				m.c["common"]+m.c["gcall"], m.c["gpass"], m.c["gtap"], m.c["gchunk"], m.c["gsingle"])
		}
		fmt.Fprintf(&c, "\t},\n")
	}
	fmt.Fprintf(&c, "}\n")
	src, err := format.Source([]byte(c.String()))
	if err != nil {
		fail(err)
	}
	write("tile_counts.go", string(src))
	if check {
		checkWithGNUAs("gen_tile", "armv8.2-a+dotprod", armChecked)
	}
}

func genARMKernel(k *armKernel) {
	dot := k.isa == "NEONDot"
	fmt.Fprintf(&b, "\n// func %s(a *tileArgs)\nTEXT ·%s(SB), NOSPLIT, $0-8\n", k.name, k.name)
	armRegion = "common"
	label(k.name + "entry") // the next tile of a run starts here too (passEnd)
	ag("MOVD a+0(FP), R0")
	ag("MOVD %d(R0), R8 // bytes per tap", offKBytes)
	ag("MOVD $%d, R13 // weights' group stride", 4*nr)
	ag("MOVD $0, R10")
	// R15: the xnnpack (float32) requantization; R24: that or some
	// channel shifting left, so the common case (neither) costs one
	// branch per pass and runs the fixed-point epilogue inline.
	ag("MOVW %d(R0), R15", offFP32)
	ag("MOVW %d(R0), R12", offLsh)
	ag("ORR R15, R12, R24")
	if k.isa == "NEONDot" {
		// The SDOT kernel's inline epilogue also needs tileArgs.sat clear
		// and the activation range int8's whole range (it does not clamp:
		// the saturation to int8 is the clamp).
		ag("MOVW %d(R0), R12", offSat)
		ag("ORR R12, R24, R24")
		ag("MOVW %d(R0), R12", offMin)
		ag("ADD $128, R12, R12")
		ag("ORR R12, R24, R24")
		ag("MOVW %d(R0), R12", offMax)
		ag("SUB $127, R12, R12")
		ag("ORR R12, R24, R24")
	}
	for j := range mr {
		ag("MOVD %d(R0), R%d // pixel %d's input at tap (0, 0)", offIn+8*j, 19+j, j)
	}
	if dot {
		// The output constants live in V28-V30 for the whole call: the SDOT
		// loops leave V24-V31 alone.
		outConsts()
	}
	if k.add {
		// The fused ADD's table (R1, which the SDOT kernel's fast copies
		// do not use otherwise).
		ag("MOVD %d(R0), R1 // the ADD's table", offAddT)
	}
	// Two copies of the loops: the fast one for layers whose bytes per
	// tap are a multiple of the chunk (16 for SDOT; 8 for NEON, which
	// also needs its SMLAL pairs: no -128 weight) in the fixed-point
	// arithmetic without left shifts, counting chunks; the general one,
	// chunks then 4-byte groups, for the rest (few input channels, -128
	// weights, left shifts, the float32 requantization).
	if !dot {
		ag("MOVW %d(R0), R14 // 1: no SMLAL pairs (a weight is -128)", offNoPair)
	}
	// One branch to the general copy: R12 = bytes per tap past whole
	// chunks | R24 (| NEON's no-pairs flag).
	if dot {
		ag("AND $15, R8, R12")
		ag("LSR $4, R8, R25 // chunks per tap")
	} else {
		ag("AND $7, R8, R12")
		ag("ORR R14, R12, R12")
		ag("LSR $3, R8, R25 // pairs of groups per tap")
	}
	ag("ORR R24, R12, R12")
	ag("CBNZ R12, notfast")
	armRegion = "call"
	if k.add {
		// Only the fixed-point copies with whole chunks have the fused
		// ADD (Conv.fusedKernel): the fast one, the ReLU one and the
		// saturating one; neither the float32 nor the general copy.
		ag("MOVW %d(R0), R12", offZP)
		ag("ADD $128, R12, R12")
		ag("CBZ R12, rcopy")
		fastBody(k, fastFixed)
		// Each copy at a 2 KiB boundary (see below): over 2 KiB, only its
		// last block (after the last pass, once a tile) may straddle a
		// 4 KiB page.
		p("PCALIGN $2048")
		label("notfast")
		ag("AND $15, R8, R12")
		ag("ORR R15, R12, R12")
		ag("CBZ R12, scopy")
		p("UNDEF // Conv.fusedKernel rules this out")
		p("PCALIGN $2048")
		label("scopy")
		fastBody(k, fastSat)
		p("PCALIGN $2048")
		label("rcopy")
		fastBody(k, fastRelu)
		return
	}
	if dot {
		// Output zero point -128 (a ReLU's, as the range is int8's
		// whole): the fourth copy, whose epilogue needs no rounding
		// fix-up for negative values (see epiRelu).
		ag("MOVW %d(R0), R12", offZP)
		ag("ADD $128, R12, R12")
		ag("CBZ R12, rcopy")
	}
	fastBody(k, fastFixed)
	// The float32 requantization gets a fast copy too (not in the counts):
	// whole chunks, whatever the shifts.
	p("PCALIGN $2048")
	label("notfast")
	armRegion = "special"
	if dot {
		ag("AND $15, R8, R12")
	} else {
		ag("AND $7, R8, R12")
		ag("ORR R14, R12, R12")
	}
	ag("CBNZ R12, general")
	if dot {
		// Whole chunks in the fixed-point arithmetic that the inline
		// epilogue does not cover (left shifts, tileArgs.sat, a narrower
		// activation range): a third copy, with the saturating epilogue.
		ag("CBZ R15, scopy")
	} else {
		ag("CBZ R15, general")
	}
	fastBody(k, fastFP32)
	if dot {
		p("PCALIGN $2048")
		label("scopy")
		fastBody(k, fastSat)
		p("PCALIGN $2048")
		label("rcopy")
		fastBody(k, fastRelu)
	}
	// Each copy's loops and epilogue (under 1100 bytes) start at a
	// 2048-byte boundary (the function's own, and this one: Go aligns the
	// function to its largest PCALIGN), so they never straddle a 4 KiB
	// page, where qemu, and so the estimate, would cut a block in two;
	// where the kernels land in the binary moves with every change
	// elsewhere. The padding follows a RET: never run.
	p("PCALIGN $2048")
	label("general")
	armRegion = "gcall"
	generalBody(k)
}

// genARMDot1 writes tileNEONDot1, the SDOT kernel for one output pixel
// (tileArgs.in[0], out[0]) by all 64 channels of the block: the last,
// partial tile of a layer whose pixels are not a multiple of four (49 in
// ResNet's 7x7 stage), which the four-pixel kernel would run with three
// copies of the pixel. Its one pass holds the 64 channels in V0-V15;
// each weight vector serves one SDOT, so the loop is bound by the loads
// (64 per chunk) rather than by the SDOTs, a quarter of what the four
// pixels' four passes cost. Only for what the fast copy of tileNEONDot
// runs with the inline epilogue (Conv.dot1: whole chunks per tap, the
// fixed-point arithmetic, every channel shifting right, narrowFits, the
// activation range int8's whole range); tileArgs.more is not read.
func genARMDot1() {
	const name = "tileNEONDot1"
	fmt.Fprintf(&b, "\n// func %s(a *tileArgs)\nTEXT ·%s(SB), NOSPLIT, $0-8\n", name, name)
	armRegion = "dot1"
	// The whole function (under 1 KiB) in one aligned KiB: no 4 KiB page
	// boundary cuts its loop (see genARMKernel).
	p("PCALIGN $1024")
	ag("MOVD a+0(FP), R0")
	ag("MOVD %d(R0), R8 // bytes per tap", offKBytes)
	ag("LSR $4, R8, R25 // chunks per tap")
	ag("MOVD %d(R0), R19 // the pixel's input at tap (0, 0)", offIn)
	ag("MOVD %d(R0), R23 // its 64 output bytes", offOut)
	ag("MOVD %d(R0), R5", offW)
	ag("MOVD %d(R0), R11", offParams)
	ag("MOVD %d(R0), R6", offTaps)
	ag("MOVD %d(R0), R7", offNTaps)
	ag("MOVD $64, R13")
	ag("MOVW %d(R0), R12", offZP)
	dup8h(28, 12)
	// The accumulators start at the bias (parameter row 0).
	ag("MOVD R11, R12")
	for g := range 4 {
		ld1x4s(4*g, 12)
		if g < 3 {
			ag("ADD $64, R12, R12")
		}
	}
	label("d1tap")
	ag("MOVW.P 4(R6), R12 // this tap's offset")
	ag("MOVD R25, R9")
	label("d1chunk")
	ldrQreg(24, 19, 12)
	ag("ADD $16, R12, R12")
	// 16 bytes = 4 groups of 4 input bytes; group i's weights are 64
	// channels x 4 bytes (16 vectors), the next group's follow.
	for i := range 4 {
		for v := range 4 {
			w := 16 + 4*((4*i+v)%2)
			ld1x4(w, 5, 13)
			for l := range 4 {
				sdot(4*v+l, w+l, 24, i)
			}
		}
	}
	ag("SUBS $1, R9, R9")
	ag("BNE d1chunk")
	ag("SUBS $1, R7, R7")
	ag("BNE d1tap")
	// The inline epilogue of tileNEONDot (see epilogue), 16 channels at
	// a time: their multipliers in V16-V19, negated shifts in V20-V23.
	for g := range 4 {
		ag("ADD $%d, R11, R12", rowMult*nr*4+64*g)
		ld1x4s(16, 12)
		ag("ADD $%d, R11, R12", rowNrsh*nr*4+64*g)
		ld1x4s(20, 12)
		for q := range 4 {
			x, t := 4*g+q, 24+q
			cmlt0(t, x)
			sqrdmlah(t, x, 16+q)
			vsrshl(x, t, 20+q)
		}
		uzp1H(24, 4*g, 4*g+1)
		vadd8h(24, 24, 28)
		uzp1H(25, 4*g+2, 4*g+3)
		vadd8h(25, 25, 28)
		sqxtnB(24, 24)
		sqxtn2B(24, 25)
		st1Qpost(24, 23)
	}
	ag("RET")
}

// The fast copies of the loops, by epilogue.
// addBiasEarly: the next pass's accumulators are loaded with the bias in
// the epilogue (addEpilogue), not by passSetup.
var addBiasEarly bool

const (
	fastFixed = iota // the inline fixed-point epilogue (counted)
	fastFP32         // the float32 one
	fastSat          // the fixed-point one with left shifts and saturation (SDOT only)
	fastRelu         // the inline one for output zero point -128 (SDOT only)
)

// fastBody is the fast copy: R25 chunks per tap, and the next tap's
// pointers set up in the same block that ends the tap.
func fastBody(k *armKernel, mode int) {
	dot := k.isa == "NEONDot"
	x := "fxsr"[mode : mode+1] // label prefix
	addBiasEarly = k.add
	defer func() { addBiasEarly = false }()
	counted := func(r string) string { return r }
	if mode != fastFixed || k.add {
		counted = func(string) string { return "special" }
	}
	if k.add {
		addInit()
	}
	fastSetup(dot, true)
	loop := x + "chunk"
	if !dot {
		loop = x + "pair0"
	}
	if dot {
		label(x + "chunk")
		armRegion = counted("chunk")
		sdotChunk(true)
		ag("SUBS $1, R9, R9")
		ag("BNE " + x + "chunk")
	} else {
		// The pass's first pair starts the accumulators (SADDLP) instead
		// of zeroing them and adding (SADALP): sixteen fewer vector
		// instructions a pass.
		// (It counts as a chunk: the same instructions, SADDLP for
		// SADALP and BEQ for BNE.)
		label(x + "pair0")
		armRegion = counted("peel")
		neonPair(true)
		ag("SUBS $1, R9, R9")
		ag("BEQ " + x + "next")
		label(x + "pair")
		armRegion = counted("chunk")
		neonPair(false)
		ag("SUBS $1, R9, R9")
		ag("BNE " + x + "pair")
	}
	label(x + "next")
	armRegion = counted("tap")
	// R7: the taps left; R6 moves on to the next tap's offset (after the
	// last one, to the entry NewConv keeps past the end of Conv.taps, so
	// the load stays in bounds; the next pass starts R6 afresh).
	ag("SUBS $1, R7, R7")
	ag("MOVW.W 4(R6), R12")
	if !dot {
		for j := range mr {
			ag("ADD R12, R%d, R%d", 19+j, 1+j)
		}
	}
	// SDOT reads each pixel at R19+j + R12, R12 the tap's offset plus the
	// bytes done.
	ag("MOVD R25, R9")
	if dot {
		ag("BNE " + x + "chunk")
	} else {
		ag("BNE " + x + "pair")
	}
	armRegion = counted("pass")
	switch mode {
	case fastFP32:
		epilogueFP32(dot)
	case fastSat:
		epilogue(dot, epiLsh, k.add)
	case fastRelu:
		epilogue(dot, epiRelu, k.add)
	default:
		epilogue(dot, epiFixed, k.add)
	}
	passEnd(k, counted("call"), loop, func() { fastSetup(dot, false) })
}

// fastSetup starts a pass of the fast copy: passSetup, then the first
// tap's input pointers and R9 = chunks.
func fastSetup(dot, first bool) {
	passSetup(dot, first, !dot)
	ag("MOVW (R6), R12")
	if !dot {
		for j := range mr {
			ag("ADD R12, R%d, R%d", 19+j, 1+j)
		}
	}
	ag("MOVD R25, R9")
}

// generalBody is the general copy: per tap, 16-byte chunks (SDOT) or
// pairs of 4-byte groups (NEON, without -128 weights) while R9, the tap's
// bytes left, allows, then single 4-byte groups.
func generalBody(k *armKernel) {
	dot := k.isa == "NEONDot"
	passSetup(dot, true, false)
	label("gtap")
	armRegion = "gtap"
	ag("MOVW (R6), R12")
	for j := range mr {
		ag("ADD R12, R%d, R%d", 19+j, 1+j)
	}
	ag("MOVD R8, R9")
	if dot {
		ag("CMP $16, R9")
		ag("BLT gtail")
		label("gchunk")
		armRegion = "gchunk"
		sdotChunk(false)
		ag("SUB $16, R9, R9")
		ag("CMP $16, R9")
		ag("BGE gchunk")
		label("gtail")
		armRegion = "gtap"
		ag("CBZ R9, gtapdone")
		label("gsingle")
		armRegion = "gsingle"
		for j := range mr {
			ldrSpost(20+j, 1+j)
		}
		ld1x4(16, 5, 13)
		for j := range mr {
			for q := range 4 {
				sdot(4*j+q, 16+q, 20+j, 0)
			}
		}
	} else {
		ag("CBNZ R14, gsingle")
		ag("CMP $8, R9")
		ag("BLT gsingle")
		label("gpair")
		armRegion = "gchunk"
		neonPair(false)
		ag("SUB $8, R9, R9")
		ag("CMP $8, R9")
		ag("BGE gpair")
		armRegion = "gtap"
		ag("CBZ R9, gtapdone")
		label("gsingle")
		armRegion = "gsingle"
		ld1x2(16, 5, 13)
		for j := range mr {
			ld1r4(20+j, 1+j)
		}
		// Accumulator 4j+h holds pixel j's channels 2h, 2h+1, two partial
		// sums each (inputs 0+1, 2+3): SMULL's products fit int16
		// (|w*x| <= 2^14), SADALP adds neighbours into int32.
		for j := range mr {
			t := 24 + 4*(j%2)
			smull(t, 16, 20+j)
			smull2(t+1, 16, 20+j)
			smull(t+2, 17, 20+j)
			smull2(t+3, 17, 20+j)
			for h := range 4 {
				sadalp(4*j+h, t+h)
			}
		}
	}
	ag("SUBS $4, R9, R9")
	ag("BNE gsingle")
	label("gtapdone")
	armRegion = "gtap"
	ag("ADD $4, R6, R6")
	ag("SUBS $1, R7, R7")
	ag("BNE gtap")

	armRegion = "gpass"
	ag("CBNZ R24, gspecial")
	epilogue(dot, epiFixed, false)
	passEnd(k, "gcall", "gtap", func() { passSetup(dot, false, false) })

	// Out of line, not in the counts (the estimate and armcount price the
	// fixed-point arithmetic without left shifts): the float32
	// requantization, and the fixed-point one with left shifts. Each ends
	// with its own copy of the pass's end, so that no branch lands inside
	// the common path's block.
	armRegion = "special"
	label("gspecial")
	ag("CBNZ R15, gfp32")
	epilogue(dot, epiLsh, false)
	passEnd(k, "special", "gtap", func() { passSetup(dot, false, false) })
	label("gfp32")
	epilogueFP32(dot)
	passEnd(k, "special", "gtap", func() { passSetup(dot, false, false) })
}

// sdotChunk is 16 input bytes of each pixel against 16 channels' weights:
// 64 SDOTs.
func sdotChunk(regOffset bool) {
	for j := range mr {
		if regOffset {
			ldrQreg(20+j, 19+j, 12)
		} else {
			ldrQpost(20+j, 1+j)
		}
	}
	for g := range 4 {
		ld1x4(16, 5, 13)
		for j := range mr {
			for q := range 4 {
				sdot(4*j+q, 16+q, 20+j, g)
			}
		}
	}
	if regOffset {
		ag("ADD $16, R12, R12")
	}
}

// neonPair is two 4-byte groups of each pixel against 8 channels: SMLAL
// adds the second group's products to the first's in int16, exact while
// no weight is -128 (|w*x| <= 127*128, two such sums fit int16). TFLite's
// int8 weights are symmetric, [-127, 127]; a layer with a -128 weight
// sets tileArgs.nopair (R14) and runs its groups one by one. Accumulator
// 4j+h holds pixel j's channels 2h, 2h+1, two partial sums each; start
// sets them (SADDLP) instead of adding (SADALP).
func neonPair(start bool) {
	ld1x2(16, 5, 13)
	ld1x2(18, 5, 13)
	for j := range mr {
		ld1r4(20+j, 1+j)
		ld1r4(24+j, 1+j)
	}
	for j := range mr {
		smull(28, 16, 20+j)
		smlal(28, 18, 24+j)
		smull2(29, 16, 20+j)
		smlal2(29, 18, 24+j)
		smull(30, 17, 20+j)
		smlal(30, 19, 24+j)
		smull2(31, 17, 20+j)
		smlal2(31, 19, 24+j)
		for h := range 4 {
			if start {
				saddlp(4*j+h, 28+h)
			} else {
				sadalp(4*j+h, 28+h)
			}
		}
	}
}

// passEnd moves on to the next pass's channels (setup runs after the last
// pass too, harmlessly: it only reads) and returns after the last. The
// return counts once per call (region callRegion).
//
// After the last pass, while tileArgs.more says so, the call goes on to
// the next tile: more counts down, each pixel's input and output pointer
// (tileArgs.in and out, rewritten) moves tstep and ostep bytes on, and
// the kernel starts again from its first instruction, as a fresh call
// would, for a few instructions a tile where a call from Go costs some
// fifty. Every tile thus runs the same blocks from the function's entry
// on, which the estimate (internal/armestimate) counts as calls.
func passEnd(k *armKernel, callRegion, loop string, setup func()) {
	ag("ADD $%d, R10, R10", k.lanes)
	setup()
	ag("CMP $%d, R10", nr)
	ag("BLT %s", loop)
	if armRegion != "special" {
		armRegion = callRegion
	}
	if k.add {
		// The last pass's pixels 2 and 3, whose lookups the next pass
		// would have done (addEpilogue).
		addLookup(2, "R23")
		addLookup(3, "R2")
	}
	// One block for every tile, the last one's too (its pointers are
	// moved past the run and more stays 0), so that the estimate, which
	// scales the kernel's blocks by its entries, prices it exactly.
	ag("MOVD %d(R0), R12", offTStep)
	ag("MOVD %d(R0), R14", offOStep)
	for j := range mr {
		ag("ADD R12, R%d, R%d", 19+j, 19+j)
		ag("MOVD R%d, %d(R0)", 19+j, offIn+8*j)
		ag("MOVD %d(R0), R23", offOut+8*j)
		ag("ADD R14, R23, R23")
		ag("MOVD R23, %d(R0)", offOut+8*j)
	}
	ag("MOVW %d(R0), R12", offMore)
	ag("SUBS $1, R12, R12")
	ag("CSEL LT, ZR, R12, R12")
	ag("MOVW R12, %d(R0)", offMore)
	ag("BGE %s", k.name+"entry")
	ag("RET")
}

// outConsts loads the output zero point (V28, int16 lanes), activation
// minimum and maximum (V29, V30, int8 lanes).
func outConsts() {
	ag("MOVW %d(R0), R12", offZP)
	dup8h(28, 12)
	ag("MOVW %d(R0), R12", offMin)
	dup16b(29, 12)
	ag("MOVW %d(R0), R12", offMax)
	dup16b(30, 12)
}

// passSetup points R11 at the parameters and R5 at the weights of the
// pass's channels (from R10), R6 at the taps and R7 at their count, and
// starts the accumulators: at the bias for SDOT (int32 sums wrap alike in
// any order: four loads instead of sixteen EORs and ADDs), at zero for
// NEON unless noZero (its fast copy's first pair sets them). After the
// last pass it reads the bias row's continuation (the next row of the same
// parameter block), which is never used.
func passSetup(dot, first, noZero bool) {
	ag("MOVD %d(R0), R11", offParams)
	if !first {
		ag("ADD R10<<2, R11, R11 // parameters of this pass's channels")
	}
	if dot && !(addBiasEarly && !first) {
		for j := range mr {
			ld1x4s(4*j, 11)
		}
	} else if !dot && !noZero {
		for r := range 16 {
			veor(r, r, r)
		}
	}
	ag("MOVD %d(R0), R5", offW)
	if !first {
		ag("ADD R10<<2, R5, R5 // weights of this pass's channels")
	}
	ag("MOVD %d(R0), R6", offTaps)
	ag("MOVD %d(R0), R7", offNTaps)
}

const (
	epiFixed = iota // TFLite's fixed-point arithmetic, every channel shifting right
	epiLsh          // the same with SSHL first, and channels that may not shift right
	epiRelu         // epiFixed where the output zero point is -128 (SDOT only)
)

// epilogueFP32 is the "xnnpack" arithmetic (ref.RequantizeFP32):
// float32(acc + bias) * scale (SCVTF and FMUL round to nearest even, as Go
// does: Go leaves FPCR at its default), clamped to [min - zp, max - zp],
// rounded to nearest even, plus zp. Two ways, for the cores each kernel is
// for:
//
// SDOT (Cortex-A76 and later): clamped in float (FMAX, FMIN), then rounded
// by adding 1.5 * 2^23 (exact for |y| < 2^22: the sum's last mantissa bit
// is the units), whose bits minus those of 1.5 * 2^23 are the integer;
// minus zp folded into that constant. The results lie in [min, max], so
// the narrowing needs no saturation: UZP1 keeps the low halves. An A76
// runs FCVTNS on one vector pipe at half rate, these on either.
//
// NEON (Cortex-A72, A53): FCVTNS, which rounds to nearest even and
// saturates to int32, then the fixed-point path's narrowing and clamp
// (exact for every int32): rounding first and clamping the integer gives
// the reference's value, as rounding is monotonic and both bounds are
// integers, and a saturated FCVTNS lies beyond either bound. On an A72
// the float additions and UZP1 cost more than FCVTNS.
func epilogueFP32(dot bool) {
	vecs := 4
	if !dot {
		vecs = 2
		for j := range mr {
			vaddp(4*j, 4*j, 4*j+1)
			vaddp(4*j+1, 4*j+2, 4*j+3)
		}
		outConsts()
		for q := range vecs {
			ldrQ(16, 11, rowBias*nr*4+16*q)
			for j := range mr {
				vadd(4*j+q, 4*j+q, 16)
			}
		}
		for q := range vecs {
			ldrQ(16+q, 11, armRowScale*nr*4+16*q)
		}
		for j := range mr {
			for q := range vecs {
				x := 4*j + q
				scvtf(x, x)
				vfmul(x, x, 16+q)
				fcvtns(x, x)
			}
			ag("MOVD %d(R0), R23", offOut+8*j)
			ag("ADD R10, R23, R23")
			sqxtnH(24, 4*j)
			sqxtn2H(24, 4*j+1)
			vsqadd8h(24, 24, 28)
			sqxtnB(24, 24)
			vsmax8b(24, 24, 29)
			vsmin8b(24, 24, 30)
			strD(24, 23)
		}
		return
	}
	// V16-V19 scales; V20 min - zp, V21 max - zp (float32); V22 1.5 * 2^23;
	// V23 its bits minus zp (int32). R23 is free until the stores.
	ag("MOVW %d(R0), R12", offZP)
	ag("MOVW %d(R0), R23", offMin)
	ag("SUB R12, R23, R23")
	dup4s(20, 23)
	scvtf(20, 20)
	ag("MOVW %d(R0), R23", offMax)
	ag("SUB R12, R23, R23")
	dup4s(21, 23)
	scvtf(21, 21)
	ag("MOVW $0x4B400000, R23")
	dup4s(22, 23)
	ag("SUB R12, R23, R23")
	dup4s(23, 23)
	for q := range vecs {
		ldrQ(16+q, 11, armRowScale*nr*4+16*q)
	}
	// The conversions first: an A76 runs SCVTF on V0 only, the rest on
	// either pipe.
	for j := range mr {
		for q := range vecs {
			scvtf(4*j+q, 4*j+q)
		}
	}
	for j := range mr {
		for q := range vecs {
			x := 4*j + q
			vfmul(x, x, 16+q)
			vfmax(x, x, 20)
			vfmin(x, x, 21)
			vfadd(x, x, 22)
			vsub(x, x, 23)
		}
		ag("MOVD %d(R0), R23", offOut+8*j)
		ag("ADD R10, R23, R23")
		uzp1H(24, 4*j, 4*j+1)
		uzp1H(25, 4*j+2, 4*j+3)
		uzp1B(24, 24, 25)
		st1Q(24, 23)
	}
}

// epilogue requantizes the pass's accumulators (V0-V15, pixel j's vectors
// at 4j+q) and stores the int8 outputs, pixel by pixel.
//
// With add (SDOT only), each pixel's 16 bytes get the fused residual ADD
// before they are stored (store16).
func epilogue(dot bool, kind int, add bool) {
	vecs := 4 // accumulator vectors of 4 channels per pixel
	if !dot {
		vecs = 2
		for j := range mr {
			vaddp(4*j, 4*j, 4*j+1)
			vaddp(4*j+1, 4*j+2, 4*j+3)
		}
		outConsts()
		for q := range vecs {
			ldrQ(16, 11, rowBias*nr*4+16*q)
			for j := range mr {
				vadd(4*j+q, 4*j+q, 16)
			}
		}
	}
	// Parameter vectors: SDOT has V16-V27 free, NEON V16-V23 (and its
	// accumulators' odd halves, V2, V3, V6, ...: unused after ADDP).
	mult := []int{16, 17, 18, 19}
	nrsh := []int{20, 21, 22, 23}
	tmp := []int{24, 25, 26, 27}
	if !dot {
		mult, nrsh, tmp = []int{16, 17}, []int{18, 19}, []int{2, 3, 6, 7}
	}
	if kind == epiLsh {
		for q := range vecs {
			ldrQ(24, 11, rowLsh*nr*4+16*q)
			for j := range mr {
				vsshl(4*j+q, 4*j+q, 24)
			}
		}
	}
	for q := range vecs {
		ldrQ(mult[q], 11, rowMult*nr*4+16*q)
		ldrQ(nrsh[q], 11, rowNrsh*nr*4+16*q)
	}
	// The SDOT kernel's inline epilogue (tileArgs.lsh and sat clear: every
	// channel has rsh >= 1, a multiplier >= 0, and |acc| small enough
	// that the requantized value plus the zero point fits int16, which
	// NewConv proves from the bias and the weights; see Conv.sat):
	//
	//   t = CMLT(acc, 0) is -1 for acc < 0; SQRDMLAH t, acc, mult is
	//   SQRDMULH(acc, mult) - [acc < 0], never saturating (|SQRDMULH| <
	//   2^31 - 1 for a multiplier below 2^31). With mult >= 0 the product
	//   is < 0 only when acc < 0, so that is RoundingDivideByPOT's
	//   subtraction of 1 from negative values, except that a product of 0
	//   from acc < 0 becomes -1, which SRSHL by rsh >= 1 rounds back to 0.
	//   SRSHL by -rsh then rounds ties up: away from zero, as TFLite does.
	//
	// The narrowing keeps the low halves (UZP1), exact while the value
	// fits int16, adds the zero point (no overflow, by the same bound),
	// then saturates to int8, which is the clamp: the inline epilogue runs
	// only where the activation range is [-128, 127] (ResNet's every
	// layer: ReLU outputs have zero point -128); narrower ranges take the
	// saturating one, which clamps.
	// Where moreover the output zero point is -128 (a ReLU's lower end:
	// TFLite's ReLU layers have it), the rounding fix-up for negative
	// values is not needed: a negative SQRDMULH(acc, m) rounds, either
	// way, to a value <= 0, which the zero point and the clamp take to
	// -128 alike. So SQRDMULH then SRSHL; the narrowing to int16 (UZP1)
	// as above, then SQXTUN saturates x to [0, 255], which EOR 0x80 (V29,
	// the activation minimum's bytes) makes x - 128 clamped to int8.
	if dot && kind == epiRelu && !add {
		for j := range mr {
			for q := range vecs {
				x := 4*j + q
				vsqrdmulh(x, x, mult[q])
				vsrshl(x, x, nrsh[q])
			}
			ag("MOVD %d(R0), R23", offOut+8*j)
			ag("ADD R10, R23, R23")
			uzp1H(24, 4*j, 4*j+1)
			uzp1H(25, 4*j+2, 4*j+3)
			sqxtunB(24, 24)
			sqxtun2B(24, 25)
			veor(24, 24, 29)
			st1Q(24, 23)
		}
		return
	}
	if dot && kind == epiFixed && !add {
		for j := range mr {
			for q := range vecs {
				x, t := 4*j+q, tmp[q]
				cmlt0(t, x)
				sqrdmlah(t, x, mult[q])
				vsrshl(x, t, nrsh[q])
			}
			ag("MOVD %d(R0), R23", offOut+8*j)
			ag("ADD R10, R23, R23")
			uzp1H(24, 4*j, 4*j+1)
			vadd8h(24, 24, 28)
			uzp1H(25, 4*j+2, 4*j+3)
			vadd8h(25, 25, 28)
			sqxtnB(24, 24)
			sqxtn2B(24, 25)
			st1Q(24, 23)
		}
		return
	}
	requant := func(j int) {
		for q := range vecs {
			x := 4*j + q
			// TFLite's NEON way, exact: SSHL (left shift, wraps),
			// SQRDMULH (= SaturatingRoundingDoublingHighMul), then
			// RoundingDivideByPOT as SRSHL by -rsh after subtracting 1
			// from negative values (SRSHL rounds ties up; the
			// reference away from zero). Out of line, where a channel
			// may have rsh = 0, the 1 comes from SSRA of (x AND -rsh)
			// >> 31: -1 exactly when x < 0 and rsh > 0. It cannot
			// wrap, as SQRDMULH by a multiplier in [0, 2^31) never
			// returns -2^31.
			t := tmp[q]
			vsqrdmulh(x, x, mult[q])
			switch {
			case kind == epiLsh:
				vand(t, x, nrsh[q])
				ssra31(x, t)
			case dot && q == 3, !dot && j%2 == 1 && q == 1:
				// Inline, every channel has rsh > 0 (tileArgs.lsh is
				// 0), so the 1 is subtracted from every negative x,
				// by SSRA of x itself or, for a quarter of the vectors,
				// by CMLT and ADD, which either vector pipe runs (an
				// A76's SSRA, SRSHL and SQXTN only its V1, an A72's
				// only its F1).
				cmlt0(t, x)
				vadd(x, x, t)
			default:
				ssra31(x, x)
			}
			vsrshl(x, x, nrsh[q])
		}
	}
	narrow := func(j int) {
		// Then the zero point and the clamp, on narrowed lanes: saturating
		// to int16, adding the zero point saturating, saturating to int8
		// and clamping to [actMin, actMax] (inside int8) gives the
		// reference's clamp(x + zp, actMin, actMax) for every int32 x.
		ag("MOVD %d(R0), R23", offOut+8*j)
		ag("ADD R10, R23, R23")
		sqxtnH(24, 4*j)
		sqxtn2H(24, 4*j+1)
		vsqadd8h(24, 24, 28)
		if dot {
			sqxtnH(25, 4*j+2)
			sqxtn2H(25, 4*j+3)
			vsqadd8h(25, 25, 28)
			sqxtnB(24, 24)
			sqxtn2B(24, 25)
			vsmax16b(24, 24, 29)
			vsmin16b(24, 24, 30)
			st1Q(24, 23)
		} else {
			sqxtnB(24, 24)
			vsmax8b(24, 24, 29)
			vsmin8b(24, 24, 30)
			strD(24, 23)
		}
	}
	if dot && add {
		addEpilogue(kind, vecs, mult, nrsh)
		return
	}
	// SDOT pixel by pixel; NEON every pixel's requantization first (the
	// orders llvm-mca's A76 and A72 models schedule best).
	for j := range mr {
		requant(j)
		if dot {
			narrow(j)
		}
	}
	if !dot {
		for j := range mr {
			narrow(j)
		}
	}
}

// addEpilogue is the SDOT epilogue of kind with the fused residual ADD
// (tileNEONDotAdd), software-pipelined over the four pixels in the
// epilogue's one basic block: pixel j's requantization (as epilogue's)
// narrows into V4j (its accumulators are free by then); addIndex(j) makes
// its sixteen table indices from it and the residual, addLookup(j) looks
// them up and stores the bytes. Each pixel's index stage is interleaved
// with the next pixel's vector instructions and its lookups with the
// pixel after that, so that an out-of-order core (whose reorder buffer
// would fill behind a dependency chain of some forty cycles) keeps the
// vector, integer and load pipes busy together; pixels 2 and 3's lookups
// wait for the next pass's epilogue (their indices in general registers
// that the SDOT loop leaves alone, R23 and R2 their outputs), where they
// run beside pixels 0 and 1's vector work instead of ending the block
// alone; after the last pass, passEnd does them. The residual vectors are
// loaded first, off those chains; the requantization's temporaries are all
// V24 (renaming makes them independent), which frees V25-V27. llvm-mca's
// Neoverse-N1 model prices the pass block at 66 cycles for the fast copy
// (tileNEONDot's: 46, plus 54 for addTableNEON's 64 bytes).
func addEpilogue(kind, vecs int, mult, nrsh []int) {
	const t = 24
	// R11: the next pass's bias (each pixel's accumulators start there),
	// loaded into V4j-V4j+3 as soon as pixel j's indices are made (after
	// the last pass, the parameter block's next row: read, not used).
	ag("ADD $%d, R11, R11", 4*16)
	// R13 (the weights' group stride, restored at the end): pixel 0's
	// output; the pixels' outputs lie R16 bytes apart. The residuals are
	// loaded first, off the lookups' dependency chains.
	ag("MOVD %d(R0), R13", offOut)
	ag("MOVD %d(R0), R12 // residual minus output address", offResd)
	ag("ADD R10, R13, R13")
	ldrQreg(addRes[0], 13, 12)
	for j := 1; j < mr; j++ {
		prev := "R13"
		if j > 1 {
			prev = fmt.Sprintf("R%d", 3+j)
		}
		ag("ADD R16, %s, R%d", prev, 4+j)
		ldrQreg(addRes[j], 4+j, 12)
	}
	pixel := func(j int) {
		d0, d1 := 4*j, 4*j+1
		switch kind {
		case epiRelu:
			for q := range vecs {
				x := 4*j + q
				vsqrdmulh(x, x, mult[q])
				vsrshl(x, x, nrsh[q])
			}
			uzp1H(d0, 4*j, 4*j+1)
			uzp1H(d1, 4*j+2, 4*j+3)
			sqxtunB(d0, d0)
			sqxtun2B(d0, d1)
			veor(d0, d0, 29)
		case epiFixed:
			for q := range vecs {
				x := 4*j + q
				cmlt0(t, x)
				sqrdmlah(t, x, mult[q])
				vsrshl(x, t, nrsh[q])
			}
			uzp1H(d0, 4*j, 4*j+1)
			vadd8h(d0, d0, 28)
			uzp1H(d1, 4*j+2, 4*j+3)
			vadd8h(d1, d1, 28)
			sqxtnB(d0, d0)
			sqxtn2B(d0, d1)
		default: // epiLsh (the SSHLs are done): epilogue's requant and narrow
			for q := range vecs {
				x := 4*j + q
				vsqrdmulh(x, x, mult[q])
				vand(t, x, nrsh[q])
				ssra31(x, t)
				vsrshl(x, x, nrsh[q])
			}
			sqxtnH(d0, 4*j)
			sqxtn2H(d0, 4*j+1)
			vsqadd8h(d0, d0, 28)
			sqxtnH(d1, 4*j+2)
			sqxtn2H(d1, 4*j+3)
			vsqadd8h(d1, d1, 28)
			sqxtnB(d0, d0)
			sqxtn2B(d0, d1)
			vsmax16b(d0, d0, 29)
			vsmin16b(d0, d0, 30)
		}
	}
	// Stage s of pixel j runs beside stage 0 of pixel j+s.
	index := func(j int) {
		addIndex(j)
		ld1x4s(4*j, 11)
	}
	// Steps: the vector work of pixel j beside the indexing of pixel j-1
	// and the lookups of pixel j-2, the previous pass's pixels 2 and 3
	// (R23 and R2 their outputs) coming first. Pixels 2 and 3's lookups
	// wait for the next pass (passEnd does them after the last), their
	// indices in the registers the SDOT loop leaves alone.
	lookup := func(j int) {
		switch j {
		case -2:
			addLookup(2, "R23")
		case -1:
			addLookup(3, "R2")
		case 0:
			addLookup(0, "R13")
		default:
			addLookup(1, "R13+R16")
		}
	}
	stages := []func(int){pixel, index, lookup}
	for step := range mr + 1 {
		var lines []string
		for s, f := range stages {
			if j := step - s; j >= -2 && j < mr && (s == 2 || j >= 0) && (s != 2 || j < 2) {
				lines = mergeLines(lines, capture(func() { f(j) }))
			}
		}
		if step == mr {
			// This pass's pixels 2 and 3 for the next.
			lines = append(lines, capture(func() {
				ag("ADD R16<<1, R13, R23")
				ag("ADD R16, R23, R2")
				ag("MOVD $%d, R13", 4*nr)
			})...)
		}
		emitMerged(nil, lines)
	}
}

// addInit starts a call of a fused copy (its first pass, and each tile of
// a run): R16 the distance between the pixels' outputs, and the
// "previous pass's" pixels 2 and 3 that the first pass's epilogue looks
// up: indices 0, stored to tileArgs' sink.
func addInit() {
	ag("MOVD %d(R0), R16", offOut+8)
	ag("MOVD %d(R0), R12", offOut)
	ag("SUB R12, R16, R16")
	ag("ADD $%d, R0, R23", offSink)
	ag("MOVD R23, R2")
	for _, w := range addIdx {
		for _, r := range w {
			ag("MOVD ZR, %s", r)
		}
	}
}

// mergeLines interleaves a and c, c's lines spread evenly among a's.
func mergeLines(a, c []string) []string {
	n := len(a) + len(c)
	out := make([]string, 0, n)
	ia, ic := 0, 0
	for k := range n {
		if ic < len(c) && (ia == len(a) || ic*n < (k+1)*len(c)) {
			out = append(out, c[ic])
			ic++
		} else {
			out = append(out, a[ia])
			ia++
		}
	}
	return out
}

// The fused ADD's registers in the epilogue: pixel j's residual vector,
// and its sixteen indices four to a register (two sets: pixel j's
// lookups run beside pixel j+1's indexing; pixels 2 and 3's live across
// the SDOT loop, which does not touch these).
var (
	addRes = []int{25, 26, 27, 31}
	addIdx = [2][]string{{"R3", "R4", "R8", "R14"}, {"R15", "R24", "R26", "R17"}}
)

// capture returns the lines f emits, taking them back out of b.
func capture(f func()) []string {
	mark := b.Len()
	f()
	all := b.String()
	b.Reset()
	b.WriteString(all[:mark])
	return strings.SplitAfter(strings.TrimSuffix(all[mark:], "\n"), "\n")
}

// emitMerged writes the lines of a and c interleaved, c's spread evenly
// among a's.
func emitMerged(a, c []string) {
	n := len(a) + len(c)
	ia, ic := 0, 0
	for k := range n {
		// c's share of the first k+1 lines, rounded.
		if ic < len(c) && (ia == len(a) || (ic*n < (k+1)*len(c))) {
			b.WriteString(strings.TrimSuffix(c[ic], "\n") + "\n")
			ic++
		} else {
			b.WriteString(strings.TrimSuffix(a[ia], "\n") + "\n")
			ia++
		}
	}
}

// addIndex makes pixel j's sixteen table indices conv<<8 | residual, from
// its 16 output bytes (V4j) and the residual's (addRes[j], loaded from out
// + resd before anything is stored, so the residual may be the output
// itself): ZIP1 and ZIP2 interleave them, four UMOVs move them to
// addIdx[j%2].
func addIndex(j int) {
	c, r, z1, z2 := 4*j, addRes[j], 4*j+2, 4*j+3
	w := addIdx[j%2]
	ag("VZIP1 V%d.B16, V%d.B16, V%d.B16 // residual low, convolution high", c, r, z1)
	ag("VZIP2 V%d.B16, V%d.B16, V%d.B16", c, r, z2)
	ag("VMOV V%d.D[0], %s", z1, w[0])
	ag("VMOV V%d.D[1], %s", z1, w[1])
	ag("VMOV V%d.D[0], %s", z2, w[2])
	ag("VMOV V%d.D[1], %s", z2, w[3])
}

// addLookup looks pixel j's indices up in the table at R1 (Conv.addT: out =
// T[conv<<8 | residual]) and stores the sixteen bytes: scalar byte loads
// (as addTableNEON's), gathered eight to a register by ORR of the byte
// shifted into place, pairs then quadruples (a tree, not a chain of
// seven), and one STP at out (a register, or "R13+R16": pixel 1's). It
// uses R5-R7, R9 and R12, free in the fast copies' epilogue (passSetup
// sets R5-R7 and R9 afresh, fastSetup R12), and after the last pass.
// (The index registers: R8 and R24 are read at the kernel's entry only,
// R15 too in tileNEONDotAdd; R3, R4, R14, R17 and R26 hold nothing in the
// fast copies.)
func addLookup(j int, out string) {
	w := addIdx[j%2]
	look := func(k int, reg string) {
		src := w[k/4]
		if sh := 16 * (k % 4); sh == 48 {
			ag("LSR $48, %s, R12", src)
		} else {
			ag("UBFX $%d, %s, $16, R12", sh, src)
		}
		ag("MOVBU (R1)(R12), %s", reg)
	}
	// dst = b0 | b1<<8 | ... | b7<<56 of bytes 8h..8h+7: pairs, then
	// quadruples (R5 the upper one), then the eight.
	for h, dst := range []string{"R7", "R9"} {
		for q := range 2 {
			a := dst
			if q == 1 {
				a = "R5"
			}
			k := 8*h + 4*q
			look(k, a)
			look(k+1, "R12")
			ag("ORR R12<<8, %s, %s", a, a)
			look(k+2, "R6")
			look(k+3, "R12")
			ag("ORR R12<<8, R6, R6")
			ag("ORR R6<<16, %s, %s", a, a)
		}
		ag("ORR R5<<32, %s, %s", dst, dst)
	}
	if out == "R13+R16" {
		ag("ADD R16, R13, R12")
		out = "R12"
	}
	ag("STP (R7, R9), (%s)", out)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gen_tile:", err)
	os.Exit(1)
}
