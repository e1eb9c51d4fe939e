// Package payload is the agent's wire contract: the JSON of every MQTT
// message and API reply (agent/PAYLOADS.md documents it, the contract test
// freezes it).
package payload

import (
	"encoding/json"
	"math"
	"time"
)

// The JSON payloads below are a contract with whoever subscribes (Home
// Assistant, Node-RED, scripts): agent/PAYLOADS.md documents them and
// contract_test.go freezes them. Add fields; never rename or remove one.

// ModelRef names the model that produced a result.
type ModelRef struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	SHA256      string `json:"sha256"`
	HeadVersion string `json:"head_version"`
}

// Scored is one class and its score.
type Scored struct {
	Label string  `json:"label"`
	Score float64 `json:"score"`
}

// Latency is per-stage time for one frame, in milliseconds.
type Latency struct {
	Capture    float64 `json:"capture"`
	Preprocess float64 `json:"preprocess"`
	Inference  float64 `json:"inference"`
	Total      float64 `json:"total"`
}

// Prediction is the payload of <prefix>/<device>/<camera>/prediction.
type Prediction struct {
	Time      string   `json:"time"`
	Device    string   `json:"device"`
	Camera    string   `json:"camera"`
	Seq       uint64   `json:"seq"`
	Label     string   `json:"label"`
	Score     float64  `json:"score"`
	TopK      []Scored `json:"top_k"`
	Model     ModelRef `json:"model"`
	LatencyMS Latency  `json:"latency_ms"`
}

// State is the retained payload of <prefix>/<device>/<camera>/state: the
// debounced label ("none" when no label is stable any more), and the frame
// that decided it.
type State struct {
	Time      string   `json:"time"`
	Device    string   `json:"device"`
	Camera    string   `json:"camera"`
	Seq       uint64   `json:"seq"`
	Label     string   `json:"label"`
	Score     float64  `json:"score"`
	Previous  string   `json:"previous"`
	TopK      []Scored `json:"top_k"`
	Model     ModelRef `json:"model"`
	LatencyMS Latency  `json:"latency_ms"`
}

// CameraEvent is the payload of <prefix>/<device>/<camera>/events (not
// retained): one event is the stretch of time one label is a camera's
// debounced state, told as one "new", any number of "update" and one
// "end" message, all with the same id.
type CameraEvent struct {
	Type   string `json:"type"` // new, update or end
	ID     string `json:"id"`   // <camera>-<start, Unix ms>-<n>
	Time   string `json:"time"` // the frame of this message
	Device string `json:"device"`
	Camera string `json:"camera"`
	Seq    uint64 `json:"seq"` // the frame of this message
	Label  string `json:"label"`
	// Score is the label's score in this message's frame; TopScore the
	// best it had since the event started, in the frame of TopScoreTime.
	Score        float64 `json:"score"`
	TopScore     float64 `json:"top_score"`
	TopScoreTime string  `json:"top_score_time"`
	StartTime    string  `json:"start_time"`
	EndTime      string  `json:"end_time,omitempty"` // end only
	// Duration is the seconds from StartTime to this message's frame.
	Duration float64 `json:"duration_s"`
	// HasSnapshot: this message's frame was published on SnapshotTopic
	// just before it. SnapshotTopic is "" when snapshots are off.
	HasSnapshot   bool     `json:"has_snapshot"`
	SnapshotTopic string   `json:"snapshot_topic,omitempty"`
	Model         ModelRef `json:"model"`
}

// CameraEvent types.
const (
	EventNew    = "new"
	EventUpdate = "update"
	EventEnd    = "end"
)

// Event is the payload of <prefix>/<device>/event (not retained).
type Event struct {
	Time    string    `json:"time"`
	Device  string    `json:"device"`
	Kind    string    `json:"kind"` // see the Event kinds
	Message string    `json:"message"`
	Path    string    `json:"path,omitempty"`
	Model   *ModelRef `json:"model,omitempty"` // the model running after the event
	Head    *HeadInfo `json:"head,omitempty"`  // the head trained or imported
	// Update is the model command an update event is about.
	Update *UpdateInfo `json:"update,omitempty"`
}

// UpdateInfo describes a model command in the events it causes.
type UpdateInfo struct {
	ID     string `json:"id"`
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Bytes  int64  `json:"bytes"`           // downloaded so far
	Group  string `json:"group,omitempty"` // the fleet group it was sent to
}

// Event kinds.
const (
	EventModelReloaded     = "model_reloaded"
	EventModelReloadFailed = "model_reload_failed"
	EventHeadTrained       = "head_trained"
	EventHeadTrainFailed   = "head_train_failed"
	EventHeadReset         = "head_reset"
	EventHeadImported      = "head_imported"
)

