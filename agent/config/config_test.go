package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/shortcut-edge/shortcut/agent/config"
)

func noEnv(string) string { return "" }

func TestConfigFileInConfigsDocumentsEveryKeyWithItsDefault(t *testing.T) {
	data, err := os.ReadFile("../../configs/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := config.Parse("configs/agent.yaml", data, config.Options{Getenv: noEnv})
	if err != nil {
		t.Fatalf("configs/agent.yaml does not validate: %v", err)
	}
	want := config.Defaults()
	want.Device.ID = got.Device.ID // the host name
	want.Cameras = []config.CameraConfig{{ID: "cam0", Source: "synthetic", FPS: 5, Queue: 2,
		Preprocess: config.PreprocessConfig{Fit: config.FitCrop, ROI: []int{}, Mean: []float64{}, Std: []float64{}}}}
	if got := got.WithoutSource(); !reflect.DeepEqual(got, want) {
		t.Errorf("configs/agent.yaml differs from config.Defaults():\n got %+v\nwant %+v", got, want)
	}
	// Every key of the Config struct is written out in the file.
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		switch n.Kind {
		case yaml.DocumentNode:
			walk(prefix, n.Content[0])
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := prefix + n.Content[i].Value
				keys[k] = true
				walk(k+".", n.Content[i+1])
			}
		case yaml.SequenceNode:
			for _, e := range n.Content {
				walk(strings.TrimSuffix(prefix, ".")+"[].", e)
			}
		}
	}
	walk("", &doc)
	// Keys of list items that default to an empty list (gpio.outputs) are
	// documented in a commented example.
	var comments strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		if _, c, ok := strings.Cut(line, "#"); ok {
			comments.WriteString(c + "\n")
		}
	}
	var missing []string
	var fields func(prefix string, t reflect.Type)
	fields = func(prefix string, t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			if !t.Field(i).IsExported() {
				continue
			}
			k := prefix + t.Field(i).Tag.Get("yaml")
			inExample := strings.Contains(k, "[].") && !strings.HasPrefix(k, "cameras[]") &&
				strings.Contains(comments.String(), " "+t.Field(i).Tag.Get("yaml")+":")
			if !keys[k] && !inExample {
				missing = append(missing, k)
			}
			ft := t.Field(i).Type
			if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Duration(0)) {
				fields(k+".", ft)
			}
			if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
				fields(k+"[].", ft.Elem())
			}
		}
	}
	fields("", reflect.TypeOf(config.Config{}))
	if len(missing) > 0 {
		t.Errorf("configs/agent.yaml does not document these keys: %v", missing)
	}
}

func TestConfigListsEveryErrorWithItsKeyPath(t *testing.T) {
	bad := `
device:
  id: "my device"
model:
  path: ""
  top_k: lots
  colour: red
cameras:
  - id: front
    source: "webcam:0"
    fps: -1
  - id: front
    source: synthetic
    queue: 0
decision:
  threshold: 1.5
  frames: 0
mqtt:
  broker: "http://example.com"
  qos: 3
  keepalive: soon
http:
  address: "8080"
log:
  level: loud
`
	_, err := config.Parse("bad.yaml", []byte(bad), config.Options{Getenv: noEnv})
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *config.Error", err)
	}
	wantPaths := []string{"device.id", "model.path", "model.top_k", "model.colour", "cameras[0].source", "cameras[0].fps",
		"cameras[1].id", "cameras[1].queue", "decision.threshold", "decision.frames", "mqtt.broker", "mqtt.qos", "mqtt.keepalive",
		"http.address", "log.level"}
	got := map[string]string{}
	for _, fe := range ce.Errors {
		got[fe.Path] += fe.Msg + "; "
	}
	for _, p := range wantPaths {
		if _, ok := got[p]; !ok {
			t.Errorf("no error reported for %s; errors: %v", p, err)
		}
	}
	if len(ce.Errors) != len(wantPaths) {
		t.Errorf("got %d errors, want %d (one per bad key):\n%v", len(ce.Errors), len(wantPaths), err)
	}
	if !strings.Contains(got["model.top_k"], `"lots" is not a valid integer`) || !strings.Contains(got["model.colour"], "unknown key") {
		t.Errorf("messages do not say what is wrong: %v", err)
	}
}

