package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/shortcut-edge/shortcut/agent/classify"
	"github.com/shortcut-edge/shortcut/agent/decide"
	"github.com/shortcut-edge/shortcut/agent/head"
	"github.com/shortcut-edge/shortcut/resnet/armnn"
	"github.com/shortcut-edge/shortcut/resnet/onnxrt"
)

// Config is the agent's whole configuration: one YAML file, documented key
// by key (with defaults) in configs/agent.yaml. Defaults returns the values
// used for keys the file leaves out.
type Config struct {
	Device         DeviceConfig   `yaml:"device"`
	Model          ModelConfig    `yaml:"model"`
	Cameras        []CameraConfig `yaml:"cameras"`
	Decision       DecisionConfig `yaml:"decision"`
	MQTT           MQTTConfig     `yaml:"mqtt"`
	EmbeddedBroker BrokerConfig   `yaml:"embedded_broker"`
	HTTP           HTTPConfig     `yaml:"http"`
	Learning       LearningConfig `yaml:"learning"`
	GPIO           GPIOConfig     `yaml:"gpio"`
	Log            LogConfig      `yaml:"log"`

	// src says where the values came from (Parse): errors found
	// later, such as a model.path that does not load, name the file and
	// the key's line. nil for a Config made in Go.
	src *configSource
}

// configSource is where a Config was read from.
type configSource struct {
	file  string
	lines map[string]int    // key path ("cameras[1].fps") -> line of the key
	flags map[string]string // key path -> the command-line flag that replaced it
}

// at is the prefix of a message about key: "line 7: ", "(from --model) ",
// or "" when the key's place is unknown (a default, a Config made in Go).
func (s *configSource) at(key string) string {
	switch {
	case s == nil:
		return ""
	case s.flags[key] != "":
		return "(from " + s.flags[key] + ") "
	case s.lines[key] > 0:
		return fmt.Sprintf("line %d: ", s.lines[key])
	}
	return ""
}

// OverrideModelPath sets model.path from a command-line flag (cmd/agent's
// --model); errors about the model then name the flag, not a line of the
// file.
func (c *Config) OverrideModelPath(path, flag string) {
	c.Model.Path = path
	if c.src == nil {
		c.src = &configSource{}
	}
	if c.src.flags == nil {
		c.src.flags = map[string]string{}
	}
	c.src.flags["model.path"] = flag
}

// DeviceConfig names this board in topics and in Home Assistant.
type DeviceConfig struct {
	// ID appears in every topic; empty means the host name.
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// Groups are fleet groups: the agent also takes the model and rollback
	// commands sent to <prefix>/group/<group>/cmd/<name> for each of them.
	Groups []string `yaml:"groups"`
}

// ModelConfig selects the classifier.
type ModelConfig struct {
	Path string `yaml:"path"`
	// Watch polls Path every WatchInterval and reloads it when it changes.
	Watch         bool          `yaml:"watch"`
	WatchInterval time.Duration `yaml:"watch_interval"`
	// HeadVersion is reported in payloads while no head trained on the
	// device is in use; a trained head reports its own version.
	HeadVersion string `yaml:"head_version"`
	TopK        int    `yaml:"top_k"`
	// Accelerator: "cpu" (our kernels), "armnn-cpu" or "armnn-gpu" (Arm NN,
	// in binaries built with -tags armnn), "onnxruntime-cpu",
	// "onnxruntime-cuda" or "onnxruntime-tensorrt" (ONNX Runtime, in binaries
	// built with -tags onnxruntime); falls back to "cpu" with a warning.
	Accelerator string `yaml:"accelerator"`
	// OnnxRuntimeLibrary is the libonnxruntime.so the onnxruntime-*
	// accelerators load (JetPack's on a Jetson).
	OnnxRuntimeLibrary string `yaml:"onnxruntime_library"`
	// Updates bounds the model command (update.go): downloads of a new
	// model over HTTP(S) into the state directory.
	Updates UpdatesConfig `yaml:"updates"`
}

// UpdatesConfig bounds model downloads.
type UpdatesConfig struct {
	// MaxBytes is the largest model a model command may announce.
	MaxBytes int64 `yaml:"max_bytes"`
	// StallTimeout ends a download attempt that received nothing this long;
	// the next attempt resumes where it stopped.
	StallTimeout time.Duration `yaml:"stall_timeout"`
	// Timeout bounds a whole download, every attempt included.
	Timeout time.Duration `yaml:"timeout"`
	// Attempts is how many times a download is tried (each later one
	// resumes with an HTTP Range request).
	Attempts int `yaml:"attempts"`
}

// CameraConfig is one pipeline.
type CameraConfig struct {
	ID string `yaml:"id"`
	// Source is "synthetic", "images:<folder or glob>[?loop=1]", or (when
	// the binary is built with the camera package, as cmd/agent is) any
	// camera source string: a V4L2 index or /dev/videoN, file:..., rtsp://,
	// http(s):// MJPEG, gst:... (see camera/README.md).
	Source string `yaml:"source"`
	// FPS caps frames taken from the source per second; 0 takes every frame.
	FPS float64 `yaml:"fps"`
	// Queue is the capacity of each channel between stages. When the model
	// is slower than the source, frames beyond it are dropped (and counted).
	Queue int `yaml:"queue"`
	// Preprocess says how a frame becomes the model's input.
	Preprocess PreprocessConfig `yaml:"preprocess"`
}

