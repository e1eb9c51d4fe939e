package interp

import (
	"fmt"
	"os"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
)

// BenchmarkModel times one inference of the .tflite file named by
// SHORTCUT_BENCH_MODEL (make one with `shortcut-train random-model --depth 50
// --input 224,224,3 --int8 --out /tmp/r50.tflite`), for every kernel path this
// CPU has and for one and two threads. The reference kernels take seconds per
// inference: use -benchtime 3x.
func BenchmarkModel(b *testing.B) {
	path := os.Getenv("SHORTCUT_BENCH_MODEL")
	if path == "" {
		b.Skip("set SHORTCUT_BENCH_MODEL to a .tflite file to time it")
	}
	m, err := resnet.LoadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, kernels := range benchKernels() {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("kernels=%s/threads=%d", kernels, threads), func(b *testing.B) {
				it, err := New(m, Options{Threads: threads, Kernels: kernels})
				if err != nil {
					b.Fatal(err)
				}
				defer it.Close()
				if err := it.Invoke(); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for b.Loop() {
					it.Invoke()
				}
				sec := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(sec*1e3, "ms/op")
				b.ReportMetric(float64(it.prog.macs())/sec/1e9, "GMAC/s")
			})
		}
	}
}

// benchKernels is every kernel choice worth timing on this CPU.
func benchKernels() []string {
	ks := []string{"ref"}
	for _, isa := range fast.Available() {
		ks = append(ks, isa.String())
	}
	return ks
}
