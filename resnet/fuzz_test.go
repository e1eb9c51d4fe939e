package resnet

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to Load. Load must never panic, and a file
// it accepts must survive Marshal and Load again, after which Marshal is
// stable. Seeds: the valid test model, the same model as written by flatc,
// and every file of testdata/broken (crashers found earlier live in
// testdata/fuzz/FuzzLoad). Random bytes mostly stop at the FlatBuffers
// verifier; FuzzLoadMutated (mutate_fuzz_test.go) changes one field of a
// valid model instead, to reach Validate, the spec rules and the
// interpreter.
//
//	go test ./resnet -run '^$' -fuzz '^FuzzLoad$' -fuzztime 60s -fuzzminimizetime 2s
func FuzzLoad(f *testing.F) {
	f.Add(mustMarshal(f, testModel()))
	small := testModel()
	small.Meta = Metadata{}
	f.Add(mustMarshal(f, small))
	files, _ := filepath.Glob(filepath.Join("testdata", "broken", "*.tflite"))
	files = append(files, filepath.Join("testdata", "tf115_flatc.tflite"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Load(data)
		if err != nil {
			if m != nil {
				t.Fatalf("Load returned a model together with error %v", err)
			}
			return
		}
		first, err := m.Marshal()
		if err != nil {
			t.Fatalf("Load accepted a model that Marshal rejects: %v", err)
		}
		m2, err := Load(first)
		if err != nil {
			t.Fatalf("Load rejects what Marshal wrote: %v", err)
		}
		second, err := m2.Marshal()
		if err != nil {
			t.Fatalf("second Marshal: %v", err)
		}
		if !bytes.Equal(first, second) {
			t.Fatalf("Marshal(Load(Marshal(m))) differs from Marshal(m) (%d vs %d bytes)", len(second), len(first))
		}
	})
}
