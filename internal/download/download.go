// Package download fetches one file over HTTP(S) into a local file, for the agent's model
// updates (agent/update.go) and for `shortcut-train pretrained --weights URL`. The bytes come
// from a web server (a fleet's own, download.pytorch.org, Hugging Face) and go into a file the
// caller then checks nothing more of: Fetch resumes with Range requests after a cut connection
// or a stall, refuses more bytes than were announced, and checks the size and the SHA-256 before
// it returns, so a file it returns without error is the one asked for. Cached keeps such files
// in a cache directory and never leaves a partial one under the final name.
package download

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Defaults for the zero values of Options.
const (
	DefaultStall    = 30 * time.Second
	DefaultAttempts = 5
)

// Options says what to fetch and how hard to try.
type Options struct {
	URL string
	// Size is the exact number of bytes expected; 0: unknown, and the server's Content-Length
	// (or, without one, the end of the body) decides.
	Size int64
	// MaxBytes caps a download of unknown Size; 0: no cap.
	MaxBytes int64
	// SHA256 is the expected digest in hex; "": not checked (Result.SHA256 says what came).
	SHA256 string
	// Stall ends an attempt when nothing arrives for this long; 0: DefaultStall.
	Stall time.Duration
	// Attempts is how many requests are made before giving up; 0: DefaultAttempts.
	Attempts  int
	UserAgent string
	// Client makes the requests; nil: a client without an overall timeout (Stall and the
	// context bound the time).
	Client *http.Client
	// Progress, when set, is called with the bytes the file holds and the total (0 while
	// unknown) as they arrive.
	Progress func(have, total int64)
}

// Result describes a complete, checked file.
type Result struct {
	Path      string // Cached: the file in the cache
	Size      int64
	SHA256    string // hex, computed from the file
	FromCache bool   // Cached: the file was there already and no request was made
	Resumed   int64  // Cached: bytes kept from an earlier, interrupted run
}

// Kinds of failure, for errors.Is; the errors themselves say what happened in one line.
var (
	ErrStalled  = errors.New("download stalled")          // nothing arrived for Options.Stall
	ErrGaveUp   = errors.New("download attempts used up") // Options.Attempts failed
	ErrHTTP     = errors.New("HTTP error status")         // 4xx, or 5xx on the last attempt
	ErrSize     = errors.New("wrong download size")       // more or other bytes than announced
	ErrChecksum = errors.New("sha256 mismatch")
)

// failure is an error with a kind for errors.Is, the error it came from, and whether another
// attempt could fix it.
type failure struct {
	kind      error
	msg       string
	cause     error
	permanent bool
}

func (f *failure) Error() string { return f.msg }
func (f *failure) Unwrap() []error {
	if f.cause != nil {
		return []error{f.kind, f.cause}
	}
	return []error{f.kind}
}

func permanent(kind error, format string, args ...any) *failure {
	return &failure{kind: kind, msg: fmt.Sprintf(format, args...), permanent: true}
}

func (o *Options) defaults() {
	if o.Stall <= 0 {
		o.Stall = DefaultStall
	}
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
}

// Fetch makes dst hold exactly the file at o.URL, or fails. Bytes dst already holds are kept
// and resumed from (an earlier, interrupted run's); a server that ignores the Range request
// sends the whole file again. When the bytes are complete it checks their size and, with
// o.SHA256, their digest (ErrChecksum), then syncs dst to disk. It neither closes nor renames
// dst: a caller that wants a file that is only ever complete under its final name writes into
// a temporary one and renames it after Fetch returns (Cached does).
func Fetch(ctx context.Context, o Options, dst *os.File) (Result, error) {
	o.defaults()
	if o.SHA256 != "" {
		if b, err := hex.DecodeString(o.SHA256); err != nil || len(b) != sha256.Size {
			return Result{}, fmt.Errorf("sha256 %q: want 64 hex digits", o.SHA256)
		}
	}
	st, err := dst.Stat()
	if err != nil {
		return Result{}, err
	}
	t := transfer{Options: o, dst: dst, have: st.Size(), total: o.Size}
	if t.total > 0 && t.have > t.total {
		t.have = 0 // not a prefix of this file
	}
	if err := t.run(ctx); err != nil {
		return Result{}, err
	}
	sum, err := fileSHA256(dst)
	if err != nil {
		return Result{}, err
	}
	if o.SHA256 != "" && !strings.EqualFold(sum, o.SHA256) {
		return Result{}, permanent(ErrChecksum, "the %d bytes downloaded have sha256 %s, expected %s (check the sha256, or the file the URL serves)",
			t.have, sum, strings.ToLower(o.SHA256))
	}
	if err := dst.Sync(); err != nil {
		return Result{}, err
	}
	return Result{Size: t.have, SHA256: sum}, nil
}

// transfer is one file's download: what dst holds and what the whole will be.
type transfer struct {
	Options
	dst   *os.File
	have  int64
	total int64 // 0 while unknown
}

func (t *transfer) of() string {
	if t.total > 0 {
		return fmt.Sprintf("%d of %d bytes", t.have, t.total)
	}
	return fmt.Sprintf("%d bytes", t.have)
}

