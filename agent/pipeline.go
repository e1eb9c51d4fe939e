package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/shortcut-edge/shortcut/agent/capture"
	"github.com/shortcut-edge/shortcut/agent/decide"
	"github.com/shortcut-edge/shortcut/agent/publish"
	"github.com/shortcut-edge/shortcut/agent/web"
	"github.com/shortcut-edge/shortcut/resnet/modelio"
)

// camera is one pipeline: source -> preprocess -> model -> decision ->
// publish, each stage a goroutine joined to the next by a bounded channel.
// Capture never waits for a busy model: when the preprocess queue is full
// the new frame is dropped (and counted), so latency stays bounded.
type camera struct {
	cfg     CameraConfig
	src     FrameSource
	deb     *decide.Debouncer
	limiter *decide.RateLimiter
	events  *eventTracker // used only by the camera's decide goroutine

	latest    atomic.Pointer[Frame] // for /snapshot.jpg
	frames    atomic.Uint64
	lastFrame atomic.Int64               // unix nanoseconds of the last classified frame
	lastErr   atomic.Value               // string: the source's last error, "" when fine
	done      atomic.Bool                // the source ran out of frames
	capture   atomic.Pointer[captureReq] // a learn command taking frames
	state     atomic.Value               // string: the debounced label, for the GPIO LEDs
	prevLabel string
	prevHead  *activeHead // the head the debouncer's indices refer to
}

type captured struct {
	f        Frame
	received time.Time
}

type prepared struct {
	captured
	ref        *modelRef
	buf        []float32
	preprocess time.Duration
}

type classified struct {
	prepared
	scores    []float32
	labels    []string    // one per score
	head      *activeHead // nil: the scores are the model's own
	inference time.Duration
}

// run starts the camera's stages and returns when all have ended; ctx
// ending stops capture, and each later stage ends when its input closes.
func (a *Agent) runCamera(ctx context.Context, c *camera) {
	q := c.cfg.Queue
	raw := make(chan captured, q)
	pre := make(chan prepared, q)
	res := make(chan classified, q)
	free := make(chan []float32, 2*q+2) // recycled input buffers
	done := make(chan struct{}, 3)
	go func() { a.capture(ctx, c, raw); done <- struct{}{} }()
	go func() { a.preprocess(ctx, c, raw, pre, free); done <- struct{}{} }()
	go func() { a.infer(ctx, c, pre, res, free); done <- struct{}{} }()
	a.decide(c, res)
	for range 3 {
		<-done
	}
}

func (a *Agent) capture(ctx context.Context, c *camera, out chan<- captured) {
	defer close(out)
	var interval time.Duration
	if c.cfg.FPS > 0 {
		interval = time.Duration(float64(time.Second) / c.cfg.FPS)
	}
	var seq uint64
	next := time.Now()
	for {
		if interval > 0 {
			if !sleepCtx(ctx, time.Until(next)) {
				return
			}
			next = next.Add(interval)
			if now := time.Now(); next.Before(now) {
				next = now // do not burst to catch up after a stall
			}
		}
		f, err := c.src.Next(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, io.EOF) || errors.Is(err, ErrSourceDone) {
			a.log.Info("camera source has no more frames", "camera", c.cfg.ID)
			c.done.Store(true)
			return
		}
		if err != nil {
			c.lastErr.Store(err.Error())
			a.met.errors.WithLabelValues("source").Inc()
			a.log.Warn("camera source failed; retrying", "camera", c.cfg.ID, "err", err)
			if !sleepCtx(ctx, time.Second) {
				return
			}
			continue
		}
		c.lastErr.Store("")
		seq++
		if f.Seq == 0 {
			f.Seq = seq
		}
		if f.Time.IsZero() {
			f.Time = time.Now()
		}
		c.latest.Store(&f)
		select {
		case out <- captured{f: f, received: time.Now()}:
		default:
			a.met.dropped.WithLabelValues(c.cfg.ID, "preprocess").Inc()
		}
	}
}