func (c *CameraConfig) setDefaults() {
	*c = CameraConfig{FPS: 5, Queue: 2, Preprocess: PreprocessConfig{Fit: FitCrop, ROI: []int{}, Mean: []float64{}, Std: []float64{}}}
}

// Ways to bring a frame to the model's input size (PreprocessConfig.Fit).
const (
	FitCrop      = "crop"      // scale the shorter side to the input, cut the centre
	FitLetterbox = "letterbox" // scale the longer side to the input, pad the rest black
	FitStretch   = "stretch"   // scale each side on its own (distorts)
)

// PreprocessConfig turns a frame into the model's input: the region of
// interest is cut out, brought to the model's size by Fit, and each channel
// normalized as (pixel/255 - mean) / std.
type PreprocessConfig struct {
	// Fit is crop (also when empty), letterbox or stretch.
	Fit string `yaml:"fit"`
	// ROI is [x0, y0, x1, y1] in frame pixels (clipped to the frame);
	// empty uses the whole frame.
	ROI []int `yaml:"roi"`
	// Mean and Std override the model's metadata: one value for every
	// channel, or one per channel (R, G, B). Empty uses the model's.
	Mean []float64 `yaml:"mean"`
	Std  []float64 `yaml:"std"`
}

// LearningConfig is on-device learning: examples taught over MQTT (or the
// GPIO button) train a new head for the model's embedding; agent/LEARNING.md
// walks through it.
type LearningConfig struct {
	// Enabled subscribes to <prefix>/<device>/cmd/+ and keeps state in
	// StateDir. Learning needs a model with an embedding output (output 1).
	Enabled bool `yaml:"enabled"`
	// StateDir holds the examples, the trained head and exports. Empty:
	// $STATE_DIRECTORY (set by systemd's StateDirectory=), else
	// /var/lib/shortcut.
	StateDir string `yaml:"state_dir"`
	// MaxCount is the most examples one learn command may ask for.
	MaxCount int `yaml:"max_count"`
	// ExamplesPerLabel is how many examples a label keeps; the oldest go
	// first.
	ExamplesPerLabel int `yaml:"examples_per_label"`
	// MaxLabels bounds the labels with stored examples.
	MaxLabels int `yaml:"max_labels"`
	// ThumbnailSize is the longest side, in pixels, of the JPEG kept with
	// each example (made from the model's input); 0 keeps none.
	ThumbnailSize int `yaml:"thumbnail_size"`
}

// GPIOConfig drives pins through periph.io: a button to teach and train,
// LEDs for the agent's state, and outputs switched by detections. Pin names
// are the board's (GPIO17, P1_11, ...); every name is checked at start.
type GPIOConfig struct {
	Button  ButtonConfig   `yaml:"button"`
	LEDs    LEDConfig      `yaml:"leds"`
	Outputs []OutputConfig `yaml:"outputs"`
}

// ButtonConfig is a push button. A short press captures one example of
// Label from Camera; a press held at least LongPress trains the head.
type ButtonConfig struct {
	// Pin is the input pin; empty means no button.
	Pin    string `yaml:"pin"`
	Label  string `yaml:"label"`
	Camera string `yaml:"camera"` // empty: the first camera
	// LongPress is the shortest press that trains.
	LongPress time.Duration `yaml:"long_press"`
	// ActiveLow: pressed pulls the pin low (a button to ground with the
	// internal pull-up, the usual wiring).
	ActiveLow bool `yaml:"active_low"`
	// Pull is up, down or none.
	Pull string `yaml:"pull"`
	// Debounce ignores edges closer together than this.
	Debounce time.Duration `yaml:"debounce"`
}

// LEDConfig names output pins for status LEDs (lit = high); empty: none.
type LEDConfig struct {
	Ready     string `yaml:"ready"`     // lit while /healthz is ready
	Detecting string `yaml:"detecting"` // lit while a camera's state is a label
	Error     string `yaml:"error"`     // lit while /healthz is degraded
}

// OutputConfig drives a pin from detections: it goes active when Label is
// the top class with a score of at least MinScore, and back after Hold
// without such a frame.
type OutputConfig struct {
	Pin      string        `yaml:"pin"`
	Label    string        `yaml:"label"`
	MinScore float64       `yaml:"min_score"`
	Hold     time.Duration `yaml:"hold"`
	Camera   string        `yaml:"camera"` // empty: any camera
	// ActiveLow drives the pin low when active (relay boards often want it).
	ActiveLow bool `yaml:"active_low"`
}

func (o *OutputConfig) setDefaults() { *o = OutputConfig{MinScore: 0.8, Hold: 5 * time.Second} }

// DecisionConfig turns per-frame scores into a stable state (package
// agent/decide, the decision stage).
type DecisionConfig = decide.Config

// MQTTConfig is the connection to the broker.
type MQTTConfig struct {
	// Broker is a URL (tcp://host:1883, ssl://host:8883, ws://...); empty
	// means the embedded broker.
	Broker   string `yaml:"broker"`
	ClientID string `yaml:"client_id"`
	Username string `yaml:"username"`
	// Password may instead come from SHORTCUT_MQTT_PASSWORD.
	Password       string          `yaml:"password"`
	QoS            int             `yaml:"qos"`
	TopicPrefix    string          `yaml:"topic_prefix"`
	KeepAlive      time.Duration   `yaml:"keepalive"`
	ConnectTimeout time.Duration   `yaml:"connect_timeout"`
	ReconnectMin   time.Duration   `yaml:"reconnect_min"`
	ReconnectMax   time.Duration   `yaml:"reconnect_max"`
	TLS            TLSConfig       `yaml:"tls"`
	Predictions    PredictionsConf `yaml:"predictions"`
	Discovery      DiscoveryConfig `yaml:"discovery"`
	Events         EventsConfig    `yaml:"events"`
	Snapshots      SnapshotsConfig `yaml:"snapshots"`
}

