package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the agent's Prometheus series, on a registry of its own so
// that several agents (tests) can live in one process.
type metrics struct {
	reg         *prometheus.Registry
	frames      *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	stage       *prometheus.HistogramVec
	connected   prometheus.Gauge
	publishes   *prometheus.CounterVec
	errors      *prometheus.CounterVec
	modelInfo   *prometheus.GaugeVec
	reloads     *prometheus.CounterVec
	predictions *prometheus.CounterVec
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
	m.reg.MustRegister(m.frames, m.dropped, m.stage, m.connected, m.publishes, m.errors, m.modelInfo, m.reloads, m.predictions,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) setModel(info ModelInfo, head string) {
	m.modelInfo.Reset()
	m.modelInfo.WithLabelValues(info.Name, info.Version, info.SHA256, head).Set(1)
}
