// Package nodeproto is the Go side of the line protocol our Node runners
// (tools/tflite-node, tools/ort-node) speak: one JSON object per stdout line
// behind a fixed prefix, every other line kept for error messages.
package nodeproto

import (
	"bufio"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"sync"
)

// Lines reads the protocol lines of a runner's stdout.
type Lines struct {
	sc     *bufio.Scanner
	prefix string
	// Other keeps the last lines that were not protocol lines (or did not
	// decode): what node printed besides.
	Other *Tail
}

// NewLines reads r; prefix starts every protocol line ("@@ort ").
func NewLines(r io.Reader, prefix string) *Lines {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	return &Lines{sc: sc, prefix: prefix, Other: &Tail{}}
}

// Next decodes the next protocol line into v. At the end of the output it
// returns false, with the scanner's error or io.ErrUnexpectedEOF.
func (l *Lines) Next(v any) (bool, error) {
	for l.sc.Scan() {
		line := l.sc.Text()
		rest, ok := strings.CutPrefix(line, l.prefix)
		if !ok || json.Unmarshal([]byte(rest), v) != nil {
			l.Other.Write([]byte(line + "\n"))
			continue
		}
		return true, nil
	}
	err := l.sc.Err()
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return false, err
}

// Tail keeps the last few KiB written to it; it may be written (node's
// stderr, copied by exec's goroutine) while it is read.
type Tail struct {
	mu sync.Mutex
	b  []byte
}

// TailMax is how many bytes a Tail shows.
const TailMax = 4096

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 2*TailMax {
		t.b = append(t.b[:0], t.b[len(t.b)-TailMax:]...)
	}
	return len(p), nil
}

func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.b) > TailMax {
		return "..." + string(t.b[len(t.b)-TailMax:])
	}
	return string(t.b)
}

// Logs is what the tails hold, as a suffix for an error message ("" when
// they are empty).
func Logs(tails ...*Tail) string {
	var parts []string
	for _, t := range tails {
		if s := strings.TrimSpace(t.String()); s != "" {
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "\nnode output (last lines):\n" + strings.Join(parts, "\n")
}

// Abs is p made absolute (the runner's working directory is not ours);
// "" and paths that cannot be made absolute stay as they are.
func Abs(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