// TLSConfig secures the broker connection.
type TLSConfig struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// PredictionsConf controls the per-frame prediction messages.
type PredictionsConf struct {
	Enabled bool `yaml:"enabled"`
	// MaxRate is messages per second per camera; 0 publishes every frame.
	MaxRate float64 `yaml:"max_rate"`
}

// DiscoveryConfig controls Home Assistant MQTT discovery.
type DiscoveryConfig struct {
	Enabled bool   `yaml:"enabled"`
	Prefix  string `yaml:"prefix"`
	// BinarySensors are labels that get a binary_sensor per camera, on
	// while the label is the camera's state.
	BinarySensors []string `yaml:"binary_sensors"`
}

// EventsConfig controls the per-camera events (<prefix>/<device>/<camera>/events):
// one event per stretch of time a label is a camera's debounced state.
type EventsConfig struct {
	Enabled bool `yaml:"enabled"`
	// UpdateInterval is the least time between two messages of one event
	// (new, then each update): an update says the label's top score rose.
	UpdateInterval time.Duration `yaml:"update_interval"`
}

// SnapshotsConfig controls the JPEG pictures of events, retained on
// <prefix>/<device>/<camera>/snapshot (Home Assistant's image entity).
type SnapshotsConfig struct {
	Enabled bool `yaml:"enabled"`
	// MaxBytes caps a snapshot: a bigger picture is sent at a lower JPEG
	// quality, then at half its size, until it fits.
	MaxBytes int `yaml:"max_bytes"`
	// MinInterval is the least time between two snapshots of a camera.
	MinInterval time.Duration `yaml:"min_interval"`
}

// BrokerConfig is the embedded broker, used when mqtt.broker is empty.
type BrokerConfig struct {
	Address string `yaml:"address"`
}

// HTTPConfig is the health, metrics and snapshot server.
type HTTPConfig struct {
	// Address to listen on; empty disables the server.
	Address         string `yaml:"address"`
	SnapshotQuality int    `yaml:"snapshot_quality"`
	// ReadTimeout bounds reading one request, headers and body.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// WriteTimeout bounds writing one response; a stream bounds each of
	// its frames by it instead.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// MaxConnections caps the open connections; streams may hold half.
	MaxConnections int `yaml:"max_connections"`
	// Auth guards the web page and the API (webauth.go).
	Auth AuthConfig `yaml:"auth"`
	// Insecure lets the server listen beyond loopback without any user
	// or token.
	Insecure bool `yaml:"insecure"`
}

// LogConfig selects log output.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Defaults is the configuration every key falls back to; configs/agent.yaml
// writes the same values out.
func Defaults() Config {
	return Config{
		Device: DeviceConfig{Groups: []string{}},
		Model: ModelConfig{Path: "/var/lib/shortcut/model.tflite", Watch: true, WatchInterval: 5 * time.Second, TopK: 3, Accelerator: "cpu",
			Updates: UpdatesConfig{MaxBytes: 256 << 20, StallTimeout: 30 * time.Second, Timeout: 30 * time.Minute, Attempts: 3}},
		Decision: DecisionConfig{Threshold: 0.6, Frames: 3, Release: 0.4},
		MQTT: MQTTConfig{
			QoS: 1, TopicPrefix: "shortcut", KeepAlive: 30 * time.Second, ConnectTimeout: 10 * time.Second,
			ReconnectMin: time.Second, ReconnectMax: time.Minute,
			Predictions: PredictionsConf{Enabled: true, MaxRate: 1},
			Discovery:   DiscoveryConfig{Enabled: true, Prefix: "homeassistant", BinarySensors: []string{}},
			Events:      EventsConfig{Enabled: true, UpdateInterval: 2 * time.Second},
			Snapshots:   SnapshotsConfig{Enabled: true, MaxBytes: 256 << 10, MinInterval: 2 * time.Second},
		},
		EmbeddedBroker: BrokerConfig{Address: "127.0.0.1:1883"},
		HTTP: HTTPConfig{Address: "127.0.0.1:8080", SnapshotQuality: 80, ReadTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second, WriteTimeout: 10 * time.Second, MaxConnections: 64,
			Auth: AuthConfig{Users: []UserConfig{}, Tokens: []TokenConfig{}, SessionTTL: 12 * time.Hour}},
		Learning: LearningConfig{Enabled: true, MaxCount: 100, ExamplesPerLabel: 100, MaxLabels: 64, ThumbnailSize: 96},
		GPIO: GPIOConfig{Button: ButtonConfig{LongPress: 2 * time.Second, ActiveLow: true, Pull: "up", Debounce: 30 * time.Millisecond},
			Outputs: []OutputConfig{}},
		Log: LogConfig{Level: "info", Format: "text"},
	}
}

// Environment variables that override the file, so that secrets need not be
// written into it.
const (
	EnvMQTTPassword = "SHORTCUT_MQTT_PASSWORD"
	EnvMQTTUsername = "SHORTCUT_MQTT_USERNAME"
)

// FieldError is one problem in a configuration, at a key path such as
// "cameras[1].fps".
type FieldError struct {
	Path string
	Msg  string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Msg }

// Error lists every problem found in a configuration.
type Error struct {
	File   string
	Errors []FieldError
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "config %q: %d error(s):", e.File, len(e.Errors))
	for _, fe := range e.Errors {
		b.WriteString("\n  " + fe.Error())
	}
	return b.String()
}

