package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shortcut-edge/shortcut/agent/config"
	"github.com/shortcut-edge/shortcut/agent/connlimit"
	"github.com/shortcut-edge/shortcut/agent/web"
	"github.com/shortcut-edge/shortcut/agent/webauth"
)

// Health reports whether the agent is ready: the model is loaded, MQTT is
// connected and every camera has classified a frame recently.
func (a *Agent) Health() Health {
	h := Health{Status: "ready", Reasons: []string{}, Model: a.modelRef(a.Model()), Accelerator: a.accel.Load(), Embedding: a.Model().Embedding,
		MQTT: HealthMQTT{Broker: a.brokerURL, Embedded: a.broker != nil}}
	if a.pub == nil {
		h.Reasons = append(h.Reasons, "not started")
	} else {
		ok, why, attempts := a.pub.Status()
		if t := a.pub.LastConnect(); t != 0 {
			h.MQTT.LastConnect = stamp(time.Unix(0, t))
		}
		switch {
		case ok:
			h.MQTT.Connected = true
			h.MQTT.Commands = a.pub.CommandsReady()
		case attempts > 0:
			h.MQTT.Attempts = attempts
			h.Reasons = append(h.Reasons, fmt.Sprintf("mqtt: not connected to %s after %d failed attempt(s) (%s)", a.brokerURL, attempts, why))
		default:
			h.Reasons = append(h.Reasons, fmt.Sprintf("mqtt: not connected to %s (%s)", a.brokerURL, why))
		}
	}
	now := time.Now()
	for _, c := range a.cams {
		hc := HealthCamera{ID: c.cfg.ID, Frames: c.frames.Load()}
		hc.Error, _ = c.lastErr.Load().(string)
		last := c.lastFrame.Load()
		if last > 0 {
			hc.LastFrame = stamp(time.Unix(0, last))
		}
		stale := 10 * time.Second
		if c.cfg.FPS > 0 {
			stale = max(stale, time.Duration(5*float64(time.Second)/c.cfg.FPS))
		}
		var src SourceStats
		if ss, ok := c.src.(StatsSource); ok {
			src = ss.SourceStats()
			hc.Source = &HealthSource{State: src.State, Frames: src.Frames, Dropped: src.Dropped,
				Reconnects: src.Reconnects, Errors: src.Errors, LastError: src.LastError}
		}
		switch {
		case c.done.Load():
			h.Reasons = append(h.Reasons, fmt.Sprintf("camera %s: source has no more frames", c.cfg.ID))
		case hc.Error != "":
			h.Reasons = append(h.Reasons, fmt.Sprintf("camera %s: %s", c.cfg.ID, hc.Error))
		case src.State == SourceReconnecting:
			h.Reasons = append(h.Reasons, fmt.Sprintf("camera %s: source reconnecting after %d attempt(s): %s", c.cfg.ID, src.Reconnects, src.LastError))
		case src.State == SourceDegraded:
			h.Reasons = append(h.Reasons, fmt.Sprintf("camera %s: source degraded: %s", c.cfg.ID, src.LastError))
		case last == 0:
			h.Reasons = append(h.Reasons, fmt.Sprintf("camera %s: no frame classified yet", c.cfg.ID))
		case now.Sub(time.Unix(0, last)) > stale:
			h.Reasons = append(h.Reasons, fmt.Sprintf("camera %s: no frame classified for %s", c.cfg.ID, now.Sub(time.Unix(0, last)).Round(time.Second)))
		}
		h.Cameras = append(h.Cameras, hc)
	}
	if len(h.Reasons) > 0 {
		h.Status = "degraded"
	}
	return h
}

// Handler serves /healthz (200 when ready, 503 when degraded, JSON either
// way), /metrics (Prometheus), /snapshot.jpg[?camera=id] (the camera's
// latest frame; the first camera by default), /stream.mjpeg[?camera=id]
// (its frames as they come, for an <img> in a browser; also
// /cameras/<id>/snapshot.jpg and /cameras/<id>/stream.mjpg), and the web
// page with its API (web.go, webapi.go), each behind http.auth (webauth.go).
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", a.auth.Guard(webauth.Open, func(w http.ResponseWriter, r *http.Request) {
		h := a.Health()
		w.Header().Set("Content-Type", "application/json")
		if h.Status != "ready" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(h)
	}))
	metrics := promhttp.HandlerFor(a.met.reg, promhttp.HandlerOpts{})
	mux.Handle("GET /metrics", a.auth.Guard(webauth.Metrics, metrics.ServeHTTP))
	snapshot := func(w http.ResponseWriter, cam *camera) {
		b, err := a.snapshot(cam)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(b)
	}
	// Streams hold their connection for as long as the viewer stays: at
	// most half of http.max_connections, so that /healthz and /metrics
	// always find room.
	streams := make(chan struct{}, max(1, a.cfg.HTTP.MaxConnections/2))
	stream := func(w http.ResponseWriter, r *http.Request, cam *camera) {
		if !web.TakeStream(w, streams, a.cfg.HTTP.MaxConnections) {
			return
		}
		defer func() { <-streams }()
		a.stream(w, r, cam)
	}
	mux.Handle("GET /snapshot.jpg", a.auth.Guard(webauth.API, func(w http.ResponseWriter, r *http.Request) {
		if cam := a.cameraFor(w, r); cam != nil {
			snapshot(w, cam)
		}
	}))
	mux.Handle("GET /stream.mjpeg", a.auth.Guard(webauth.API, func(w http.ResponseWriter, r *http.Request) {
		if cam := a.cameraFor(w, r); cam != nil {
			stream(w, r, cam)
		}
	}))
	mux.Handle("GET /cameras/{id}/snapshot.jpg", a.auth.Guard(webauth.API, func(w http.ResponseWriter, r *http.Request) {
		if cam := a.cameraAt(w, r); cam != nil {
			snapshot(w, cam)
		}
	}))
	mux.Handle("GET /cameras/{id}/stream.mjpg", a.auth.Guard(webauth.API, func(w http.ResponseWriter, r *http.Request) {
		if cam := a.cameraAt(w, r); cam != nil {
			stream(w, r, cam)
		}
	}))
	a.webRoutes(mux, streams)
	return mux
}

