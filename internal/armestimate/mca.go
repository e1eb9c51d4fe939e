package armestimate

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// disassemble reads the binary's instructions at the given addresses as
// LLVM prints them (llvm-objdump), which llvm-mca reads back. Branch and
// address operands ("0x11bc78 <sym+0x108>") become one local label: the
// pipeline model does not care where a branch goes, the predictor is
// assumed right.
func disassemble(ctx context.Context, t *tools, binary string, want map[uint64]bool) (map[uint64]string, error) {
	out, err := exec.CommandContext(ctx, t.objdump, "-d", "--no-show-raw-insn", "--no-leading-headers", binary).Output()
	if err != nil {
		return nil, fmt.Errorf("%s -d %s: %w", t.objdump, binary, err)
	}
	target := regexp.MustCompile(`0x[0-9a-f]+ <[^>]*>`)
	text := map[uint64]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		colon := strings.IndexByte(line, ':')
		if colon < 0 || colon > 20 {
			continue
		}
		a, err := strconv.ParseUint(strings.TrimSpace(line[:colon]), 16, 64)
		if err != nil || !want[a] {
			continue
		}
		ins := strings.TrimSpace(line[colon+1:])
		if ins == "" || strings.HasPrefix(ins, ".") || strings.Contains(ins, "<unknown>") || strings.HasPrefix(ins, "udf") {
			continue // data or padding: not executed as code
		}
		if i := strings.Index(ins, "//"); i >= 0 {
			ins = strings.TrimSpace(ins[:i])
		}
		text[a] = target.ReplaceAllString(ins, ".Lt")
	}
	return text, sc.Err()
}

// blockCycles runs llvm-mca once for cpu over every block, each a code
// region repeated iterations times, and returns the cycles one execution
// of each block takes in steady state.
func blockCycles(ctx context.Context, t *tools, dir, cpu string, blocks map[uint64][]string) (map[uint64]float64, error) {
	const iterations = 100
	starts := make([]uint64, 0, len(blocks))
	for a, ins := range blocks {
		if len(ins) > 0 {
			starts = append(starts, a)
		}
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
	// Lines llvm-mca refuses are dropped one by one (and reported), so
	// that one odd instruction does not lose the estimate.
	drop := map[string]bool{}
	path := filepath.Join(dir, "blocks-"+cpu+".s")
	for try := 0; ; try++ {
		var src strings.Builder
		src.WriteString(".Lt:\n")
		var lines []string // source line (1-based) -> instruction
		lines = append(lines, "")
		for _, a := range starts {
			fmt.Fprintf(&src, "# LLVM-MCA-BEGIN b%x\n", a)
			lines = append(lines, "")
			n := 0
			for _, ins := range blocks[a] {
				if drop[ins] {
					continue
				}
				src.WriteString(ins + "\n")
				lines = append(lines, ins)
				n++
			}
			if n == 0 {
				src.WriteString("nop\n")
				lines = append(lines, "nop")
			}
			src.WriteString("# LLVM-MCA-END\n")
			lines = append(lines, "")
		}
		if err := os.WriteFile(path, []byte(src.String()), 0o644); err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, t.mca, "-mtriple=aarch64", "-mcpu="+cpu, "-mattr=+dotprod",
			fmt.Sprintf("-iterations=%d", iterations), "-instruction-info=false", "-resource-pressure=false", path)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			bad := regexp.MustCompile(regexp.QuoteMeta(path) + `:(\d+):\d+: error`).FindStringSubmatch(stderr.String())
			if bad == nil || try > 50 {
				return nil, fmt.Errorf("%s -mcpu=%s: %w\n%s", t.mca, cpu, err, firstLines(stderr.String(), 10))
			}
			n, _ := strconv.Atoi(bad[1])
			if n <= 0 || n >= len(lines) || lines[n] == "" {
				return nil, fmt.Errorf("%s -mcpu=%s: %w\n%s", t.mca, cpu, err, firstLines(stderr.String(), 10))
			}
			fmt.Fprintf(os.Stderr, "armestimate: llvm-mca refuses %q; left out of the simulation\n", lines[n])
			drop[lines[n]] = true
			continue
		}
		return parseMCA(out, iterations)
	}
}

func parseMCA(out []byte, iterations int) (map[uint64]float64, error) {
	res := map[uint64]float64{}
	var cur uint64
	have := false
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, "Code Region - b"); i >= 0 {
			a, err := strconv.ParseUint(strings.TrimSpace(line[i+len("Code Region - b"):]), 16, 64)
			if err != nil {
				return nil, fmt.Errorf("llvm-mca output: %q", line)
			}
			cur, have = a, true
			continue
		}
		if have && strings.HasPrefix(line, "Total Cycles:") {
			c, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "Total Cycles:")), 64)
			if err != nil {
				return nil, fmt.Errorf("llvm-mca output: %q", line)
			}
			res[cur] = c / float64(iterations)
			have = false
		}
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("llvm-mca printed no code regions")
	}
	return res, nil
}

func firstLines(s string, n int) string {
	l := strings.SplitN(s, "\n", n+1)
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, "\n")
}
