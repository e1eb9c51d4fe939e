package camera

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"
)

// ErrClosed is returned by a Camera's methods after Close.
var ErrClosed = errors.New("camera: closed")

// ErrNoFrame is returned by Snapshot before the first frame arrives.
var ErrNoFrame = errors.New("camera: no frame captured yet")

// State is the health of a camera, for the agent to report.
type State int

const (
	StateStarting     State = iota // opened, no frame yet
	StateOK                        // frames arrive
	StateDegraded                  // open, but recent frames failed to decode or read
	StateReconnecting              // the source failed or stalled; reopening with backoff
	StateEnded                     // a file or folder without loop reached its end
	StateClosed                    // Close was called or the Open context ended
)

func (s State) String() string {
	switch s {
	case StateStarting:
		return "starting"
	case StateOK:
		return "ok"
	case StateDegraded:
		return "degraded"
	case StateReconnecting:
		return "reconnecting"
	case StateEnded:
		return "ended"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Stats are a camera's counters since Open.
type Stats struct {
	Source     string
	State      State
	Frames     uint64 // frames captured and decoded
	Delivered  uint64 // frames handed out by Next
	Dropped    uint64 // frames replaced by a newer one before Next took them
	Skipped    uint64 // live frames consumed without decoding to hold the target FPS
	Reconnects uint64 // reopen attempts after a failure or stall
	Errors     uint64 // failed opens, failed or stalled reads, undecodable frames

	LastError     string
	LastErrorTime time.Time
	LastFrameTime time.Time
}

// Backoff paces reopen attempts: Initial, then times Multiplier per failed
// attempt up to Max, each delay scaled by a random factor in
// [1-Jitter, 1+Jitter] so that many cameras do not retry in step. It starts
// again from Initial once a reopened source delivers a frame. Zero fields
// take DefaultBackoff's values, except Jitter: 0 there means none. A Config
// with a zero Backoff gets DefaultBackoff, jitter included.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
	Jitter     float64 // 0 to 1
}

// DefaultBackoff is used when Config.Backoff is left zero.
var DefaultBackoff = Backoff{Initial: 250 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.2}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = 250 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 30 * time.Second
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Multiplier < 1 {
		b.Multiplier = 2
	}
	b.Jitter = max(0, min(1, b.Jitter))
	return b
}

// Delay is the wait before reopen attempt number attempt (0 for the first).
func (b Backoff) Delay(attempt int, random float64) time.Duration {
	b = b.withDefaults()
	d := float64(b.Initial) * math.Pow(b.Multiplier, float64(attempt))
	if d > float64(b.Max) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(b.Max)
	}
	d *= 1 - b.Jitter + 2*b.Jitter*random
	return time.Duration(min(d, float64(b.Max)))
}

// Config describes a camera.
type Config struct {
	// Source says where frames come from; see the package documentation.
	Source string
	// FPS is the target frame rate. 0 takes frames as fast as the source
	// gives them (a file or folder is then read as fast as it decodes).
	// A live source above the target has its extra frames skipped without
	// decoding; a file or folder is read at this rate.
	FPS float64
	// ReadTimeout is how long a read may take before the source counts as
	// stalled and is reopened. Default 5s.
	ReadTimeout time.Duration
	// OpenTimeout bounds opening a source the same way. Default 20s.
	OpenTimeout time.Duration
	// MaxBadFrames is how many undecodable frames in a row make the camera
	// reopen the source. Default 5.
	MaxBadFrames int
	Backoff      Backoff
	// Logger receives reconnect warnings; nil uses slog.Default().
	Logger *slog.Logger

	clock clock                                                     // tests replace it
	open  func(context.Context, Spec, *http.Client) (reader, error) // tests replace it
}