func (a *Agent) preprocess(ctx context.Context, c *camera, in <-chan captured, out chan<- prepared, free chan []float32) {
	defer close(out)
	for cf := range in {
		ref := a.model.Load()
		n := ref.info.Height * ref.info.Width * ref.info.Channels
		var buf []float32
		select {
		case buf = <-free:
		default:
		}
		if len(buf) != n {
			buf = make([]float32, n)
		}
		t0 := time.Now()
		var err error
		switch {
		case cf.f.Pixels != nil && len(cf.f.Pixels) != n:
			err = fmt.Errorf("frame %d holds %d values; model %q wants %dx%dx%d = %d", cf.f.Seq, len(cf.f.Pixels), ref.info.Name, ref.info.Height, ref.info.Width, ref.info.Channels, n)
		case cf.f.Pixels != nil:
			copy(buf, cf.f.Pixels)
		case cf.f.Image != nil:
			err = capture.Apply(c.cfg.Preprocess, buf, cf.f.Image, ref.info)
		default:
			err = fmt.Errorf("frame %d has neither an image nor pixels", cf.f.Seq)
		}
		if err != nil {
			a.met.errors.WithLabelValues("preprocess").Inc()
			a.log.Warn("preprocess failed; frame dropped", "camera", c.cfg.ID, "err", err)
			continue
		}
		select {
		case out <- prepared{captured: cf, ref: ref, buf: buf, preprocess: time.Since(t0)}:
		case <-ctx.Done():
			return
		}
	}
}

func (a *Agent) infer(ctx context.Context, c *camera, in <-chan prepared, out chan<- classified, free chan []float32) {
	defer close(out)
	var cur *modelRef
	var sess Session
	for p := range in {
		ref := a.model.Load()
		if p.ref != ref {
			// Prepared for a model that has just been replaced.
			a.met.dropped.WithLabelValues(c.cfg.ID, "reload").Inc()
			continue
		}
		if ref != cur {
			cur, sess = ref, ref.c.NewSession()
		}
		copy(sess.Input(), p.buf)
		select {
		case free <- p.buf:
		default:
		}
		t0 := time.Now()
		scores, err := sess.Run()
		if err != nil {
			a.met.errors.WithLabelValues("inference").Inc()
			a.log.Warn("inference failed; frame dropped", "camera", c.cfg.ID, "err", err)
			continue
		}
		res := classified{prepared: p, scores: append([]float32(nil), scores...), labels: ref.info.Labels}
		// The embedding is read only when a trained head or a learn
		// command wants it.
		ah, req := a.head.Load(), c.capture.Load()
		var emb []float32
		if es, ok := sess.(EmbeddingSession); ok && (ah != nil || req != nil) {
			emb = es.Embedding()
		}
		// A trained head replaces the model's classifier: its scores come
		// from the same embedding.
		if ah != nil && len(emb) == ah.h.Dim() {
			if hs, err := ah.h.Predict(emb); err == nil {
				res.scores, res.labels, res.head = hs, ah.labels, ah
			}
		}
		res.inference = time.Since(t0)
		if req != nil {
			req.offer(p.f, emb, sess.Input(), ref.info, c.cfg.Preprocess)
		}
		select {
		case out <- res:
		case <-ctx.Done():
			return
		}
	}
}

// decide is the last stage of a camera: for each classified frame it
// records the latencies, ranks the scores, drives the GPIO outputs, publishes
// the prediction, debounces the state and says the pipeline is alive.
func (a *Agent) decide(c *camera, in <-chan classified) {
	var last classified
	var lastModel ModelRef
	defer func() { a.endOpenEvent(c, last, lastModel) }()
	for r := range in {
		now := time.Now()
		if r.head != c.prevHead {
			// Another label set: indices in the debouncer mean other
			// classes now. Start it afresh; the published state stays
			// until a new label settles.
			c.deb, c.prevHead = decide.NewDebouncer(a.cfg.Decision), r.head
		}
		lat := a.observeLatency(c.cfg.ID, r, now)
		tk := rankScores(r, a.cfg.Model.TopK)
		model := a.modelOf(r)
		last, lastModel = r, model
		a.observePrediction(c.cfg.ID, tk[0], now)
		p := Prediction{Time: stamp(r.f.Time), Device: a.cfg.Device.ID, Camera: c.cfg.ID, Seq: r.f.Seq,
			Label: tk[0].Label, Score: tk[0].Score, TopK: tk, Model: model, LatencyMS: lat}
		if a.cfg.MQTT.Predictions.Enabled && c.limiter.Allow(now) {
			a.pub.Enqueue(publish.Message{Kind: "prediction", Topic: a.topics.Prediction(c.cfg.ID), Payload: mustJSON(p)})
		}
		a.hub.Prediction(p, now)
		a.updateState(c, r, tk, model, lat)
		a.markAlive(c, now)
	}
}