// cameraAt is the camera the path names (/cameras/<id>/...); it answers
// 404 itself, and returns nil, for an unknown id.
func (a *Agent) cameraAt(w http.ResponseWriter, r *http.Request) *camera {
	if c := a.cameraByID(r.PathValue("id")); c != nil {
		return c
	}
	http.Error(w, fmt.Sprintf("no camera %q (cameras: %v)", r.PathValue("id"), a.cameraIDs()), http.StatusNotFound)
	return nil
}

// cameraFor is the camera that r names with ?camera=id, the first one
// when it names none. It answers 404 itself, and returns nil, for an
// unknown id.
func (a *Agent) cameraFor(w http.ResponseWriter, r *http.Request) *camera {
	id := r.URL.Query().Get("camera")
	for _, c := range a.cams {
		if id == "" || c.cfg.ID == id {
			return c
		}
	}
	http.Error(w, fmt.Sprintf("no camera %q (cameras: %v)", id, a.cameraIDs()), http.StatusNotFound)
	return nil
}

// snapshot is cam's latest picture as JPEG: the source's own full picture
// when it keeps one (OpenCV sources), else the decoded image or the model
// input.
func (a *Agent) snapshot(cam *camera) ([]byte, error) {
	if sn, ok := cam.src.(Snapshotter); ok {
		b, err := sn.Snapshot(a.cfg.HTTP.SnapshotQuality)
		if err != nil {
			return nil, fmt.Errorf("camera %q: %v", cam.cfg.ID, err)
		}
		return b, nil
	}
	f := cam.latest.Load()
	if f == nil {
		return nil, fmt.Errorf("camera %q has no frame yet", cam.cfg.ID)
	}
	img := f.Image
	if img == nil {
		img = pixelsImage(f.Pixels, a.Model(), cam.cfg.Preprocess)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: a.cfg.HTTP.SnapshotQuality}); err != nil {
		return nil, fmt.Errorf("camera %q: JPEG encoding failed: %v", cam.cfg.ID, err)
	}
	return b.Bytes(), nil
}

// streamMaxFPS caps /stream.mjpeg's frame rate: each frame is one JPEG
// encoding per viewer, on the board's CPU.
const streamMaxFPS = 10

// stream sends cam's latest picture as multipart/x-mixed-replace JPEG
// parts, at the camera's fps (streamMaxFPS at most), until the viewer
// leaves or the agent stops (the request's context is Run's).
//
// The server's write timeout bounds a whole response, which would cut a
// stream off; the stream renews the write deadline before each frame
// instead: a viewer that keeps reading may watch for hours, one that stops
// reading is dropped after http.write_timeout. (The read timeout does not
// reach this far: net/http lifts it once a request without a body has
// been read.)
func (a *Agent) stream(w http.ResponseWriter, r *http.Request, cam *camera) {
	const boundary = "shortcut-frame"
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary="+boundary)
	w.Header().Set("Cache-Control", "no-store")
	fps := cam.cfg.FPS
	if fps <= 0 || fps > streamMaxFPS {
		fps = streamMaxFPS
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / fps))
	defer tick.Stop()
	for {
		if b, err := a.snapshot(cam); err == nil {
			if rc.SetWriteDeadline(time.Now().Add(a.cfg.HTTP.WriteTimeout)) != nil {
				return
			}
			fmt.Fprintf(w, "--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", boundary, len(b))
			w.Write(b)
			if _, err := w.Write([]byte("\r\n")); err != nil || rc.Flush() != nil {
				return // the viewer left, or stopped reading
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// httpReadHeaderTimeout bounds reading a request's headers (within
// http.read_timeout): a client that connects and dawdles is dropped soon.
const httpReadHeaderTimeout = 5 * time.Second

// newHTTPServer is the agent's HTTP server on ln, with every limit of the
// http configuration: read, write and idle timeouts, and at most
// http.max_connections open connections (connlimit). Its requests'
// contexts are ctx's children, so that streams end when the agent stops.
func (a *Agent) newHTTPServer(ctx context.Context, ln net.Listener) (*http.Server, net.Listener) {
	if host, _, err := net.SplitHostPort(a.cfg.HTTP.Address); err == nil && !a.auth.Enabled() && !config.LoopbackHost(host) {
		a.log.Warn("http.insecure: the page and the API are open to anyone who can reach this address, without login: "+
			"add a user or token under http.auth (shortcut-agent hash-password), or listen on 127.0.0.1", "address", a.cfg.HTTP.Address)
	}
	lim := connlimit.New(ln, a.cfg.HTTP.MaxConnections, a.met.httpConns)
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: min(httpReadHeaderTimeout, a.cfg.HTTP.ReadTimeout),
		ReadTimeout:       a.cfg.HTTP.ReadTimeout,
		WriteTimeout:      a.cfg.HTTP.WriteTimeout,
		IdleTimeout:       a.cfg.HTTP.IdleTimeout,
		ConnState:         lim.ConnState,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	return srv, lim
}
