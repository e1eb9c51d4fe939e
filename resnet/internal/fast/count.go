package fast

import (
	"fmt"

	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// armRegions counts instructions of one arm64 micro-kernel by region of
// tile_arm64.s: once per call, once per pass over a kernel's lanes
// channels, once per filter tap in a pass, once per chunk of a tap's
// input bytes (SDOT's 16, NEON's 8) and once per 4-byte group outside the
// chunks.
type armRegions struct {
	call, pass, tap, chunk, single int64
}

// armCount is an arm64 kernel's static instruction counts (tile_counts.go,
// written by gen_tile.go): every instruction, Advanced SIMD arithmetic
// only, loads and stores only.
type armCount struct {
	lanes         int
	chunkBytes    int           // input bytes per pass of the chunk loop (SDOT 16, NEON's SMLAL pairs 8)
	all, vec, mem [2]armRegions // [0] the fast copy, [1] the general one
}

// ArmCost is what an arm64 micro-kernel executes for one convolution:
// counted from the generated code's loop structure, not measured.
type ArmCost struct {
	Calls        int64 // micro-kernel calls (4 pixels x 64 channels each)
	Instructions int64 // every instruction the kernel executes
	Vector       int64 // of which Advanced SIMD arithmetic (SDOT, SMULL, SADALP, ...)
	Memory       int64 // of which loads and stores
	MACs         int64 // the convolution's multiply-accumulates as ref counts them
}

// ArmKernelCost counts what family isa (NEON or NEONDot) executes in its
// micro-kernel for one run of a convolution of p's shape (quantization
// fields are not read). The padding copy before it is Go code, not counted.
func ArmKernelCost(p *ref.Conv, isa ISA) (ArmCost, error) {
	k, ok := armKernelCounts[isa]
	if !ok {
		return ArmCost{}, fmt.Errorf("fast: no arm64 instruction counts for kernel family %v (have neon, neondot)", isa)
	}
	m := int64(p.Batch * p.OutH * p.OutW)
	calls := (m + mr - 1) / mr * int64((p.OutC+nr-1)/nr)
	taps := int64(p.FilterH * p.FilterW)
	kbytes := int64((p.InC + 3) &^ 3)
	// The fast copy takes layers whose bytes per tap are whole chunks (on
	// NEON also: no -128 weight, which shapes do not say; TFLite's weights
	// have none), the general one the rest.
	v := 0
	if kbytes%int64(k.chunkBytes) != 0 {
		v = 1
	}
	chunks := kbytes / int64(k.chunkBytes)
	singles := (kbytes - int64(k.chunkBytes)*chunks) / 4
	passes := int64(nr / k.lanes)
	total := func(rs [2]armRegions) int64 {
		r := rs[v]
		return calls * (r.call + passes*(r.pass+taps*(r.tap+chunks*r.chunk+singles*r.single)))
	}
	return ArmCost{Calls: calls, Instructions: total(k.all), Vector: total(k.vec), Memory: total(k.mem),
		MACs: m * int64(p.OutC) * taps * int64(p.InC)}, nil
}