func (t *transfer) run(ctx context.Context) error {
	var last error
	for attempt := 1; attempt <= t.Attempts; attempt++ {
		if attempt > 1 {
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(attempt-1) * 200 * time.Millisecond):
			}
		}
		if ctx.Err() != nil {
			break
		}
		err := t.once(ctx)
		if err == nil {
			return nil
		}
		var f *failure
		if errors.As(err, &f) && f.permanent {
			return err
		}
		last = err
	}
	if err := ctx.Err(); err != nil {
		return &failure{kind: err, msg: fmt.Sprintf("the download was stopped (%v) at %s; last error: %v", context.Cause(ctx), t.of(), last), cause: last}
	}
	return &failure{kind: ErrGaveUp, msg: fmt.Sprintf("gave up after %d attempts at %s; last error: %v", t.Attempts, t.of(), last), cause: last}
}

var errStalled = errors.New("stalled")

// once is one request, from byte t.have on.
func (t *transfer) once(ctx context.Context) error {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(t.Stall, func() { cancel(errStalled) })
	defer stall.Stop()
	why := func(err error) error {
		if errors.Is(context.Cause(actx), errStalled) {
			return &failure{kind: ErrStalled, msg: fmt.Sprintf("nothing received for %v at %s", t.Stall, t.of())}
		}
		return err
	}
	req, err := http.NewRequestWithContext(actx, http.MethodGet, t.URL, nil)
	if err != nil {
		return permanent(ErrHTTP, "%v", err)
	}
	if t.UserAgent != "" {
		req.Header.Set("User-Agent", t.UserAgent)
	}
	if t.have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(t.have, 10)+"-")
	}
	resp, err := t.Client.Do(req)
	if err != nil {
		return why(err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && t.have > 0:
		start, total, ok := contentRange(resp.Header.Get("Content-Range"))
		if !ok || start != t.have {
			err := fmt.Errorf("asked for bytes from %d, the server sent Content-Range %q; starting again", t.have, resp.Header.Get("Content-Range"))
			t.have = 0
			return err
		}
		if err := t.announce(total, "Content-Range"); err != nil {
			return err
		}
	case resp.StatusCode == http.StatusOK:
		t.have = 0 // no resume: the whole file again
		if err := t.announce(resp.ContentLength, "Content-Length"); err != nil {
			return err
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && t.have > 0:
		// What dst holds may be the whole file already (a run stopped before its rename).
		if _, total, ok := contentRange(resp.Header.Get("Content-Range")); ok && total == t.have && (t.total == 0 || t.total == total) {
			t.total = total
			return nil
		}
		err := fmt.Errorf("HTTP %s for bytes from %d; starting again", resp.Status, t.have)
		t.have = 0
		return err
	case resp.StatusCode >= 500:
		return &failure{kind: ErrHTTP, msg: "HTTP " + resp.Status}
	default:
		return permanent(ErrHTTP, "HTTP %s; check the URL, and that the server serves the file", resp.Status)
	}
	if err := t.dst.Truncate(t.have); err != nil {
		return &failure{kind: err, msg: err.Error(), permanent: true}
	}
	if t.Progress != nil {
		t.Progress(t.have, t.total)
	}
	buf := make([]byte, 64<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			stall.Reset(t.Stall)
			switch {
			case t.total > 0 && t.have+int64(n) > t.total:
				return permanent(ErrSize, "the server sent more than the %d bytes announced; check the size, or the URL", t.total)
			case t.total == 0 && t.MaxBytes > 0 && t.have+int64(n) > t.MaxBytes:
				return permanent(ErrSize, "the server sent more than the %d bytes allowed", t.MaxBytes)
			}
			if _, err := t.dst.WriteAt(buf[:n], t.have); err != nil {
				return &failure{kind: err, msg: err.Error() + " (free space on the disk)", permanent: true}
			}
			t.have += int64(n)
			if t.Progress != nil {
				t.Progress(t.have, t.total)
			}
		}
		switch {
		case rerr == io.EOF && (t.total == 0 || t.have == t.total):
			t.total = t.have
			return nil
		case rerr == io.EOF:
			return fmt.Errorf("the connection ended at %s", t.of())
		case rerr != nil:
			return why(rerr)
		}
	}
}

// announce takes the total the server gives (from header; <= 0: none), checking it against
// what was asked for and announced before.
func (t *transfer) announce(n int64, header string) error {
	switch {
	case n <= 0:
		return nil
	case t.Size > 0 && n != t.Size:
		return permanent(ErrSize, "the server announces %d bytes (%s), the size asked for is %d; check the size, or the URL", n, header, t.Size)
	case t.total > 0 && n != t.total:
		return permanent(ErrSize, "the server announces %d bytes (%s), %d before: the file changed on the server; start again", n, header, t.total)
	case t.MaxBytes > 0 && n > t.MaxBytes:
		return permanent(ErrSize, "the server announces %d bytes (%s), more than the %d allowed", n, header, t.MaxBytes)
	}
	t.total = n
	return nil
}

// contentRange parses "bytes START-END/TOTAL" and "bytes */TOTAL"; total is 0 for "*".
func contentRange(h string) (start, total int64, ok bool) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, 0, false
	}
	span, size, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, false
	}
	if size != "*" {
		var err error
		if total, err = strconv.ParseInt(size, 10, 64); err != nil || total < 0 {
			return 0, 0, false
		}
	}
	if span == "*" {
		return 0, total, true
	}
	first, _, ok := strings.Cut(span, "-")
	if !ok {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(first, 10, 64)
	return start, total, err == nil && start >= 0
}

func fileSHA256(f *os.File) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
