package publish

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestBrokerLogDropsClosedConnectionNoiseOnly(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(quietClosedConns{slog.NewTextHandler(&buf, nil)}).With("component", "embedded-broker")
	log.Warn("", "error", errors.New("read tcp 127.0.0.1:1883->127.0.0.1:4000: use of closed network connection"))
	log.Warn("", "error", errors.New("connection reset by peer"))
	out := buf.String()
	if strings.Contains(out, "use of closed") {
		t.Errorf("the shutdown noise was logged: %s", out)
	}
	if !strings.Contains(out, "connection reset by peer") || !strings.Contains(out, "component=embedded-broker") {
		t.Errorf("a real warning was lost: %q", out)
	}
}
