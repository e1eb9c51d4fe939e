package agent

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/shortcut-edge/shortcut/agent/publish"
	"github.com/shortcut-edge/shortcut/internal/buildinfo"
)

// metrics are the agent's Prometheus series, on a registry of its own so
// that several agents (tests) can live in one process.
type metrics struct {
	reg         *prometheus.Registry
	frames      *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	stage       *prometheus.HistogramVec
	connected   prometheus.Gauge
	reconnects  prometheus.Counter
	lastConnect prometheus.Gauge
	httpConns   prometheus.Gauge
	publishes   *prometheus.CounterVec
	errors      *prometheus.CounterVec
	modelInfo   *prometheus.GaugeVec
	reloads     *prometheus.CounterVec
	predictions *prometheus.CounterVec
	examples    *prometheus.GaugeVec
	trainings   *prometheus.CounterVec
	commands    *prometheus.CounterVec
	gpioEvents  *prometheus.CounterVec
	buildInfo   *prometheus.GaugeVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shortcut_frames_total", Help: "Frames classified, per camera."}, []string{"camera"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shortcut_frames_dropped_total", Help: "Frames dropped because the next stage was busy (or the model changed), per camera and stage."},
			[]string{"camera", "stage"}),
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shortcut_stage_seconds", Help: "Time per frame in each pipeline stage (capture is the frame's age when taken).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"camera", "stage"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shortcut_mqtt_connected", Help: "1 while the MQTT connection is up."}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shortcut_mqtt_reconnects_total", Help: "Times the MQTT connection came back after it was lost (the first connect does not count)."}),
		lastConnect: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shortcut_mqtt_last_connect_timestamp_seconds", Help: "When the MQTT connection was last established (Unix time; 0: never)."}),
		httpConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shortcut_http_connections", Help: "Open HTTP connections (at most http.max_connections)."}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shortcut_mqtt_publishes_total", Help: "MQTT publishes by message kind and result (ok, error, dropped)."},
			[]string{"kind", "result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shortcut_errors_total", Help: "Errors by component."}, []string{"component"}),
		modelInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shortcut_model_info", Help: "The model in use (value 1)."}, []string{"name", "version", "sha256", "head_version"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shortcut_model_reloads_total", Help: "Model reloads by result (ok, error)."}, []string{"result"}),
		predictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shortcut_predictions_total", Help: "Top-1 predictions per camera and label."}, []string{"camera", "label"}),
	}
	m.examples = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "shortcut_learning_examples", Help: "Stored learning examples per label."}, []string{"label"})
	m.trainings = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shortcut_head_trainings_total", Help: "Head trainings by result (ok, error)."}, []string{"result"})
	m.commands = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shortcut_commands_total", Help: "MQTT and button commands by command and result (ok or the error code)."}, []string{"command", "result"})
	m.gpioEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shortcut_gpio_events_total", Help: "GPIO events: button presses (short, long) and output switches (on, off)."}, []string{"pin", "event"})
	m.buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "shortcut_build_info", Help: "The agent's build (value 1): its version (git describe) and the Go release that built it."}, []string{"version", "goversion"})
	m.buildInfo.WithLabelValues(buildinfo.Version, runtime.Version()).Set(1)
	m.reg.MustRegister(m.buildInfo, m.frames, m.dropped, m.stage, m.connected, m.reconnects, m.lastConnect, m.httpConns, m.publishes, m.errors, m.modelInfo, m.reloads, m.predictions,
		m.examples, m.trainings, m.commands, m.gpioEvents,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// sourceCollector reads each camera source's own counters at scrape time.
type sourceCollector struct {
	a                                        *Agent
	state, frames, dropped, reconnects, errs *prometheus.Desc
}

var sourceStates = []string{"starting", "ok", "degraded", "reconnecting", "ended", "closed"}

func newSourceCollector(a *Agent) *sourceCollector {
	return &sourceCollector{a: a,
		state: prometheus.NewDesc("shortcut_camera_state", "The camera source's state (1 for the current one): starting, ok, degraded, reconnecting, ended, closed.",
			[]string{"camera", "state"}, nil),
		frames: prometheus.NewDesc("shortcut_camera_frames_total", "Frames the camera source captured.", []string{"camera"}, nil),
		dropped: prometheus.NewDesc("shortcut_camera_dropped_total", "Frames the camera source replaced by a newer one before the pipeline took them.",
			[]string{"camera"}, nil),
		reconnects: prometheus.NewDesc("shortcut_camera_reconnects_total", "Times the camera source was reopened after a failure or stall.", []string{"camera"}, nil),
		errs:       prometheus.NewDesc("shortcut_camera_errors_total", "Camera source errors: failed opens, reads and frames.", []string{"camera"}, nil),
	}
}

func (s *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.state
	ch <- s.frames
	ch <- s.dropped
	ch <- s.reconnects
	ch <- s.errs
}

func (s *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	for _, c := range s.a.cams {
		ss, ok := c.src.(StatsSource)
		if !ok {
			continue
		}
		st := ss.SourceStats()
		id := c.cfg.ID
		for _, name := range sourceStates {
			v := 0.0
			if name == st.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(s.state, prometheus.GaugeValue, v, id, name)
		}
		ch <- prometheus.MustNewConstMetric(s.frames, prometheus.CounterValue, float64(st.Frames), id)
		ch <- prometheus.MustNewConstMetric(s.dropped, prometheus.CounterValue, float64(st.Dropped), id)
		ch <- prometheus.MustNewConstMetric(s.reconnects, prometheus.CounterValue, float64(st.Reconnects), id)
		ch <- prometheus.MustNewConstMetric(s.errs, prometheus.CounterValue, float64(st.Errors), id)
	}
}

func (m *metrics) setModel(info ModelInfo, head string) {
	m.modelInfo.Reset()
	m.modelInfo.WithLabelValues(info.Name, info.Version, info.SHA256, head).Set(1)
}

// publisher is the part of the series the MQTT publisher keeps.
func (m *metrics) publisher() publish.Metrics {
	return publish.Metrics{Connected: m.connected, Reconnects: m.reconnects, LastConnect: m.lastConnect,
		Publishes: m.publishes, Errors: m.errors.WithLabelValues("mqtt")}
}