// Options say how a configuration is read. The zero value reads the
// process environment and checks camera sources with CheckSource.
type Options struct {
	// Getenv supplies the environment overrides (nil: os.Getenv).
	Getenv func(string) string
	// CheckSource accepts or refuses camera source strings (nil:
	// CheckSource; cmd/agent passes the camera package's parser).
	CheckSource SourceChecker
}

// Load reads path, applies defaults and environment overrides, and
// validates the result. On failure it returns a *Error listing every
// problem at once (or a plain error when the file cannot be read).
func Load(path string, opt Options) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data, opt)
}

// Parse is Load on bytes; name is the file name errors give.
func Parse(name string, data []byte, opt Options) (Config, error) {
	getenv := opt.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg := Defaults()
	var errs []FieldError
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, &Error{File: name, Errors: []FieldError{{Path: "(file)", Msg: "not valid YAML: " + err.Error()}}}
	}
	src := &configSource{file: name, lines: map[string]int{}}
	if len(doc.Content) > 0 {
		decodeNode("", doc.Content[0], reflect.ValueOf(&cfg).Elem(), &errs, src.lines)
	}
	if v := getenv(EnvMQTTPassword); v != "" {
		cfg.MQTT.Password = v
	}
	if v := getenv(EnvMQTTUsername); v != "" {
		cfg.MQTT.Username = v
	}
	if cfg.Device.ID == "" {
		if h, err := os.Hostname(); err == nil {
			cfg.Device.ID = topicSafe(h)
		}
	}
	for _, fe := range cfg.Validate(opt.CheckSource) {
		if !strings.HasPrefix(fe.Msg, "line ") {
			fe.Msg = src.at(fe.Path) + fe.Msg
		}
		errs = append(errs, fe)
	}
	cfg.src = src
	if len(errs) > 0 {
		return cfg, &Error{File: name, Errors: errs}
	}
	return cfg, nil
}

type defaulter interface{ setDefaults() }

// decodeNode overlays the YAML node n onto v (which already holds
// defaults), walking structs by their yaml tags so that every error carries
// its key path, and unknown and repeated keys are reported rather than
// ignored (yaml.v3 lets the last of two equal keys win silently when it
// decodes into a struct, and does not look at all when it builds a Node
// tree, as here). lines gets the line of every key path it meets.
func decodeNode(path string, n *yaml.Node, v reflect.Value, errs *[]FieldError, lines map[string]int) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	at := func(msg string, args ...any) {
		p := path
		if p == "" {
			p = "(top level)"
		}
		*errs = append(*errs, FieldError{Path: p, Msg: fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(msg, args...)})
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return
			}
			at("want a mapping of keys, got %s", describe(n))
			return
		}
		t := v.Type()
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i].Value, n.Content[i+1]
			line := n.Content[i].Line
			sub := joinPath(path, key)
			if first, dup := lines[sub]; dup {
				*errs = append(*errs, FieldError{Path: sub, Msg: fmt.Sprintf("duplicate key (lines %d and %d); a key may appear once: remove one", first, line)})
				continue
			}
			lines[sub] = line
			f := -1
			for j := 0; j < t.NumField(); j++ {
				if name := strings.Split(t.Field(j).Tag.Get("yaml"), ",")[0]; name == key && name != "" && name != "-" {
					f = j
				}
			}
			if f < 0 {
				*errs = append(*errs, FieldError{Path: sub, Msg: fmt.Sprintf("line %d: unknown key (see configs/agent.yaml for the keys)", line)})
				continue
			}
			decodeNode(sub, val, v.Field(f), errs, lines)
		}
	case reflect.Slice:
		if n.Tag == "!!null" {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		if n.Kind != yaml.SequenceNode {
			at("want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if d, ok := s.Index(i).Addr().Interface().(defaulter); ok {
				d.setDefaults()
			}
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = item.Line
			decodeNode(p, item, s.Index(i), errs, lines)
		}
		v.Set(s)
	default:
		if n.Kind != yaml.ScalarNode {
			at("want a single value (%s), got %s", typeName(v.Type()), describe(n))
			return
		}
		p := reflect.New(v.Type())
		if err := n.Decode(p.Interface()); err != nil {
			at("%q is not a valid %s", n.Value, typeName(v.Type()))
			return
		}
		v.Set(p.Elem())
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

func typeName(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		return "duration such as 500ms, 5s or 1m"
	case t.Kind() == reflect.Bool:
		return "boolean (true or false)"
	case t.Kind() == reflect.Int:
		return "integer"
	case t.Kind() == reflect.Float64:
		return "number"
	}
	return t.Kind().String()
}

// Validate checks values (not types, which decoding checked) and returns
// every problem found, section by section. Camera sources are checked with
// check (nil: CheckSource; cmd/agent passes the camera package's parser).
func (c *Config) Validate(check SourceChecker) []FieldError {
	if check == nil {
		check = CheckSource
	}
	var e fieldErrors
	c.validateDevice(&e)
	c.validateModel(&e)
	c.validateCameras(&e, check)
	c.validateDecision(&e)
	c.validateMQTT(&e)
	c.validateHTTP(&e)
	e.add(c.Learning.validate()...)
	e.add(c.GPIO.validate(c.Cameras)...)
	if c.GPIO.Button.Pin != "" && !c.Learning.Enabled {
		e.bad("gpio.button.pin", "the button teaches and trains: it needs learning.enabled: true")
	}
	c.validateLog(&e)
	return e
}

