package agent

import (
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeZones writes thermal zones under a temp root: name -> {type, temp};
// an empty temp leaves the temp file out (a zone that cannot be read).
func fakeZones(t *testing.T, zones map[string][2]string) string {
	t.Helper()
	root := t.TempDir()
	for name, z := range zones {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "type"), []byte(z[0]+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if z[1] != "" {
			if err := os.WriteFile(filepath.Join(dir, "temp"), []byte(z[1]+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func gatherTemps(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "shortcut_soc_temperature_celsius" {
			t.Errorf("unexpected family %q", mf.GetName())
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "zone" {
					got[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return got
}

func TestThermalCollector(t *testing.T) {
	root := fakeZones(t, map[string][2]string{
		"thermal_zone0": {"cpu-thermal", "48312"},
		"thermal_zone1": {"gpu-thermal", "-1500"},
		"thermal_zone2": {"broken", ""},         // no temp file: skipped
		"thermal_zone3": {"garbage", "hot"},     // unreadable value: skipped
		"cooling_dev0":  {"not-a-zone", "1000"}, // not a thermal zone
	})
	got := gatherTemps(t, newThermalCollector(root))
	want := map[string]float64{"cpu-thermal": 48.312, "gpu-thermal": -1.5}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("zone %q: got %v (present %v), want %v", k, g, ok, v)
		}
	}
}

func TestThermalCollectorNoZones(t *testing.T) {
	if got := gatherTemps(t, newThermalCollector(filepath.Join(t.TempDir(), "missing"))); len(got) != 0 {
		t.Errorf("got %v from a missing folder, want nothing", got)
	}
}

type thermalFakeModel struct{}

func (thermalFakeModel) Info() ModelInfo {
	return ModelInfo{Name: "fake", Version: "1", Labels: []string{"a", "b"}, Height: 2, Width: 2, Channels: 1}
}
func (thermalFakeModel) NewSession() Session { return nil }

// The agent's /metrics shows the zones of thermalRoot.
func TestThermalMetricServed(t *testing.T) {
	old := thermalRoot
	thermalRoot = fakeZones(t, map[string][2]string{"thermal_zone0": {"cpu-thermal", "51000"}})
	t.Cleanup(func() { thermalRoot = old })
	cfg := Defaults()
	cfg.Device.ID = "thermal"
	cfg.Model.Path = "fake.tflite"
	cfg.Model.Watch = false
	cfg.Learning.Enabled = false
	cfg.Cameras = []CameraConfig{{ID: "front", Source: "synthetic", FPS: 1, Queue: 2}}
	a, err := New(cfg, Options{Logger: nil, LoadModel: func(string) (Classifier, error) { return thermalFakeModel{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.closeSources()
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if line := `shortcut_soc_temperature_celsius{zone="cpu-thermal"} 51`; !strings.Contains(string(body), line) {
		t.Errorf("/metrics lacks %q", line)
	}
}
