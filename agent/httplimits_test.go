package agent_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// TestHTTPConnectionsAreCappedAndIdleOnesClosed drives the built agent's
// HTTP port from outside, as issue 21 found it: keep-alive connections
// that made a request and then sit idle. Before, only ReadHeaderTimeout
// was set, so each stayed open with its goroutine for good (300 of them:
// 33 -> 333 goroutines) and the open-file limit was the only bound. Now at
// most http.max_connections are open at once, the others wait their turn,
// each is closed after http.idle_timeout, and a stream, whose response
// never ends, outlives the read and write timeouts.
func TestHTTPConnectionsAreCappedAndIdleOnesClosed(t *testing.T) {
	dir := t.TempDir()
	bin := buildAgent(t, dir)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	const maxConns, flood = 8, 100
	p := startAgentProc(t, bin, dir, addr, loopingImagesConfig(t, dir, fmt.Sprintf(
		"http: {address: %q, read_timeout: 1s, write_timeout: 1s, idle_timeout: 2s, max_connections: %d}\nembedded_broker: {address: \"127.0.0.1:%d\"}\n",
		addr, maxConns, freePort(t))))
	waitUntil(t, "the agent connected to its embedded broker", func() bool { return p.health(t).MQTT.Connected })
	baseline := p.metric(t, "go_goroutines")

	t.Run("idle keep-alive connections beyond the cap wait their turn, and all are closed", func(t *testing.T) {
		conns := make([]net.Conn, flood)
		for i := range conns {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			t.Cleanup(func() { c.Close() })
			// One request each, keep-alive (HTTP/1.1's default): once
			// answered, the connection is idle.
			if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: agent\r\n\r\n"); err != nil {
				t.Fatalf("connection %d: sending a request: %v", i, err)
			}
			conns[i] = c
		}
		// This request queues behind all of them: when it is answered,
		// every one of them has been accepted.
		if open := p.metric(t, "shortcut_http_connections"); open > maxConns {
			t.Errorf("shortcut_http_connections = %v with %d clients connected; want at most http.max_connections (%d)", open, flood, maxConns)
		}
		if g := p.metric(t, "go_goroutines"); g-baseline > 2*maxConns+10 {
			t.Errorf("go_goroutines went from %v to %v with %d keep-alive clients; at most %d connections may be open, so want fewer than %v",
				baseline, g, flood, maxConns, baseline+2*maxConns+10)
		}
		errs := make(chan error, flood)
		for i, c := range conns {
			go func() { errs <- answeredThenClosed(c, fmt.Sprintf("connection %d of %d", i+1, flood)) }()
		}
		var failed []error
		for range conns {
			if err := <-errs; err != nil {
				failed = append(failed, err)
			}
		}
		if len(failed) > 0 {
			t.Errorf("%d of %d connections were not answered and then closed, such as:\n%v", len(failed), flood, errors.Join(failed[:min(3, len(failed))]...))
		}
	})

	t.Run("a lone keep-alive connection is closed after http.idle_timeout", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: agent\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if err := answeredThenClosed(c, "the connection"); err != nil {
			t.Error(err)
		}
	})

	t.Run("a stream outlives the read and write timeouts and streams take half the cap at most", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		open := func() *http.Response {
			req, _ := http.NewRequestWithContext(ctx, "GET", p.base+"/stream.mjpeg?camera=door", nil)
			resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
			if err != nil {
				t.Fatalf("GET /stream.mjpeg: %v", err)
			}
			t.Cleanup(func() { resp.Body.Close() })
			return resp
		}
		resp := open()
		mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if resp.StatusCode != 200 || err != nil || mt != "multipart/x-mixed-replace" || params["boundary"] == "" {
			t.Fatalf("GET /stream.mjpeg: HTTP %d, Content-Type %q; want 200 and multipart/x-mixed-replace with a boundary", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		parts := multipart.NewReader(resp.Body, params["boundary"])
		start, frames := time.Now(), 0
		for time.Since(start) < 3*time.Second { // three times the timeouts
			part, err := parts.NextPart()
			if err != nil {
				t.Fatalf("the stream ended after %v and %d frames: %v; it must go on past http.read_timeout and http.write_timeout (1s)",
					time.Since(start).Round(time.Millisecond), frames, err)
			}
			if _, err := jpeg.Decode(part); err != nil {
				t.Fatalf("frame %d of the stream is not a JPEG: %v", frames+1, err)
			}
			frames++
		}

		for i := 2; i <= maxConns/2; i++ {
			if r := open(); r.StatusCode != 200 {
				t.Fatalf("stream %d of %d allowed: HTTP %d", i, maxConns/2, r.StatusCode)
			}
		}
		if r := open(); r.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("stream %d with http.max_connections %d: HTTP %d; want 503 (streams may hold half the connections)", maxConns/2+1, maxConns, r.StatusCode)
		}
		if h := p.health(t); h.Model.Name == "" {
			t.Errorf("/healthz with every stream slot taken = %+v; want an answer", h)
		}
	})
}

// answeredThenClosed reads the response to the one request sent on c, then
// waits for the server to close c (at most waitLimit: a deadlock guard).
func answeredThenClosed(c net.Conn, what string) error {
	c.SetReadDeadline(time.Now().Add(waitLimit))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("%s: no answer to its request: %v", what, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_, err = br.ReadByte()
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return nil
	case err == nil:
		return fmt.Errorf("%s: the server sent more than one response to one request", what)
	}
	return fmt.Errorf("%s: still open %v after its answer (%v); idle connections must be closed after http.idle_timeout", what, waitLimit, err)
}