// fieldErrors collects a configuration's problems, each with its key path.
type fieldErrors []FieldError

func (e *fieldErrors) bad(path, format string, args ...any) {
	*e = append(*e, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (e *fieldErrors) add(fes ...FieldError) { *e = append(*e, fes...) }

func (c *Config) validateDevice(e *fieldErrors) {
	if c.Device.ID == "" {
		e.bad("device.id", "is empty and the host name is unknown; set an id such as \"kitchen\"")
	} else if topicSafe(c.Device.ID) != c.Device.ID {
		e.bad("device.id", "%q may hold only letters, digits, '-' and '_' (it is part of MQTT topics)", c.Device.ID)
	}
	seen := map[string]bool{}
	for i, g := range c.Device.Groups {
		switch {
		case g == "" || topicSafe(g) != g || len(g) > 64:
			e.bad(fmt.Sprintf("device.groups[%d]", i), "%q: want 1 to 64 letters, digits, '-' and '_' (it is part of MQTT topics)", g)
		case seen[g]:
			e.bad(fmt.Sprintf("device.groups[%d]", i), "%q is listed twice", g)
		}
		seen[g] = true
	}
}

func (c *Config) validateModel(e *fieldErrors) {
	if c.Model.Path == "" {
		e.bad("model.path", "is empty; set the .tflite model to run")
	}
	if _, ok, err := onnxrt.ParseAccelerator(c.Model.Accelerator); err != nil {
		e.bad("model.accelerator", "%v", err)
	} else if ok {
		if c.Model.OnnxRuntimeLibrary == "" {
			e.bad("model.onnxruntime_library", "is empty; %s needs the path of libonnxruntime.so (JetPack's on a Jetson)", c.Model.Accelerator)
		}
	} else if _, err := armnn.Backends(c.Model.Accelerator); err != nil {
		e.bad("model.accelerator", "%v; or onnxruntime-cpu, onnxruntime-cuda, onnxruntime-tensorrt", err)
	}
	if c.Model.Watch && c.Model.WatchInterval <= 0 {
		e.bad("model.watch_interval", "is %v; want a positive duration such as 5s", c.Model.WatchInterval)
	}
	if c.Model.TopK < 1 || c.Model.TopK > 100 {
		e.bad("model.top_k", "is %d; want 1 to 100", c.Model.TopK)
	}
	u := c.Model.Updates
	if u.MaxBytes < 1 {
		e.bad("model.updates.max_bytes", "is %d; want the largest model size to accept, such as 268435456 (256 MiB)", u.MaxBytes)
	}
	if u.StallTimeout <= 0 {
		e.bad("model.updates.stall_timeout", "is %v; want a positive duration such as 30s", u.StallTimeout)
	}
	if u.Timeout <= 0 {
		e.bad("model.updates.timeout", "is %v; want a positive duration such as 30m", u.Timeout)
	}
	if u.Attempts < 1 || u.Attempts > 100 {
		e.bad("model.updates.attempts", "is %d; want 1 to 100", u.Attempts)
	}
}

func (c *Config) validateCameras(e *fieldErrors, check SourceChecker) {
	if len(c.Cameras) == 0 {
		e.bad("cameras", "is empty; add at least one camera with an id and a source")
	}
	seen := map[string]int{}
	for i, cam := range c.Cameras {
		p := fmt.Sprintf("cameras[%d]", i)
		switch {
		case cam.ID == "":
			e.bad(p+".id", "is empty; give every camera an id such as \"front\"")
		case topicSafe(cam.ID) != cam.ID:
			e.bad(p+".id", "%q may hold only letters, digits, '-' and '_' (it is part of MQTT topics)", cam.ID)
		default:
			if j, dup := seen[cam.ID]; dup {
				e.bad(p+".id", "%q is also the id of cameras[%d]; ids must be unique", cam.ID, j)
			}
			seen[cam.ID] = i
		}
		if err := check(cam.Source); err != nil {
			e.bad(p+".source", "%v", err)
		}
		e.add(cam.Preprocess.validate(p + ".preprocess")...)
		if cam.FPS < 0 || cam.FPS > 1000 {
			e.bad(p+".fps", "is %g; want 0 (no limit) to 1000", cam.FPS)
		}
		if cam.Queue < 1 || cam.Queue > 64 {
			e.bad(p+".queue", "is %d; want 1 to 64", cam.Queue)
		}
	}
}

func (c *Config) validateDecision(e *fieldErrors) {
	d := c.Decision
	if d.Threshold <= 0 || d.Threshold > 1 {
		e.bad("decision.threshold", "is %g; want a score in (0, 1]", d.Threshold)
	}
	if d.Release < 0 || d.Release > d.Threshold {
		e.bad("decision.release", "is %g; want 0 to decision.threshold (%g)", d.Release, d.Threshold)
	}
	if d.Frames < 1 || d.Frames > 1000 {
		e.bad("decision.frames", "is %d; want 1 to 1000", d.Frames)
	}
}

// validateMQTT checks mqtt and, without a broker, embedded_broker.
func (c *Config) validateMQTT(e *fieldErrors) {
	m := c.MQTT
	if m.Broker != "" {
		u, err := url.Parse(m.Broker)
		switch {
		case err != nil:
			e.bad("mqtt.broker", "%q is not a URL: %v", m.Broker, err)
		case !map[string]bool{"tcp": true, "mqtt": true, "ssl": true, "tls": true, "mqtts": true, "ws": true, "wss": true}[u.Scheme]:
			e.bad("mqtt.broker", "%q: scheme %q is not one of tcp, mqtt, ssl, tls, mqtts, ws, wss (write e.g. tcp://host:1883)", m.Broker, u.Scheme)
		case u.Host == "":
			e.bad("mqtt.broker", "%q has no host (write e.g. tcp://host:1883)", m.Broker)
		}
	}
	if m.QoS < 0 || m.QoS > 2 {
		e.bad("mqtt.qos", "is %d; want 0, 1 or 2", m.QoS)
	}
	if m.TopicPrefix == "" || strings.ContainsAny(m.TopicPrefix, "#+") || strings.HasPrefix(m.TopicPrefix, "/") || strings.HasSuffix(m.TopicPrefix, "/") {
		e.bad("mqtt.topic_prefix", "%q: want a non-empty topic without wildcards (#, +) or leading/trailing '/'", m.TopicPrefix)
	}
	for _, dd := range []struct {
		path string
		v    time.Duration
	}{{"mqtt.keepalive", m.KeepAlive}, {"mqtt.connect_timeout", m.ConnectTimeout}, {"mqtt.reconnect_min", m.ReconnectMin}, {"mqtt.reconnect_max", m.ReconnectMax}} {
		if dd.v <= 0 {
			e.bad(dd.path, "is %v; want a positive duration such as 10s", dd.v)
		}
	}
	if m.ReconnectMax < m.ReconnectMin {
		e.bad("mqtt.reconnect_max", "is %v, below mqtt.reconnect_min (%v)", m.ReconnectMax, m.ReconnectMin)
	}
	if m.TLS.Enabled {
		n := len(*e)
		for _, f := range []struct{ path, file string }{{"mqtt.tls.ca_file", m.TLS.CAFile}, {"mqtt.tls.cert_file", m.TLS.CertFile}, {"mqtt.tls.key_file", m.TLS.KeyFile}} {
			if f.file == "" {
				continue
			}
			if _, err := os.Stat(f.file); err != nil {
				e.bad(f.path, "%v", err)
			}
		}
		if (m.TLS.CertFile == "") != (m.TLS.KeyFile == "") {
			e.bad("mqtt.tls", "cert_file and key_file must be set together (client certificate)")
		}
		if len(*e) == n {
			// The files are there; do they hold a CA certificate and a
			// matching certificate and key? (The agent would find out
			// only when it starts.)
			var fe FieldError
			if _, err := LoadTLS(m.TLS); errors.As(err, &fe) {
				e.add(fe)
			} else if err != nil {
				e.bad("mqtt.tls", "%v", err)
			}
		}
	}
	if m.Predictions.MaxRate < 0 {
		e.bad("mqtt.predictions.max_rate", "is %g; want 0 (every frame) or a positive rate", m.Predictions.MaxRate)
	}
	if m.Events.UpdateInterval < 0 {
		e.bad("mqtt.events.update_interval", "is %v; want 0 (every rise of the top score) or more", m.Events.UpdateInterval)
	}
	if m.Snapshots.Enabled && m.Snapshots.MaxBytes < MinSnapshotBytes {
		e.bad("mqtt.snapshots.max_bytes", "is %d; want at least %d (a small JPEG still needs its headers)", m.Snapshots.MaxBytes, MinSnapshotBytes)
	}
	if m.Snapshots.MinInterval < 0 {
		e.bad("mqtt.snapshots.min_interval", "is %v; want 0 (no limit) or more", m.Snapshots.MinInterval)
	}
	if m.Discovery.Enabled && (m.Discovery.Prefix == "" || strings.ContainsAny(m.Discovery.Prefix, "#+")) {
		e.bad("mqtt.discovery.prefix", "%q: want a topic prefix such as homeassistant", m.Discovery.Prefix)
	}
	slugs := map[string]string{}
	for i, l := range m.Discovery.BinarySensors {
		p := fmt.Sprintf("mqtt.discovery.binary_sensors[%d]", i)
		slug := EntitySlug(l)
		if slug == "" {
			e.bad(p, "%q: want a label the model or a taught head predicts, with at least one letter or digit", l)
		} else if other, ok := slugs[slug]; ok {
			e.bad(p, "%q names the same entity as %q (both become %q); list each label once", l, other, slug)
		} else {
			slugs[slug] = l
		}
	}
	if m.Broker == "" {
		if _, _, err := net.SplitHostPort(c.EmbeddedBroker.Address); err != nil {
			e.bad("embedded_broker.address", "%q is not host:port: %v", c.EmbeddedBroker.Address, err)
		}
	}
}

func (c *Config) validateHTTP(e *fieldErrors) {
	if c.HTTP.Address != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.Address); err != nil {
			e.bad("http.address", "%q is not host:port: %v", c.HTTP.Address, err)
		}
	}
	if c.HTTP.SnapshotQuality < 1 || c.HTTP.SnapshotQuality > 100 {
		e.bad("http.snapshot_quality", "is %d; want 1 to 100", c.HTTP.SnapshotQuality)
	}
	for _, d := range []struct {
		path string
		v    time.Duration
	}{{"http.read_timeout", c.HTTP.ReadTimeout}, {"http.idle_timeout", c.HTTP.IdleTimeout}, {"http.write_timeout", c.HTTP.WriteTimeout}} {
		if d.v <= 0 {
			e.bad(d.path, "is %v; want a positive duration such as 10s", d.v)
		}
	}
	if c.HTTP.MaxConnections < 2 {
		e.bad("http.max_connections", "is %d; want at least 2 (a stream may hold half of them)", c.HTTP.MaxConnections)
	}
	c.validateAuth(e)
}