// Reply is the payload of <prefix>/<device>/reply/<command>: the answer to
// one command, carrying the command's id.
type Reply struct {
	Time    string `json:"time"`
	Device  string `json:"device"`
	Command string `json:"command"`
	ID      string `json:"id"`
	OK      bool   `json:"ok"`
	// Code classifies a failure: invalid, unknown_command, busy,
	// unavailable or failed.
	Code    string `json:"code,omitempty"`
	Error   string `json:"error,omitempty"`
	Warning string `json:"warning,omitempty"`
	// Result is the command's own result object (below), present on
	// success and, for learn, also on a partial failure.
	Result json.RawMessage `json:"result,omitempty"`
}

// HeadInfo describes a trained head.
type HeadInfo struct {
	Version            string   `json:"version"`
	Labels             []string `json:"labels"`
	Mode               string   `json:"mode,omitempty"`
	ValidationAccuracy float64  `json:"validation_accuracy"`
	ValidationExamples int      `json:"validation_examples"`
	TrainExamples      int      `json:"train_examples"`
	Trained            []string `json:"trained,omitempty"`
	Imprinted          []string `json:"imprinted,omitempty"`
	Iterations         int      `json:"iterations"`
	Milliseconds       float64  `json:"milliseconds"`
}

// LearnResult is learn's result.
type LearnResult struct {
	Label     string   `json:"label"`
	Camera    string   `json:"camera"`
	Requested int      `json:"requested"`
	Added     int      `json:"added"`
	Dropped   int      `json:"dropped"` // oldest examples replaced (label full)
	Total     int      `json:"total"`   // examples the label now holds
	Seqs      []uint64 `json:"seqs"`    // frame numbers taken
}

// LabelCount is a label and its stored examples.
type LabelCount struct {
	Label string `json:"label"`
	Count int    `json:"count"`
}

// Capturing is a learn command in progress.
type Capturing struct {
	Camera string `json:"camera"`
	Label  string `json:"label"`
}

// LabelsResult is labels' result.
type LabelsResult struct {
	Labels      []LabelCount `json:"labels"`
	Head        *HeadInfo    `json:"head"` // null: the model's own classifier
	ModelLabels []string     `json:"model_labels"`
	Training    bool         `json:"training"`
	Learning    []Capturing  `json:"learning"`
	Unavailable string       `json:"unavailable,omitempty"`
}

// ForgetResult is forget's result.
type ForgetResult struct {
	Label           string `json:"label"`
	Removed         int    `json:"removed"`
	RemovedFromHead bool   `json:"removed_from_head"`
	HeadVersion     string `json:"head_version"`
}

// ResetResult is reset's result.
type ResetResult struct {
	HeadVersion string `json:"head_version"`
}

// ExportResult is export's result.
type ExportResult struct {
	Path        string   `json:"path"`
	SHA256      string   `json:"sha256"`
	Bytes       int64    `json:"bytes"`
	HeadVersion string   `json:"head_version"`
	Labels      []string `json:"labels"`
}

// ModelResult is the result of model and rollback.
type ModelResult struct {
	Model    ModelRef `json:"model"`              // the model now running
	Path     string   `json:"path"`               // its file
	Previous string   `json:"previous,omitempty"` // the file a rollback goes back to
	// Head is what became of the head trained on the device: none, kept,
	// restored or incompatible (set aside, kept on disk; used again when a
	// model of its embedding width is back).
	Head       string `json:"head"`
	Unchanged  bool   `json:"unchanged,omitempty"`   // the model was already running; nothing fetched
	RolledBack bool   `json:"rolled_back,omitempty"` // rollback's result
}

// ImportResult is import's result.
type ImportResult struct {
	Path string    `json:"path"`
	Head *HeadInfo `json:"head"`
}

// LearnProgress is a progress event of a learn command: added of requested
// examples of label are in.
type LearnProgress struct {
	Time      string `json:"time"`
	Command   string `json:"command"`
	ID        string `json:"id"`
	Label     string `json:"label"`
	Camera    string `json:"camera"`
	Added     int    `json:"added"`
	Requested int    `json:"requested"`
}

// NoState is the state label when no label is stable.
const NoState = "none"

// Stamp is a payload's time: UTC, RFC 3339 with nanoseconds.
func Stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// MS is d in milliseconds, to the microsecond.
func MS(d time.Duration) float64 { return Round(float64(d)/1e6, 3) }

// Round rounds v to digits decimal places.
func Round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// JSON marshals one of the payloads above, which cannot fail.
func JSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own plain structs are marshalled; this cannot fail.
		panic("payload: marshal: " + err.Error())
	}
	return b
}
