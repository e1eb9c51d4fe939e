package head

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// testState makes a small state whose contents depend on seed.
func testState(t *testing.T, seed float32) State {
	t.Helper()
	s, err := NewStore(3, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	s.Add("cat", []float32{seed, 1, 2}, []byte{0xFF, 0xD8, 0xFF, 0xE0, 1})
	s.Add("cat", []float32{seed, 2, 2}, nil)
	s.Add("dog", []float32{-seed, 0, 1}, nil)
	h, err := NewHead([]string{"cat", "dog"}, 3, []float32{1, seed, 0, 0, 1, 1}, []float32{0.5, -0.5}, "")
	if err != nil {
		t.Fatal(err)
	}
	h.report = Report{Mode: "extend", Classes: 2, ValidationAccuracy: 0.75}
	return State{Head: h, Examples: s.Snapshot()}
}

func sameState(a, b State) bool {
	if (a.Head == nil) != (b.Head == nil) {
		return false
	}
	if a.Head != nil && !reflect.DeepEqual(*a.Head, *b.Head) {
		return false
	}
	return reflect.DeepEqual(a.Examples, b.Examples)
}

func mustLoad(t *testing.T, dir string) (State, LoadInfo) {
	t.Helper()
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, info, err := d.Load()
	if err != nil {
		t.Fatalf("loading %s: %v", dir, err)
	}
	return st, info
}

func TestSavedStateLoadsBackIdentical(t *testing.T) {
	d, _ := OpenDir(t.TempDir())
	want := testState(t, 3)
	if _, err := d.Save(want); err != nil {
		t.Fatal(err)
	}
	got, info := mustLoad(t, d.Path())
	if !sameState(got, want) {
		t.Fatalf("loaded state differs:\n got %+v\nwant %+v", got, want)
	}
	if info.Generation != 1 || len(info.Skipped) != 0 {
		t.Errorf("info %+v, want generation 1 and nothing skipped", info)
	}
}

func TestEmptyDirectoryLoadsAsEmptyState(t *testing.T) {
	st, info := mustLoad(t, t.TempDir())
	if st.Head != nil || len(st.Examples.Labels) != 0 || info.Generation != 0 {
		t.Fatalf("got %+v %+v, want an empty state", st, info)
	}
}

func TestOnlyTheNewestTwoGenerationsAreKept(t *testing.T) {
	d, _ := OpenDir(t.TempDir())
	for i := range 5 {
		if _, err := d.Save(testState(t, float32(i))); err != nil {
			t.Fatal(err)
		}
	}
	gens, _ := d.generations()
	if !reflect.DeepEqual(gens, []uint64{5, 4}) {
		t.Fatalf("generations %v, want [5 4]", gens)
	}
}

// copyDir snapshots a directory, as a kill -9 at that moment leaves it.
func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

func TestAKillAtAnyStepOfASaveLeavesTheOldOrTheNewState(t *testing.T) {
	old, next := testState(t, 1), testState(t, 2)
	for _, initial := range []int{1, 3} { // the first save after one, and after several
		d, _ := OpenDir(t.TempDir())
		for range initial {
			if _, err := d.Save(old); err != nil {
				t.Fatal(err)
			}
		}
		var steps []string
		snaps := map[string]string{}
		d.hook = func(step string) error {
			steps = append(steps, step)
			snaps[step] = copyDir(t, d.Path())
			return nil
		}
		if _, err := d.Save(next); err != nil {
			t.Fatal(err)
		}
		snaps["done"] = copyDir(t, d.Path())
		steps = append(steps, "done")
		want := []string{"create", "write", "write-rest", "fsync", "close", "rename", "fsync-dir", "prune", "done"}
		if !reflect.DeepEqual(steps, want) {
			t.Fatalf("save steps %v, want %v", steps, want)
		}
		for i, step := range steps {
			st, _ := mustLoad(t, snaps[step])
			// A kill before a step leaves what the step before it made;
			// from after the rename on, the new state is committed.
			committed := i > 5
			switch {
			case committed && !sameState(st, next):
				t.Errorf("after %d saves, killed before %q: loaded a state other than the new one", initial, step)
			case !committed && !sameState(st, old):
				t.Errorf("after %d saves, killed before %q: loaded a state other than the old one", initial, step)
			}
			// The agent restarting there saves again without trouble.
			d2, _ := OpenDir(snaps[step])
			if _, err := d2.Save(next); err != nil {
				t.Errorf("saving after a kill before %q: %v", step, err)
			}
			if st, _ := mustLoad(t, snaps[step]); !sameState(st, next) {
				t.Errorf("saving after a kill before %q did not give the new state", step)
			}
		}
	}
}

func TestAFailedSaveReturnsAnErrorAndKeepsTheOldState(t *testing.T) {
	for _, step := range []string{"create", "write", "write-rest", "fsync", "close", "rename"} {
		t.Run(step, func(t *testing.T) {
			d, _ := OpenDir(t.TempDir())
			old := testState(t, 1)
			if _, err := d.Save(old); err != nil {
				t.Fatal(err)
			}
			d.hook = func(s string) error {
				if s == step {
					return syscall.ENOSPC
				}
				return nil
			}
			_, err := d.Save(testState(t, 2))
			if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), step) {
				t.Fatalf("Save error %v, want ENOSPC naming step %q", err, step)
			}
			st, _ := mustLoad(t, d.Path())
			if !sameState(st, old) {
				t.Fatal("the old state was lost")
			}
			entries, _ := os.ReadDir(d.Path())
			if len(entries) != 1 {
				t.Errorf("directory holds %d files after the failed save, want only the old generation", len(entries))
			}
		})
	}
}