func (c *Config) validateLog(e *fieldErrors) {
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		e.bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		e.bad("log.format", "%q: want text or json", c.Log.Format)
	}
}

// topicSafe maps s to the characters allowed in ids.
func topicSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return '_'
	}, s)
}

func (p PreprocessConfig) validate(path string) []FieldError {
	var errs []FieldError
	bad := func(key, format string, args ...any) {
		errs = append(errs, FieldError{Path: path + "." + key, Msg: fmt.Sprintf(format, args...)})
	}
	switch p.Fit {
	case "", FitCrop, FitLetterbox, FitStretch: // "" (a Config made in Go) is crop
	default:
		bad("fit", "%q: want crop, letterbox or stretch", p.Fit)
	}
	if n := len(p.ROI); n != 0 {
		if n != 4 {
			bad("roi", "has %d values; want [x0, y0, x1, y1] in frame pixels, or [] for the whole frame", n)
		} else if r := p.ROI; r[0] < 0 || r[1] < 0 || r[2] <= r[0] || r[3] <= r[1] {
			bad("roi", "%v: want 0 <= x0 < x1 and 0 <= y0 < y1", r)
		}
	}
	for _, v := range []struct {
		key  string
		vals []float64
	}{{"mean", p.Mean}, {"std", p.Std}} {
		if n := len(v.vals); n != 0 && n != 1 && n != 3 {
			bad(v.key, "has %d values; want none (the model's), one, or three (R, G, B)", n)
		}
		for _, x := range v.vals {
			if math.IsNaN(x) || math.IsInf(x, 0) || (v.key == "std" && x <= 0) {
				bad(v.key, "holds %v; want finite values (std above 0)", x)
				break
			}
		}
	}
	return errs
}