// observeLatency records the frame's per-stage latencies in the metrics and
// returns them for the payloads.
func (a *Agent) observeLatency(id string, r classified, now time.Time) Latency {
	capture, total := max(r.received.Sub(r.f.Time), 0), max(now.Sub(r.f.Time), 0)
	a.met.stage.WithLabelValues(id, "capture").Observe(capture.Seconds())
	a.met.stage.WithLabelValues(id, "preprocess").Observe(r.preprocess.Seconds())
	a.met.stage.WithLabelValues(id, "inference").Observe(r.inference.Seconds())
	a.met.stage.WithLabelValues(id, "total").Observe(total.Seconds())
	a.met.frames.WithLabelValues(id).Inc()
	return Latency{Capture: ms(capture), Preprocess: ms(r.preprocess), Inference: ms(r.inference), Total: ms(total)}
}

// rankScores is the frame's k best labels with their scores, best first.
func rankScores(r classified, k int) []Scored {
	top := modelio.TopK(nil, r.scores, k)
	tk := make([]Scored, len(top))
	for i, c := range top {
		tk[i] = Scored{Label: r.labels[c], Score: round(float64(r.scores[c]), 6)}
	}
	return tk
}

// modelOf is the payloads' description of the model (and head) that
// classified r.
func (a *Agent) modelOf(r classified) ModelRef {
	model := a.modelRef(r.ref.info)
	model.HeadVersion = a.cfg.Model.HeadVersion
	if r.head != nil {
		model.HeadVersion = r.head.version
	}
	return model
}

// observePrediction drives the GPIO outputs and counts the prediction.
func (a *Agent) observePrediction(id string, best Scored, now time.Time) {
	if a.gpio != nil {
		a.gpio.Observe(id, best.Label, best.Score, now)
	}
	a.met.predictions.WithLabelValues(id, best.Label).Inc()
}

// updateState debounces the scores and publishes the camera's state when a
// new label has settled, then the camera's events.
func (a *Agent) updateState(c *camera, r classified, tk []Scored, model ModelRef, lat Latency) {
	st, changed := c.deb.Update(r.scores)
	// Events follow the state, and their messages the state's (events.go).
	defer a.trackEvent(c, r, st, model)
	if changed && st >= 0 && r.labels[st] == c.prevLabel || changed && st < 0 && c.prevLabel == NoState {
		changed = false // the debouncer started afresh (new head) and settled where it was
	}
	if !changed {
		return
	}
	id := c.cfg.ID
	s := State{Time: stamp(r.f.Time), Device: a.cfg.Device.ID, Camera: id, Seq: r.f.Seq,
		Label: NoState, Previous: c.prevLabel, TopK: tk, Model: model, LatencyMS: lat}
	if st >= 0 {
		s.Label, s.Score = r.labels[st], round(float64(r.scores[st]), 6)
	}
	if s.Previous == "" {
		s.Previous = NoState
	}
	c.prevLabel = s.Label
	c.state.Store(s.Label)
	a.log.Info("state changed", "camera", id, "label", s.Label, "previous", s.Previous, "seq", r.f.Seq)
	a.pub.Enqueue(publish.Message{Kind: "state", Topic: a.topics.State(id), Payload: mustJSON(s), Retained: true})
	a.hub.Publish(web.TypeState, s)
}

// markAlive records a processed frame for /healthz and the watchdog, and
// tells systemd the agent is ready after the first.
func (a *Agent) markAlive(c *camera, now time.Time) {
	c.frames.Add(1)
	c.lastFrame.Store(now.UnixNano())
	a.processed.Add(1)
	a.readyOnce.Do(func() {
		if err := a.notify.notify("READY=1\nSTATUS=classifying"); err != nil {
			a.log.Warn("sd_notify READY failed", "err", err)
		}
	})
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
