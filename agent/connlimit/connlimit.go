// Package connlimit caps the connections an HTTP server keeps open,
// closing the longest-idle keep-alive connection to make room.
package connlimit

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Listener is an HTTP server's listener. It keeps at most max
// connections open: without a cap, every idle keep-alive connection kept
// a goroutine and a file descriptor until the open-file limit (issue 21).
// A connection beyond the cap waits in Accept until one closes; while it
// waits, the connection that has been idle the longest (a keep-alive
// connection between requests) is closed to make room, so idle clients
// cannot keep new ones out. A request in progress is never cut: a client
// that sends one just as its idle connection is closed sees the closed
// connection that keep-alive always risks, and HTTP clients retry such
// requests.
type Listener struct {
	net.Listener
	open  prometheus.Gauge // connections open now
	slots chan struct{}    // one token per open connection
	freed chan struct{}    // signalled when a connection closes or turns idle
	done  chan struct{}    // closed by Close
	once  sync.Once

	mu   sync.Mutex
	idle map[*limitedConn]time.Time // connections between requests, and since when
}

// New caps ln at max open connections, counted in open; give the server
// ConnState as its http.Server.ConnState.
func New(ln net.Listener, max int, open prometheus.Gauge) *Listener {
	return &Listener{Listener: ln, open: open, slots: make(chan struct{}, max), freed: make(chan struct{}, 1),
		done: make(chan struct{}), idle: map[*limitedConn]time.Time{}}
}

func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	for {
		select {
		case l.slots <- struct{}{}:
			l.open.Inc()
			return &limitedConn{Conn: c, l: l}, nil
		default:
		}
		if l.closeLongestIdle() {
			continue
		}
		select {
		case <-l.freed:
		case <-l.done:
			c.Close()
			return nil, net.ErrClosed
		}
	}
}

func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// ConnState follows the server's connections (http.Server.ConnState): the
// idle ones are those closeLongestIdle may close.
func (l *Listener) ConnState(c net.Conn, s http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	if s == http.StateIdle {
		l.idle[lc] = time.Now()
	} else {
		delete(l.idle, lc)
	}
	l.mu.Unlock()
	if s == http.StateIdle {
		wake(l.freed)
	}
}

// closeLongestIdle closes the connection idle the longest, freeing its
// slot; false when no connection is idle.
func (l *Listener) closeLongestIdle() bool {
	l.mu.Lock()
	var oldest *limitedConn
	var since time.Time
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	delete(l.idle, oldest)
	l.mu.Unlock()
	if oldest == nil {
		return false
	}
	oldest.Close()
	return true
}

// limitedConn gives its slot back when it is closed, by the server, by
// its handler (hijacked) or by closeLongestIdle, whichever comes first.
type limitedConn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.idle, c)
		c.l.mu.Unlock()
		<-c.l.slots
		c.l.open.Dec()
		wake(c.l.freed)
	})
	return err
}

// wake signals a waiting Accept without blocking; a wake-up already
// pending stands for this one too.
func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
