// Command probe is the arm64 half of armestimate: it loads a .tflite model,
// prepares it with one arm64 kernel family and runs one inference, under
// qemu-user with its execution trace on. It prints nothing the estimate
// needs; the estimate reads qemu's trace of the interpreter's code.
//
//	GOARCH=arm64 go build -o probe ./internal/cmd/armestimate/probe
//	qemu-aarch64-static -cpu max -d in_asm,exec,nochain ... probe -model M.tflite -kernels neondot
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

func main() {
	model := flag.String("model", "", "int8 .tflite model")
	kernels := flag.String("kernels", "neondot", "kernel family (interp.Options.Kernels)")
	arith := flag.String("arithmetic", "", "interp.Options.Arithmetic")
	runs := flag.Int("runs", 1, "inferences to run (the estimate reads the last)")
	flag.Parse()
	if err := run(*model, *kernels, *arith, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

func run(path, kernels, arith string, runs int) error {
	m, err := resnet.LoadFile(path)
	if err != nil {
		return err
	}
	it, err := interp.New(m, interp.Options{Threads: 1, Kernels: kernels, Arithmetic: arith})
	if err != nil {
		return err
	}
	defer it.Close()
	// A fixed, non-trivial input: the kernels' paths do not depend on
	// values, but the padding and clamps should see both signs.
	for i := range it.NumInputs() {
		t := it.Input(i)
		switch t.Type {
		case resnet.Int8:
			for j := range t.Int8() {
				t.Int8()[j] = int8(j*37 + 11)
			}
		case resnet.Float32:
			for j := range t.Float32() {
				t.Float32()[j] = float32((j*37+11)%255)/64 - 2
			}
		}
	}
	for range runs {
		if err := it.Invoke(); err != nil {
			return err
		}
	}
	fmt.Println("probe: ok")
	return nil
}
