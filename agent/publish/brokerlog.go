package publish

import (
	"context"
	"log/slog"
	"strings"
)

// quietClosedConns drops the embedded broker's warnings about connections
// read after they were closed: mochi logs one per client when it shuts
// down, which is the normal end of every run, not a problem to report.
type quietClosedConns struct{ slog.Handler }

func (h quietClosedConns) Handle(ctx context.Context, r slog.Record) error {
	closed := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" && strings.Contains(a.Value.String(), "use of closed network connection") {
			closed = true
			return false
		}
		return true
	})
	if closed {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietClosedConns) WithAttrs(as []slog.Attr) slog.Handler {
	return quietClosedConns{h.Handler.WithAttrs(as)}
}

func (h quietClosedConns) WithGroup(name string) slog.Handler {
	return quietClosedConns{h.Handler.WithGroup(name)}
}