func TestConfigCases(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		env   map[string]string
		check func(t *testing.T, c config.Config, err error)
	}{
		{"an empty camera list is refused", "model: {path: m.tflite}\n", nil, func(t *testing.T, c config.Config, err error) {
			if err == nil || !strings.Contains(err.Error(), "cameras: is empty") {
				t.Errorf("got %v, want a cameras error", err)
			}
		}},
		{"the environment overrides the MQTT secrets", "cameras: [{id: a, source: synthetic}]\nmqtt: {username: u, password: file}\n",
			map[string]string{config.EnvMQTTPassword: "s3cret", config.EnvMQTTUsername: "envuser"}, func(t *testing.T, c config.Config, err error) {
				if err != nil || c.MQTT.Password != "s3cret" || c.MQTT.Username != "envuser" {
					t.Errorf("got user %q password %q err %v, want envuser/s3cret", c.MQTT.Username, c.MQTT.Password, err)
				}
			}},
		{"a camera takes per-camera defaults", "device: {id: d}\ncameras: [{id: a, source: synthetic}]\n", nil, func(t *testing.T, c config.Config, err error) {
			if err != nil || c.Cameras[0].FPS != 5 || c.Cameras[0].Queue != 2 {
				t.Errorf("got %+v, %v; want fps 5, queue 2", c.Cameras, err)
			}
		}},
		{"durations parse", "cameras: [{id: a, source: synthetic}]\nmqtt: {keepalive: 45s, reconnect_max: 2m}\n", nil, func(t *testing.T, c config.Config, err error) {
			if err != nil || c.MQTT.KeepAlive != 45*time.Second || c.MQTT.ReconnectMax != 2*time.Minute {
				t.Errorf("got %v/%v, %v", c.MQTT.KeepAlive, c.MQTT.ReconnectMax, err)
			}
		}},
		{"a release above the threshold is refused", "cameras: [{id: a, source: synthetic}]\ndecision: {threshold: 0.5, release: 0.7}\n", nil, func(t *testing.T, c config.Config, err error) {
			if err == nil || !strings.Contains(err.Error(), "decision.release") {
				t.Errorf("got %v, want a decision.release error", err)
			}
		}},
		{"broken YAML says so", "cameras: [\n", nil, func(t *testing.T, c config.Config, err error) {
			if err == nil || !strings.Contains(err.Error(), "not valid YAML") {
				t.Errorf("got %v, want a YAML syntax error", err)
			}
		}},
		{"a list where a mapping belongs is refused", "mqtt: [a, b]\ncameras: [{id: a, source: synthetic}]\n", nil, func(t *testing.T, c config.Config, err error) {
			if err == nil || !strings.Contains(err.Error(), "mqtt: line 1: want a mapping") {
				t.Errorf("got %v", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse("t.yaml", []byte(tc.yaml), config.Options{Getenv: func(k string) string { return tc.env[k] }})
			tc.check(t, c, err)
		})
	}
}

func TestConfigChecksPreprocessLearningAndGPIOKeysWithTheirPaths(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		paths      []string // every error expected, by key path
	}{
		{"good values pass", `
cameras: [{id: a, source: synthetic, preprocess: {fit: letterbox, roi: [0, 0, 320, 240], mean: [0.485, 0.456, 0.406], std: [0.229]}}]
learning: {state_dir: /srv/shortcut, max_count: 50, examples_per_label: 50, max_labels: 10, thumbnail_size: 0}
gpio:
  button: {pin: GPIO17, label: "red mug", camera: a, long_press: 3s}
  leds: {ready: GPIO5, detecting: GPIO6, error: GPIO13}
  outputs: [{pin: GPIO27, label: person, min_score: 0.7, hold: 10s, camera: a, active_low: true}]
`, nil},
		{"preprocess values are checked", `
cameras: [{id: a, source: synthetic, preprocess: {fit: zoom, roi: [10, 10, 5, 20], mean: [0.1, 0.2], std: [0]}}]
`, []string{"cameras[0].preprocess.fit", "cameras[0].preprocess.roi", "cameras[0].preprocess.mean", "cameras[0].preprocess.std"}},
		{"learning values are checked", `
cameras: [{id: a, source: synthetic}]
learning: {state_dir: relative/dir, max_count: 500, examples_per_label: 100, max_labels: 0, thumbnail_size: 2000}
`, []string{"learning.state_dir", "learning.max_count", "learning.max_labels", "learning.thumbnail_size"}},
		{"gpio values are checked", `
cameras: [{id: a, source: synthetic}]
gpio:
  button: {pin: GPIO17, label: "", camera: b, long_press: 0s, pull: sideways}
  leds: {ready: GPIO17, detecting: "GPIO 6"}
  outputs: [{pin: "", label: "", min_score: 1.5, hold: -1s, camera: c}]
`, []string{"gpio.button.label", "gpio.button.camera", "gpio.button.long_press", "gpio.button.debounce", "gpio.button.pull",
			"gpio.leds.ready", "gpio.leds.detecting", "gpio.outputs[0].pin", "gpio.outputs[0].label", "gpio.outputs[0].min_score",
			"gpio.outputs[0].hold", "gpio.outputs[0].camera"}},
		{"a button needs learning", `
cameras: [{id: a, source: synthetic}]
learning: {enabled: false}
gpio: {button: {pin: GPIO17, label: cat}}
`, []string{"gpio.button.pin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("t.yaml", []byte("device: {id: d}\n"+tc.yaml), config.Options{Getenv: noEnv})
			var got []string
			var ce *config.Error
			if errors.As(err, &ce) {
				for _, fe := range ce.Errors {
					got = append(got, fe.Path)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, " ") != strings.Join(tc.paths, " ") {
				t.Errorf("errors at %v, want at %v:\n%v", got, tc.paths, err)
			}
		})
	}
}

func TestConfigRefusesRepeatedKeysNamingBothLines(t *testing.T) {
	yaml := `device:
  id: kitchen
  name: Kitchen
  id: garage
cameras:
  - id: a
    source: synthetic
    fps: 5
    fps: 10
mqtt: {qos: 1}
mqtt: {qos: 2}
log: {level: loud}
`
	_, err := config.Parse("dup.yaml", []byte(yaml), config.Options{Getenv: noEnv})
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("a file with repeated keys: %v; want a *ConfigError", err)
	}
	want := map[string]string{
		"device.id":      "duplicate key (lines 2 and 4)",
		"cameras[0].fps": "duplicate key (lines 8 and 9)",
		"mqtt":           "duplicate key (lines 10 and 11)",
		"log.level":      `line 12: "loud"`, // the other errors are listed too
	}
	for _, fe := range ce.Errors {
		if w, ok := want[fe.Path]; !ok || !strings.Contains(fe.Msg, w) {
			t.Errorf("error %v; want only %v", fe, want)
		}
		delete(want, fe.Path)
	}
	if len(want) > 0 {
		t.Errorf("not reported: %v\n%v", want, err)
	}
}

