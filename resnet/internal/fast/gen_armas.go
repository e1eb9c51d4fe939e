//go:build ignore

// The GNU as check shared by the arm64 generators: go run gen_tile.go
// gen_tilearm.go gen_armas.go, and go run gen_ftile.go gen_armas.go.

package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// armInst is one hand-encoded arm64 instruction: its GNU spelling and our
// encoding of it.
type armInst struct {
	gnu  string
	word uint32
}

// checkWithGNUAs assembles each distinct spelling of insts with
// aarch64-linux-gnu-as (-march=march when not empty) and fails, after
// listing them, when any of our encodings differs from GNU as's.
func checkWithGNUAs(prog, march string, insts []armInst) {
	dir, err := os.MkdirTemp("", prog)
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	seen := map[string]bool{}
	var src strings.Builder
	var list []armInst
	for _, in := range insts {
		if !seen[in.gnu] {
			seen[in.gnu] = true
			list = append(list, in)
			fmt.Fprintf(&src, "\t%s\n", in.gnu)
		}
	}
	s, o, bin := dir+"/a.s", dir+"/a.o", dir+"/a.bin"
	if err := os.WriteFile(s, []byte(src.String()), 0o644); err != nil {
		fail(err)
	}
	as := []string{"aarch64-linux-gnu-as", "-o", o, s}
	if march != "" {
		as = []string{"aarch64-linux-gnu-as", "-march=" + march, "-o", o, s}
	}
	for _, cmd := range [][]string{as, {"aarch64-linux-gnu-objcopy", "-O", "binary", "-j", ".text", o, bin}} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			fail(fmt.Errorf("%v: %v\n%s", cmd, err, out))
		}
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		fail(err)
	}
	if len(raw) != 4*len(list) {
		fail(fmt.Errorf("GNU as wrote %d bytes for %d instructions", len(raw), len(list)))
	}
	bad := 0
	for i, in := range list {
		if w := binary.LittleEndian.Uint32(raw[4*i:]); w != in.word {
			bad++
			fmt.Fprintf(os.Stderr, "%-50s ours 0x%08X, GNU as 0x%08X\n", in.gnu, in.word, w)
		}
	}
	if bad > 0 {
		fail(fmt.Errorf("%d of %d encodings differ", bad, len(list)))
	}
	fmt.Fprintf(os.Stderr, "%s: %d distinct arm64 encodings match GNU as\n", prog, len(list))
}