func (l LearningConfig) validate() []FieldError {
	var errs []FieldError
	bad := func(key, format string, args ...any) {
		errs = append(errs, FieldError{Path: "learning." + key, Msg: fmt.Sprintf(format, args...)})
	}
	if l.StateDir != "" && !filepath.IsAbs(l.StateDir) {
		bad("state_dir", "%q: want an absolute path, or empty for $STATE_DIRECTORY or /var/lib/shortcut", l.StateDir)
	}
	if l.ExamplesPerLabel < 1 || l.ExamplesPerLabel > head.MaxPerLabelLimit {
		bad("examples_per_label", "is %d; want 1 to %d", l.ExamplesPerLabel, head.MaxPerLabelLimit)
	}
	if l.MaxCount < 1 || l.MaxCount > l.ExamplesPerLabel {
		bad("max_count", "is %d; want 1 to learning.examples_per_label (%d)", l.MaxCount, l.ExamplesPerLabel)
	}
	if l.MaxLabels < 1 || l.MaxLabels > head.MaxLabelsLimit {
		bad("max_labels", "is %d; want 1 to %d", l.MaxLabels, head.MaxLabelsLimit)
	}
	if l.ThumbnailSize < 0 || l.ThumbnailSize > 512 {
		bad("thumbnail_size", "is %d; want 0 (no thumbnails) to 512 pixels", l.ThumbnailSize)
	}
	return errs
}