func TestConfigErrorsGiveTheLineOfTheirKey(t *testing.T) {
	yaml := "device: {id: d}\ncameras:\n  - id: a\n    source: synthetic\n    fps: -1\nmqtt:\n  qos: 9\n"
	_, err := config.Parse("t.yaml", []byte(yaml), config.Options{Getenv: noEnv})
	for _, want := range []string{"cameras[0].fps: line 5: is -1", "mqtt.qos: line 7: is 9"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v; want it to say %q", err, want)
		}
	}
}

// TestCheckWithModelLoadsTheModelAndNamesModelPath is --check-config's
// model half: model.path must load with the agent's own loader, and a file
// that does not is reported at model.path with its line, beside every other
// problem of the file.
func TestCheckWithModelLoadsTheModelAndNamesModelPath(t *testing.T) {
	dir := t.TempDir()
	demo, _ := filepath.Abs("../../configs/demo/fashion-resnet8-int8.tflite")
	garbage := filepath.Join(dir, "garbage.tflite")
	os.WriteFile(garbage, []byte("this is not a model"), 0o644)
	for _, tc := range []struct {
		name, model, extra string
		want               []string // substrings of the error, "" for none
	}{
		{"a model that loads", demo, "", nil},
		{"a missing file", filepath.Join(dir, "nope.tflite"), "", []string{`model.path: line 2: "` + dir + `/nope.tflite" does not exist; set model.path`}},
		{"a directory", dir, "", []string{`model.path: line 2: "` + dir + `" is a directory`}},
		{"a file that is no model", garbage, "", []string{`model.path: line 2: "` + garbage + `" does not load as a model: `}},
		{"with other errors, all at once", filepath.Join(dir, "nope.tflite"), "mqtt: {qos: 9}\n", []string{"model.path: line 2:", "mqtt.qos: line 5:"}},
		{"gpio labels may be the model's own", demo, "gpio: {outputs: [{pin: GPIO27, label: T-shirt/top}]}\n", nil},
		{"a gpio label neither typed-safe nor the model's", demo, "gpio: {outputs: [{pin: GPIO27, label: T-shirt/bottom}]}\n",
			[]string{`gpio.outputs[0].label: line 5: label "T-shirt/bottom": character '/'`, `"T-shirt/top", "Trouser"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yaml := fmt.Sprintf("device: {id: d}\nmodel: {path: %q}\ncameras: [{id: a, source: synthetic}]\nlearning: {state_dir: /tmp/x}\n%s", tc.model, tc.extra)
			cfg, err := config.Parse("t.yaml", []byte(yaml), config.Options{Getenv: noEnv})
			info, err := cfg.CheckWithModel(err, nil)
			if tc.want == nil {
				if err != nil || len(info.Labels) != 10 {
					t.Errorf("CheckWithModel: %v, %d labels; want no error and the demo model's 10 labels", err, len(info.Labels))
				}
				return
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("CheckWithModel: %v; want a *ConfigError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant it to say %q", err, w)
				}
			}
		})
	}
}