// Camera captures frames from one source on its own goroutine and keeps only
// the newest: a slow consumer gets a recent frame, never a queue of stale
// ones. It reopens a failed or stalled source with backoff.
type Camera struct {
	cfg    Config
	spec   Spec
	log    *slog.Logger
	clock  clock
	client *http.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{} // closed when the supervisor returns
	wake   chan struct{} // a new frame or a stop; capacity 1

	mu      sync.Mutex
	slot    gocv.Mat // newest frame
	slotSeq uint64
	slotAt  time.Time
	fresh   bool // slot not yet taken by Next
	seq     uint64
	stats   Stats
	current *session
	stopErr error // set when the supervisor returns: io.EOF, ErrClosed or the context's error
	closing bool
	closed  bool

	snapMu    sync.Mutex
	snap      gocv.Mat
	closeOnce sync.Once
}

// Open starts capturing from cfg.Source. The capture goroutine lives until
// ctx ends or Close is called; Close waits for it and must always be called.
//
// A malformed source string, a missing or undecodable file and an empty image
// folder are errors here. A camera or stream that cannot be reached is not:
// the camera keeps retrying in StateReconnecting, with the reason in Stats.
func Open(ctx context.Context, cfg Config) (*Camera, error) {
	spec, err := ParseSource(cfg.Source)
	if err != nil {
		return nil, err
	}
	if cfg.FPS < 0 || math.IsNaN(cfg.FPS) || math.IsInf(cfg.FPS, 0) {
		return nil, fmt.Errorf("camera %q: FPS %v: want 0 (source rate) or a positive number", cfg.Source, cfg.FPS)
	}
	if cfg.ReadTimeout < 0 || cfg.OpenTimeout < 0 || cfg.MaxBadFrames < 0 {
		return nil, fmt.Errorf("camera %q: negative ReadTimeout, OpenTimeout or MaxBadFrames", cfg.Source)
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 5 * time.Second
	}
	if cfg.OpenTimeout == 0 {
		cfg.OpenTimeout = 20 * time.Second
	}
	if cfg.MaxBadFrames == 0 {
		cfg.MaxBadFrames = 5
	}
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = DefaultBackoff
	}
	cfg.Backoff = cfg.Backoff.withDefaults()
	if cfg.clock == nil {
		cfg.clock = realClock{}
	}
	if cfg.open == nil {
		cfg.open = openReader
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Camera{
		cfg:   cfg,
		spec:  spec,
		log:   log.With("source", cfg.Source),
		clock: cfg.clock,
		client: &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DisableKeepAlives:     true,
			ResponseHeaderTimeout: cfg.OpenTimeout,
		}},
		done:  make(chan struct{}),
		wake:  make(chan struct{}, 1),
		slot:  gocv.NewMat(),
		stats: Stats{Source: cfg.Source, State: StateStarting},
	}
	var first reader
	if !spec.Live() {
		// Local sources open quickly and do not heal by waiting: report now.
		if first, err = cfg.open(ctx, spec, c.client); err != nil {
			c.slot.Close()
			return nil, err
		}
	}
	ctx, c.cancel = context.WithCancel(ctx)
	c.wg.Add(1)
	go c.run(ctx, first)
	return c, nil
}

// Spec returns the parsed source.
func (c *Camera) Spec() Spec { return c.spec }