func (g GPIOConfig) validate(cams []CameraConfig) []FieldError {
	var errs []FieldError
	bad := func(path, format string, args ...any) {
		errs = append(errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	hasCamera := func(id string) bool {
		for _, c := range cams {
			if c.ID == id {
				return true
			}
		}
		return false
	}
	pins := map[string]string{} // pin name -> the key that uses it
	usePin := func(path, name string) {
		if name == "" {
			return
		}
		if strings.TrimSpace(name) != name || strings.ContainsAny(name, " \t\n") {
			bad(path, "%q: a pin name has no spaces (e.g. GPIO17)", name)
			return
		}
		if other, dup := pins[name]; dup {
			bad(path, "pin %q is also used by %s; a pin drives one thing", name, other)
			return
		}
		pins[name] = path
	}
	b := g.Button
	usePin("gpio.button.pin", b.Pin)
	if b.Pin != "" {
		if err := configLabel(b.Label); err != nil {
			bad("gpio.button.label", "%v (a short press teaches this label)", err)
		}
		if b.Camera != "" && !hasCamera(b.Camera) {
			bad("gpio.button.camera", "%q is not the id of a camera", b.Camera)
		}
		if b.LongPress <= 0 {
			bad("gpio.button.long_press", "is %v; want a positive duration such as 2s", b.LongPress)
		}
		if b.Debounce < 0 || b.Debounce >= b.LongPress {
			bad("gpio.button.debounce", "is %v; want 0 to below long_press (%v)", b.Debounce, b.LongPress)
		}
	}
	switch b.Pull {
	case "up", "down", "none":
	default:
		bad("gpio.button.pull", "%q: want up, down or none", b.Pull)
	}
	usePin("gpio.leds.ready", g.LEDs.Ready)
	usePin("gpio.leds.detecting", g.LEDs.Detecting)
	usePin("gpio.leds.error", g.LEDs.Error)
	for i, o := range g.Outputs {
		p := fmt.Sprintf("gpio.outputs[%d]", i)
		if o.Pin == "" {
			bad(p+".pin", "is empty; name the output pin (e.g. GPIO27)")
		}
		usePin(p+".pin", o.Pin)
		if err := configLabel(o.Label); err != nil {
			bad(p+".label", "%v", err)
		}
		if o.MinScore <= 0 || o.MinScore > 1 || math.IsNaN(o.MinScore) {
			bad(p+".min_score", "is %g; want a score in (0, 1]", o.MinScore)
		}
		if o.Hold < 0 {
			bad(p+".hold", "is %v; want 0 or a positive duration", o.Hold)
		}
		if o.Camera != "" && !hasCamera(o.Camera) {
			bad(p+".camera", "%q is not the id of a camera", o.Camera)
		}
	}
	return errs
}

// configLabel checks a label the configuration names without the model at
// hand: a label that fails head.ValidateLabel may still be one of the
// model's own ("T-shirt/top"), which checkAgainstModel decides once the
// model is loaded. Only what no label can be (empty, not UTF-8) fails here.
func configLabel(label string) error {
	err := head.ValidateLabel(label)
	if err != nil && head.CheckLabel(label) == nil {
		return nil
	}
	return err
}

// gpioLabels lists the labels the configuration names, by key path.
func (c *Config) gpioLabels() (paths, labels []string) {
	if c.GPIO.Button.Pin != "" {
		paths, labels = append(paths, "gpio.button.label"), append(labels, c.GPIO.Button.Label)
	}
	for i, o := range c.GPIO.Outputs {
		paths, labels = append(paths, fmt.Sprintf("gpio.outputs[%d].label", i)), append(labels, o.Label)
	}
	return paths, labels
}

// checkAgainstModel checks the configuration against the loaded model, or
// explains why model.path did not load (loadErr): the problems name their
// key and, for a file read by Parse, its line.
func (c *Config) checkAgainstModel(m classify.Classifier, loadErr error) []FieldError {
	if loadErr != nil {
		at := c.src.at("model.path")
		if at == "" && c.src != nil && c.src.file != "" {
			at = "(not in the file: the default) "
		}
		return []FieldError{{Path: "model.path", Msg: at + modelLoadProblem(c.Model.Path, loadErr)}}
	}
	var errs []FieldError
	info := m.Info()
	paths, labels := c.gpioLabels()
	for i, l := range labels {
		err := head.ValidateLabel(l)
		if err == nil || head.CheckLabel(l) != nil || slices.Contains(info.Labels, l) {
			continue // good, or already reported by Validate
		}
		errs = append(errs, FieldError{Path: paths[i], Msg: fmt.Sprintf("%s%v; or name one of the model's labels exactly (%s)",
			c.src.at(paths[i]), err, quotedList(info.Labels, 12))})
	}
	return errs
}

// modelLoadProblem says why path did not load and what to do.
func modelLoadProblem(path string, err error) string {
	st, serr := os.Stat(path)
	switch {
	case errors.Is(serr, fs.ErrNotExist):
		return fmt.Sprintf("%q does not exist; set model.path to the .tflite model to run", path)
	case serr == nil && st.IsDir():
		return fmt.Sprintf("%q is a directory; set model.path to the .tflite file in it", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("%q cannot be read (permission denied); make it readable by the user the agent runs as", path)
	}
	msg := err.Error()
	for _, prefix := range []string{fmt.Sprintf("model %q: ", path), "model: "} { // the loaders' own, said here already
		msg = strings.TrimPrefix(msg, prefix)
	}
	return fmt.Sprintf("%q does not load as a model: %s", path, msg)
}

func quotedList(s []string, n int) string {
	q := make([]string, 0, min(len(s), n))
	for _, x := range s[:min(len(s), n)] {
		q = append(q, strconv.Quote(x))
	}
	if len(s) > n {
		q = append(q, fmt.Sprintf("and %d more", len(s)-n))
	}
	return strings.Join(q, ", ")
}

// ModelError is what New returns when the configured model does not load,
// or the configuration does not fit it: a *Error naming model.path
// (or the gpio labels) with the key's line. nil when there is no problem.
func (c *Config) ModelError(m classify.Classifier, loadErr error) error {
	errs := c.checkAgainstModel(m, loadErr)
	if len(errs) == 0 {
		return nil
	}
	file := "(config)"
	if c.src != nil && c.src.file != "" {
		file = c.src.file
	}
	return &Error{File: file, Errors: errs}
}

// CheckWithModel is --check-config's second half. parseErr is what
// LoadConfigWith returned with c: when the file could be read as YAML,
// model.path is loaded with load (nil: LoadModel, the loader the agent
// starts with, trial run included) and the configuration is checked against
// the model, and every problem, the file's and the model's, comes back in
// one *Error. It returns the loaded model's description.
func (c Config) CheckWithModel(parseErr error, load classify.ModelLoader) (classify.ModelInfo, error) {
	var ce *Error
	if parseErr != nil && (!errors.As(parseErr, &ce) || c.src == nil) {
		return classify.ModelInfo{}, parseErr // unreadable, or not YAML: nothing to check a model against
	}
	if ce == nil {
		file := "(config)"
		if c.src != nil {
			file = c.src.file
		}
		ce = &Error{File: file}
	}
	var info classify.ModelInfo
	if c.Model.Path != "" {
		if load == nil {
			load = classify.LoadModel
		}
		m, err := load(c.Model.Path)
		if err == nil {
			info = m.Info()
		}
		ce.Errors = append(ce.Errors, c.checkAgainstModel(m, err)...)
	}
	if len(ce.Errors) > 0 {
		return info, ce
	}
	return info, nil
}

// WithoutSource returns c without the record of the file it was read from
// (key lines, flags), as a Config made in Go has none: for comparing them.
func (c Config) WithoutSource() Config {
	c.src = nil
	return c
}
