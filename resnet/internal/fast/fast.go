// Package fast holds Shortcut's optimized int8 kernels: the same arithmetic
// as the reference kernels in resnet/internal/ref, bit for bit, organised for
// speed. The interpreter (resnet/interp) prepares one kernel object per
// operator at load time (weights packed, requantization parameters laid out
// per output-channel block) and runs it through a Runner, which owns the
// scratch memory and the worker goroutines of one interpreter.
//
// Convolutions are an implicit GEMM over output pixels: the input is copied
// once per call into a padded, biased (+128, so that it is unsigned) scratch
// image, and a micro-kernel multiplies MR output pixels by NR output
// channels over every filter tap, reading the taps through a table of byte
// offsets: no im2col buffer. Requantization happens in the micro-kernel's
// output stage.
//
// Micro-kernels exist per instruction set behind one signature and are
// chosen once, from golang.org/x/sys/cpu, when a kernel object is built:
// AVX-512 VNNI (VPDPBUSD on ZMM) on amd64, and plain Go everywhere (the
// fallback, and the oracle for the layout). ISA values can be forced, so
// that tests run every path this CPU has.
package fast

import (
	"fmt"
	"strings"
)

// ISA names a micro-kernel family.
type ISA int

const (
	// Go is the portable micro-kernel, for every GOARCH.
	Go ISA = iota
	// AVX512VNNI is the amd64 micro-kernel built on VPDPBUSD over ZMM
	// registers (needs AVX-512 F, BW, VL and VNNI).
	AVX512VNNI
)

var isaNames = map[ISA]string{Go: "go", AVX512VNNI: "avx512vnni"}

func (i ISA) String() string {
	if s, ok := isaNames[i]; ok {
		return s
	}
	return fmt.Sprintf("ISA(%d)", int(i))
}

// Supported reports whether this CPU can run micro-kernel family i.
func (i ISA) Supported() bool {
	switch i {
	case Go:
		return true
	case AVX512VNNI:
		return hasAVX512VNNI
	}
	return false
}

// Available lists the families this CPU runs, fastest last.
func Available() []ISA {
	var out []ISA
	for _, i := range []ISA{Go, AVX512VNNI} {
		if i.Supported() {
			out = append(out, i)
		}
	}
	return out
}

// Best is the fastest family this CPU runs.
func Best() ISA {
	a := Available()
	return a[len(a)-1]
}

// ParseISA reads a family name as Options.Kernels spells it.
func ParseISA(s string) (ISA, error) {
	for i, n := range isaNames {
		if n == s {
			return i, nil
		}
	}
	var names []string
	for _, i := range []ISA{Go, AVX512VNNI} {
		names = append(names, i.String())
	}
	return 0, fmt.Errorf("unknown kernel family %q (known: %s)", s, strings.Join(names, ", "))
}
