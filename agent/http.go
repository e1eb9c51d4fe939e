package agent

import (
	"encoding/json"
	"fmt"
	"image/jpeg"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Health is the /healthz body.
type Health struct {
	Status  string         `json:"status"` // "ready" or "degraded"
	Reasons []string       `json:"reasons"`
	Model   ModelRef       `json:"model"`
	MQTT    HealthMQTT     `json:"mqtt"`
	Cameras []HealthCamera `json:"cameras"`
}

type HealthMQTT struct {
	Connected bool   `json:"connected"`
	Broker    string `json:"broker"`
	Embedded  bool   `json:"embedded"`
	// Commands is true once the command subscription (learning) is
	// acknowledged by the broker.
	Commands bool `json:"commands"`
	// Attempts counts the connection attempts that failed since the
	// connection was last up (or since start): 0 while connected.
	Attempts uint64 `json:"attempts"`
	// LastConnect is when the connection was last established; absent
	// before the first connect.
	LastConnect string `json:"last_connect,omitempty"`
}

type HealthCamera struct {
	ID        string `json:"id"`
	Frames    uint64 `json:"frames"`
	LastFrame string `json:"last_frame,omitempty"`
	Error     string `json:"error,omitempty"`
	// Source is the source's own account (cameras opened through
	// agent/cvsource), absent for sources that give none.
	Source *HealthSource `json:"source,omitempty"`
}

// HealthSource is a camera source's state and counters.
type HealthSource struct {
	State      string `json:"state"`
	Frames     uint64 `json:"frames"`
	Dropped    uint64 `json:"dropped"`
	Reconnects uint64 `json:"reconnects"`
	Errors     uint64 `json:"errors"`
	LastError  string `json:"last_error,omitempty"`
}

// Health reports whether the agent is ready: the model is loaded, MQTT is
// connected and every camera has classified a frame recently.
func (a *Agent) Health() Health {
	h := Health{Status: "ready", Reasons: []string{}, Model: a.modelRef(a.Model()),
		MQTT: HealthMQTT{Broker: a.brokerURL, Embedded: a.broker != nil}}
	if a.pub == nil {
		h.Reasons = append(h.Reasons, "not started")
	} else {
		ok, why, attempts := a.pub.status()
		if t := a.pub.lastConnect.Load(); t != 0 {
			h.MQTT.LastConnect = stamp(time.Unix(0, t))
		}
		switch {
		case ok:
			h.MQTT.Connected = true
			h.MQTT.Commands = a.pub.commandsReady.Load()
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
// way), /metrics (Prometheus) and /snapshot.jpg[?camera=id] (the camera's
// latest frame; the first camera by default).
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		h := a.Health()
		w.Header().Set("Content-Type", "application/json")
		if h.Status != "ready" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(h)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.met.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /snapshot.jpg", func(w http.ResponseWriter, r *http.Request) {
		var cam *camera
		id := r.URL.Query().Get("camera")
		for _, c := range a.cams {
			if id == "" || c.cfg.ID == id {
				cam = c
				break
			}
		}
		if cam == nil {
			http.Error(w, fmt.Sprintf("no camera %q", id), http.StatusNotFound)
			return
		}
		if sn, ok := cam.src.(Snapshotter); ok {
			b, err := sn.Snapshot(a.cfg.HTTP.SnapshotQuality)
			if err != nil {
				http.Error(w, fmt.Sprintf("camera %q: %v", cam.cfg.ID, err), http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "image/jpeg")
			w.Header().Set("Cache-Control", "no-store")
			w.Write(b)
			return
		}
		f := cam.latest.Load()
		if f == nil {
			http.Error(w, fmt.Sprintf("camera %q has no frame yet", cam.cfg.ID), http.StatusServiceUnavailable)
			return
		}
		img := f.Image
		if img == nil {
			img = pixelsImage(f.Pixels, a.Model(), cam.cfg.Preprocess)
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Cache-Control", "no-store")
		if err := jpeg.Encode(w, img, &jpeg.Options{Quality: a.cfg.HTTP.SnapshotQuality}); err != nil {
			a.log.Warn("snapshot: JPEG encoding failed", "camera", cam.cfg.ID, "err", err)
		}
	})
	return mux
}