func TestADamagedNewestGenerationFallsBackToThePreviousOne(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
		want   string
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }, "checksum"},
		{"a flipped bit", func(b []byte) []byte { b[len(b)/2] ^= 4; return b }, "checksum"},
		{"empty", func([]byte) []byte { return nil }, "not a Shortcut head state file"},
		{"foreign", func([]byte) []byte { return []byte("PK\x03\x04 a zip file, not ours") }, "not a Shortcut head state file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := OpenDir(t.TempDir())
			old := testState(t, 1)
			d.Save(old)
			gen, _ := d.Save(testState(t, 2))
			p := filepath.Join(d.Path(), genName(gen))
			b, _ := os.ReadFile(p)
			os.WriteFile(p, tc.damage(b), 0o600)
			st, info, err := d.Load()
			if err != nil {
				t.Fatal(err)
			}
			if !sameState(st, old) || info.Generation != gen-1 {
				t.Fatalf("loaded generation %d, want the previous good one %d", info.Generation, gen-1)
			}
			if len(info.Skipped) != 1 || !strings.Contains(info.Skipped[0].Error(), tc.want) || !strings.Contains(info.Skipped[0].Error(), genName(gen)) {
				t.Fatalf("skipped %v, want one error naming %s and saying %q", info.Skipped, genName(gen), tc.want)
			}
		})
	}
}

func TestAllGenerationsDamagedIsAnError(t *testing.T) {
	d, _ := OpenDir(t.TempDir())
	gen, _ := d.Save(testState(t, 1))
	os.WriteFile(filepath.Join(d.Path(), genName(gen)), []byte("SHCTHEAD garbage"), 0o600)
	if _, _, err := d.Load(); err == nil || !strings.Contains(err.Error(), "no readable state") {
		t.Fatalf("Load error %v, want one saying no readable state", err)
	}
}

func TestAnUnknownFormatVersionIsAClearErrorWithoutFallback(t *testing.T) {
	d, _ := OpenDir(t.TempDir())
	d.Save(testState(t, 1))
	gen, _ := d.Save(testState(t, 2))
	p := filepath.Join(d.Path(), genName(gen))
	b, _ := os.ReadFile(p)
	b[8] = 7 // version 7
	os.WriteFile(p, b, 0o600)
	_, _, err := d.Load()
	if !errors.Is(err, ErrUnknownVersion) || !strings.Contains(err.Error(), "version 7") {
		t.Fatalf("Load error %v, want ErrUnknownVersion naming version 7", err)
	}
}

func TestAManifestPointingOutsideThePayloadIsRejected(t *testing.T) {
	good, err := encodeState(testState(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, to, want string }{
		{`"count":2`, `"count":9`, "bytes, want"},
		{`"offset":0`, `"offset":99999`, "outside"},
		{`"dim":3`, `"dim":-3`, "out of range"},
		{`"labels":["cat","dog"]`, `"labels":["","dog"]`, "empty"},
		{`"labels":["cat","dog"]`, `"labels":["dog","dog"]`, "twice"},
	} {
		// Rewrite the manifest with its length and the checksum refreshed,
		// so that the manifest checks are what refuses the file.
		mlen := int(binary.LittleEndian.Uint32(good[12:]))
		man := strings.Replace(string(good[headerSize:headerSize+mlen]), tc.from, tc.to, 1)
		if man == string(good[headerSize:headerSize+mlen]) {
			t.Fatalf("test case %q does not change the manifest", tc.from)
		}
		b := append([]byte(nil), good[:headerSize]...)
		binary.LittleEndian.PutUint32(b[12:], uint32(len(man)))
		b = append(b, man...)
		b = append(b, good[headerSize+mlen:]...)
		putCRC(b)
		if _, err := decodeState(b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("manifest with %s: error %v, want one containing %q", tc.to, err, tc.want)
		}
	}
}

func putCRC(b []byte) {
	c := crc32Checksum(b[:len(b)-4])
	b[len(b)-4], b[len(b)-3], b[len(b)-2], b[len(b)-1] = byte(c), byte(c>>8), byte(c>>16), byte(c>>24)
}
