package nodeproto

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

func TestLinesDecodeProtocolLinesAndKeepTheRest(t *testing.T) {
	in := "warming up\n@@x {\"n\": 1}\n@@x not json\n@@y {\"n\": 5}\n@@x {\"n\": 2}\n"
	l := NewLines(strings.NewReader(in), "@@x ")
	var got []int
	for {
		var v struct{ N int }
		ok, err := l.Next(&v)
		if !ok {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("end of output: err = %v; want io.ErrUnexpectedEOF", err)
			}
			break
		}
		got = append(got, v.N)
	}
	if len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("decoded %v; want [1 2]", got)
	}
	other := l.Other.String()
	for _, s := range []string{"warming up", "@@x not json", "@@y {\"n\": 5}"} {
		if !strings.Contains(other, s) {
			t.Errorf("Other %q lacks %q", other, s)
		}
	}
}

func TestTailKeepsTheLastBytes(t *testing.T) {
	var tl Tail
	for i := range 3 * TailMax {
		tl.Write([]byte{byte('a' + i%26)})
	}
	s := tl.String()
	if !strings.HasPrefix(s, "...") || len(s) != 3+TailMax {
		t.Fatalf("tail of %d bytes: len %d, prefix %q; want ... and %d bytes", 3*TailMax, len(s), s[:3], TailMax)
	}
	if last := s[len(s)-1]; last != byte('a'+(3*TailMax-1)%26) {
		t.Errorf("last byte %q is not the last one written", last)
	}
}

func TestLogs(t *testing.T) {
	var a, b Tail
	if s := Logs(&a, &b); s != "" {
		t.Errorf("Logs of empty tails = %q; want \"\"", s)
	}
	b.Write([]byte("  boom \n"))
	if s := Logs(&a, &b); s != "\nnode output (last lines):\nboom" {
		t.Errorf("Logs = %q", s)
	}
}

func TestAbs(t *testing.T) {
	if Abs("") != "" {
		t.Error(`Abs("") is not ""`)
	}
	if p := Abs("x/y.npy"); !filepath.IsAbs(p) || !strings.HasSuffix(p, filepath.Join("x", "y.npy")) {
		t.Errorf("Abs(x/y.npy) = %q", p)
	}
}