// Next waits for a frame newer than the last one it returned and copies it
// into dst (reusing dst's Mat). It returns io.EOF after the last frame of a
// file or folder without loop, ErrClosed after Close, or ctx's error.
// Next is meant for one consumer goroutine.
func (c *Camera) Next(ctx context.Context, dst *Frame) error {
	dst.Ensure()
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		if c.fresh {
			c.slot.CopyTo(&dst.Mat)
			dst.Seq, dst.Time = c.slotSeq, c.slotAt
			c.fresh = false
			c.stats.Delivered++
			c.mu.Unlock()
			return nil
		}
		stop := c.stopErr
		c.mu.Unlock()
		if stop != nil {
			return stop
		}
		select {
		case <-c.wake:
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stats returns a copy of the counters and state.
func (c *Camera) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Snapshot encodes the newest frame as JPEG (quality 1-100, 0 means 90). It
// does not take the frame away from Next.
func (c *Camera) Snapshot(quality int) ([]byte, error) {
	c.snapMu.Lock()
	defer c.snapMu.Unlock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if c.slotSeq == 0 {
		c.mu.Unlock()
		return nil, ErrNoFrame
	}
	if c.snap.Ptr() == nil {
		c.snap = gocv.NewMat()
	}
	c.slot.CopyTo(&c.snap)
	c.mu.Unlock()
	return EncodeJPEG(c.snap, quality)
}

// Close stops capturing, waits for every goroutine the camera started (a
// read blocked inside OpenCV is waited for until it returns), and releases
// the frames it holds.
func (c *Camera) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		c.snapMu.Lock()
		c.mu.Lock()
		c.closed = true
		c.stats.State = StateClosed
		c.slot.Close()
		if c.snap.Ptr() != nil {
			c.snap.Close()
		}
		c.mu.Unlock()
		c.snapMu.Unlock()
		c.client.CloseIdleConnections()
	})
	return nil
}

// run supervises capture sessions: it starts one, watches it for stalls, and
// on failure reopens the source after a backoff delay.
func (c *Camera) run(ctx context.Context, first reader) {
	defer c.wg.Done()
	attempt := 0
	var stop error
	for {
		s := c.startSession(ctx, first)
		first = nil
		err := c.watch(ctx, s)
		c.mu.Lock()
		c.current = nil
		c.mu.Unlock()
		if ctx.Err() != nil {
			stop = ctx.Err()
			break
		}
		if errors.Is(err, errEnd) {
			if err != errEnd {
				c.noteError(err, -1)
			}
			stop = io.EOF
			break
		}
		c.noteError(err, StateReconnecting)
		if s.gotFrame.Load() {
			attempt = 0
		}
		delay := c.cfg.Backoff.Delay(attempt, rand.Float64())
		attempt++
		c.log.Warn("camera source failed; reopening", "err", err, "attempt", attempt, "delay", delay)
		if c.clock.Sleep(ctx, delay) != nil {
			stop = ctx.Err()
			break
		}
		c.mu.Lock()
		c.stats.Reconnects++
		c.mu.Unlock()
	}
	c.mu.Lock()
	switch {
	case c.closing:
		c.stopErr, c.stats.State = ErrClosed, StateClosed
	case stop == io.EOF:
		c.stopErr, c.stats.State = io.EOF, StateEnded
	default:
		c.stopErr, c.stats.State = fmt.Errorf("camera %q stopped: %w", c.cfg.Source, stop), StateClosed
	}
	c.mu.Unlock()
	close(c.done)
}

func (c *Camera) noteError(err error, state State) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Errors++
	c.stats.LastError = err.Error()
	c.stats.LastErrorTime = time.Now()
	if state >= 0 {
		c.stats.State = state
	}
}

// session is one opening of the source, read on its own goroutine so that
// the supervisor can give up on it when a blocking read stalls.
type session struct {
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan error // receives errEnd or the failure; capacity 1
	busySince atomic.Int64
	busyLimit atomic.Int64
	opening   atomic.Bool
	gotFrame  atomic.Bool
}

func (s *session) begin(limit time.Duration) {
	s.busyLimit.Store(int64(limit))
	s.busySince.Store(time.Now().UnixNano())
}

func (s *session) end() { s.busySince.Store(0) }

func (c *Camera) startSession(ctx context.Context, first reader) *session {
	sctx, cancel := context.WithCancel(ctx)
	s := &session{ctx: sctx, cancel: cancel, done: make(chan error, 1)}
	c.mu.Lock()
	c.current = s
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		s.done <- c.capture(s, first)
	}()
	return s
}

