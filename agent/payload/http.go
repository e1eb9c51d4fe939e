package payload

import "encoding/json"

// The HTTP side of the contract: /healthz, the page's API (/api/v1/...)
// and its server-sent events.

// Health is the /healthz body.
type Health struct {
	Status  string   `json:"status"` // "ready" or "degraded"
	Reasons []string `json:"reasons"`
	Model   ModelRef `json:"model"`
	// Accelerator says what runs the model and, when it is not the one
	// model.accelerator asks for, why.
	Accelerator *AcceleratorStatus `json:"accelerator,omitempty"`
	// Embedding says where on-device learning's embedding comes from
	// (ModelInfo.Embedding): output 1, a classifier's last
	// FULLY_CONNECTED input, or none and why.
	Embedding string         `json:"embedding,omitempty"`
	MQTT      HealthMQTT     `json:"mqtt"`
	Cameras   []HealthCamera `json:"cameras"`
}

// HealthMQTT is the MQTT connection in Health.
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

// HealthCamera is one camera in Health.
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

// WebStatus is GET /api/v1/status: health, cameras, and the latest events.
type WebStatus struct {
	Device   string      `json:"device"`
	Name     string      `json:"name"`
	Version  string      `json:"version"`
	User     string      `json:"user,omitempty"`
	Health   Health      `json:"health"`
	Cameras  []WebCamera `json:"cameras"`
	Learning bool        `json:"learning"`
	TopK     int         `json:"top_k"`
	Events   []WebEvent  `json:"events"` // oldest first; predictions and learn progress excepted
	Model    WebModel    `json:"model"`
}

// WebModel is the running model, for the page's Model tab.
type WebModel struct {
	Name         string   `json:"name"`
	Version      string   `json:"version,omitempty"`
	SHA256       string   `json:"sha256"`
	Path         string   `json:"path"`
	Labels       []string `json:"labels"`
	Input        [3]int   `json:"input"` // height, width, channels
	EmbeddingDim int      `json:"embedding_dim"`
	// Previous is the file the rollback command goes back to ("" when
	// there is none).
	Previous string `json:"previous,omitempty"`
}

// WebCamera is a camera in WebStatus.
type WebCamera struct {
	ID       string `json:"id"`
	State    string `json:"state"` // the debounced label, "none" before one settles
	Stream   string `json:"stream"`
	Snapshot string `json:"snapshot"`
}

// WebSession is GET /api/v1/session: who is logged in, and the CSRF
// token the page sends with each state-changing request.
type WebSession struct {
	Auth bool   `json:"auth"` // whether users or tokens are configured
	User string `json:"user,omitempty"`
	CSRF string `json:"csrf,omitempty"`
}

// WebLabels is GET /api/v1/labels: the labels command's result, with
// each label's examples.
type WebLabels struct {
	LabelsResult
	Examples []WebLabelExamples `json:"examples"`
}

// WebLabelExamples are one label's stored examples, oldest first.
type WebLabelExamples struct {
	Label    string       `json:"label"`
	Examples []WebExample `json:"examples"`
}

// WebExample is one stored example; JPG is its thumbnail's URL, empty
// when it has none.
type WebExample struct {
	ID  string `json:"id"`
	JPG string `json:"jpg,omitempty"`
}

// UploadResult is the result of POST /api/v1/examples.
type UploadResult struct {
	Label   string   `json:"label"`
	Camera  string   `json:"camera"` // whose preprocessing (fit) the photos went through
	Added   int      `json:"added"`
	Dropped int      `json:"dropped"` // older examples dropped as the label filled up
	Total   int      `json:"total"`
	Files   []string `json:"files"`
}

// AcceleratorStatus says what runs the model, for /healthz: Requested is
// model.accelerator, InUse the engine running it ("cpu" for our kernels),
// Reason why it is not the one requested.
type AcceleratorStatus struct {
	Requested string `json:"requested"`
	InUse     string `json:"in_use"`
	Reason    string `json:"reason,omitempty"`
	// Preparing: the requested engine is being prepared in the background
	// (TensorRT builds its engine, minutes on a first start); our kernels
	// run the model meanwhile.
	Preparing bool `json:"preparing,omitempty"`
}

// WebEvent is one server-sent event, as /api/v1/status lists the recent
// ones.
type WebEvent struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}
