// Command armcount prints how many instructions the arm64 micro-kernels
// (NEON and NEON SDOT) execute for one int8 ResNet-50 inference, counted
// from the generated assembly's loop structure (resnet/internal/fast's
// tile_counts.go) times the calls each convolution makes, and what that
// suggests for a Raspberry Pi 5 (Cortex-A76, 2.4 GHz, 4 cores) against
// ncnn's published 40.8 ms (4 threads).
//
//	go run ./resnet/internal/fast/cmd/armcount [-size 224] [-depth 50]
//
// The model is built in memory (random weights: only shapes matter).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

func main() {
	size := flag.Int("size", 224, "input height and width")
	depth := flag.Int("depth", 50, "ResNet depth (18, 34, 50)")
	ghz := flag.Float64("ghz", 2.4, "core clock of the board, GHz")
	cores := flag.Int("cores", 4, "cores of the board")
	target := flag.Float64("target-ms", 40.8, "time to match (ncnn int8 ResNet-50 on a Pi 5, 4 threads), ms")
	flag.Parse()
	if err := run(*size, *depth, *ghz, *cores, *target); err != nil {
		fmt.Fprintln(os.Stderr, "armcount:", err)
		os.Exit(1)
	}
}

func run(size, depth int, ghz float64, cores int, targetMS float64) error {
	m, err := build.ResNet(build.Config{Depth: depth, Input: [3]int{size, size, 3}, Classes: 1000, Weights: build.RandomWeights(1)})
	if err != nil {
		return err
	}
	convs, err := convShapes(m)
	if err != nil {
		return err
	}
	var padBytes int64
	for _, p := range convs {
		padBytes += int64(p.Batch) * int64((p.OutH-1)*p.StrideH+(p.FilterH-1)*p.DilationH+1) *
			int64((p.OutW-1)*p.StrideW+(p.FilterW-1)*p.DilationW+1) * int64((p.InC+3)&^3)
	}
	fmt.Printf("ResNet-%d %dx%d: %d convolutions (fully connected as 1x1)\n\n", depth, size, size, len(convs))
	fmt.Printf("%-8s %12s %16s %14s %14s %12s %10s %14s\n", "kernel", "calls", "instructions", "SIMD arith", "loads/stores", "MACs", "MAC/instr", "est. cycles")
	type row struct {
		isa            fast.ISA
		total, vec, ld int64
		cycles         float64
	}
	var rows []row
	for _, isa := range []fast.ISA{fast.NEON, fast.NEONDot} {
		var sum fast.ArmCost
		for _, p := range convs {
			c, err := fast.ArmKernelCost(&p, isa)
			if err != nil {
				return err
			}
			sum.Calls += c.Calls
			sum.Instructions += c.Instructions
			sum.Vector += c.Vector
			sum.Memory += c.Memory
			sum.MACs += c.MACs
		}
		// A Cortex-A76 decodes 4 instructions a cycle and has two Advanced
		// SIMD pipes and two load pipes: a lower bound on cycles.
		cyc := max(float64(sum.Instructions)/4, float64(sum.Vector)/2, float64(sum.Memory)/2)
		rows = append(rows, row{isa, sum.Instructions, sum.Vector, sum.Memory, cyc})
		fmt.Printf("%-8v %12d %16d %14d %14d %12d %10.2f %14.3g\n", isa, sum.Calls, sum.Instructions, sum.Vector, sum.Memory,
			sum.MACs, float64(sum.MACs)/float64(sum.Instructions), cyc)
	}
	var addElems, poolTaps int64
	for _, op := range m.Operators {
		o := &m.Tensors[op.Outputs[0]]
		switch op.Op {
		case resnet.OpAdd:
			addElems += int64(o.NumElements())
		case resnet.OpMaxPool2D:
			if opt, ok := op.Options.(*resnet.Pool2DOptions); ok {
				poolTaps += int64(o.NumElements()) * int64(opt.FilterH*opt.FilterW)
			}
		}
	}
	// Rough per-element costs of the loops (not counted from code): the
	// padding copy is compiled Go; ADD's table loop (add_arm64.s) runs 57
	// instructions per 16 elements; the max pool window (maxpool_arm64.s)
	// 7 per tap of 64 channels, plus Go around each output pixel (make
	// arm-estimate, which counts them, found 0.33 per byte-tap in all).
	fmt.Printf("\nOutside the micro-kernels (Go and NEON loops on arm64, estimated, not counted):\n")
	fmt.Printf("  padding copy  %10d bytes  x ~0.75 instr/byte   ~%4.0f M instructions\n", padBytes, float64(padBytes)*0.75/1e6)
	fmt.Printf("  ADD lookup    %10d elems  x ~3.6 instr/elem    ~%4.0f M\n", addElems, float64(addElems)*3.6/1e6)
	fmt.Printf("  MAX_POOL      %10d taps   x ~0.33 instr/tap    ~%4.1f M\n\n", poolTaps, float64(poolTaps)*0.33/1e6)
	fmt.Printf("Raspberry Pi 5 estimate (Cortex-A76 %.1f GHz x %d cores, perfect scaling, L1-resident operands):\n", ghz, cores)
	for _, r := range rows {
		ms1 := r.cycles / (ghz * 1e9) * 1e3
		needIPC := float64(r.total) / (targetMS / 1e3 * float64(cores) * ghz * 1e9)
		fmt.Printf("  %-8v bound %.1f ms on 1 core, %.1f ms on %d; to match %.1f ms on %d cores it needs IPC %.2f (bound IPC %.2f)\n",
			r.isa, ms1, ms1/float64(cores), cores, targetMS, cores, needIPC, float64(r.total)/r.cycles)
	}
	return nil
}

// convShapes reads every CONV_2D and FULLY_CONNECTED of m as a ref.Conv
// shape (quantization fields unset).
func convShapes(m *resnet.Model) ([]ref.Conv, error) {
	var out []ref.Conv
	for i, op := range m.Operators {
		if (op.Op != resnet.OpConv2D && op.Op != resnet.OpFullyConnected) || len(op.Inputs) < 2 || len(op.Outputs) < 1 {
			continue
		}
		in := m.Tensors[op.Inputs[0]].Shape
		w := m.Tensors[op.Inputs[1]].Shape
		o := m.Tensors[op.Outputs[0]].Shape
		switch op.Op {
		case resnet.OpConv2D:
			opt, ok := op.Options.(*resnet.Conv2DOptions)
			if !ok || len(in) != 4 || len(w) != 4 || len(o) != 4 {
				return nil, fmt.Errorf("operator %d: CONV_2D with options %T, shapes %v %v %v", i, op.Options, in, w, o)
			}
			out = append(out, ref.Conv{Batch: in[0], InH: in[1], InW: in[2], InC: in[3], OutH: o[1], OutW: o[2], OutC: o[3],
				FilterH: w[1], FilterW: w[2], StrideH: opt.StrideH, StrideW: opt.StrideW,
				DilationH: max(opt.DilationH, 1), DilationW: max(opt.DilationW, 1)})
		case resnet.OpFullyConnected:
			if len(w) != 2 {
				return nil, fmt.Errorf("operator %d: FULLY_CONNECTED weights %v", i, w)
			}
			n := m.Tensors[op.Inputs[0]].NumElements() / w[1]
			out = append(out, ref.Conv{Batch: n, InH: 1, InW: 1, InC: w[1], OutH: 1, OutW: 1, OutC: w[0],
				FilterH: 1, FilterW: 1, StrideH: 1, StrideW: 1, DilationH: 1, DilationW: 1})
		}
	}
	return out, nil
}