// watch waits for the session to end, the context to end, or a stall.
// Stalls are measured on the wall clock whatever clock paces frames.
func (c *Camera) watch(ctx context.Context, s *session) error {
	interval := min(c.cfg.ReadTimeout, c.cfg.OpenTimeout) / 4
	interval = max(time.Millisecond, min(interval, time.Second))
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case err := <-s.done:
			s.cancel()
			return err
		case <-ctx.Done():
			s.cancel()
			return ctx.Err()
		case now := <-t.C:
			since := s.busySince.Load()
			limit := time.Duration(s.busyLimit.Load())
			if since != 0 && now.Sub(time.Unix(0, since)) > limit {
				s.cancel()
				if s.opening.Load() {
					return fmt.Errorf("%s source %q: open did not finish within %v", c.spec.Kind, c.spec.Raw, limit)
				}
				return fmt.Errorf("%s source %q: no frame within %v (stalled)", c.spec.Kind, c.spec.Raw, limit)
			}
		}
	}
}

// capture opens the source (unless r is already open) and reads it until it
// fails, ends, or the session is cancelled.
func (c *Camera) capture(s *session, r reader) error {
	if r == nil {
		s.opening.Store(true)
		s.begin(c.cfg.OpenTimeout)
		var err error
		r, err = c.cfg.open(s.ctx, c.spec, c.client)
		s.end()
		s.opening.Store(false)
		if err != nil {
			return err
		}
	}
	defer r.close()
	buf := gocv.NewMat()
	defer func() { buf.Close() }()
	p := pacer{}
	if c.cfg.FPS > 0 {
		p.period = time.Duration(float64(time.Second) / c.cfg.FPS)
	}
	live := c.spec.Live()
	bad := 0
	for {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		if wait := p.wait(c.clock.Now()); wait > 0 {
			if live {
				s.begin(c.cfg.ReadTimeout)
				err := r.skip(s.ctx)
				s.end()
				if err != nil {
					return err
				}
				c.mu.Lock()
				c.stats.Skipped++
				c.mu.Unlock()
				continue
			}
			if err := c.clock.Sleep(s.ctx, wait); err != nil {
				return err
			}
		}
		s.begin(c.cfg.ReadTimeout)
		err := r.read(s.ctx, &buf)
		s.end()
		if cerr := s.ctx.Err(); cerr != nil {
			return cerr
		}
		var bf badFrameError
		switch {
		case err == nil:
		case errors.Is(err, errEnd):
			return err
		case errors.As(err, &bf):
			bad++
			if bad >= c.cfg.MaxBadFrames {
				return fmt.Errorf("%d bad frames in a row, the last: %w", bad, err)
			}
			c.noteError(err, StateDegraded)
			continue
		default:
			return err
		}
		bad = 0
		now := c.clock.Now()
		p.mark(now)
		c.publish(s, &buf, now)
		s.gotFrame.Store(true)
	}
}

// publish makes buf the newest frame, handing the previous one's Mat back to
// the session to read into: frames are swapped, never copied or allocated.
func (c *Camera) publish(s *session, buf *gocv.Mat, at time.Time) {
	c.mu.Lock()
	if c.current != s || c.closing {
		c.mu.Unlock()
		return
	}
	c.seq++
	if c.fresh {
		c.stats.Dropped++
	}
	c.slot, *buf = *buf, c.slot
	c.slotSeq, c.slotAt, c.fresh = c.seq, at, true
	c.stats.Frames++
	c.stats.State = StateOK
	c.stats.LastFrameTime = at
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// pacer spaces frames at a fixed period, catching up after short delays and
// restarting its schedule after long ones.
type pacer struct {
	period time.Duration
	next   time.Time
}

func (p *pacer) wait(now time.Time) time.Duration {
	if p.period <= 0 || p.next.IsZero() {
		return 0
	}
	return p.next.Sub(now)
}

func (p *pacer) mark(now time.Time) {
	if p.period <= 0 {
		return
	}
	if p.next.IsZero() || now.Sub(p.next) >= p.period {
		p.next = now.Add(p.period)
		return
	}
	p.next = p.next.Add(p.period)
}

type clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
