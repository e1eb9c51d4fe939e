package agent_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestVersionFromLdflagsReachesFlagDiscoveryAndMetrics builds the agent as
// `make build` does, with the version set through -ldflags, and checks the
// three places a user reads it: --version, sw_version in Home Assistant
// discovery (against a real mosquitto) and shortcut_build_info in /metrics.
func TestVersionFromLdflagsReachesFlagDiscoveryAndMetrics(t *testing.T) {
	const version = "v9.8.7-6-gtest"
	dir := t.TempDir()
	bin := filepath.Join(dir, "shortcut-agent")
	out, err := exec.Command("go", "build", "-ldflags", "-X github.com/shortcut-edge/shortcut/internal/buildinfo.Version="+version,
		"-o", bin, "github.com/shortcut-edge/shortcut/cmd/agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go build cmd/agent with -ldflags: %v\n%s", err, out)
	}

	out, err = exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("shortcut-agent --version: %v (want exit status 0)\n%s", err, out)
	}
	want := fmt.Sprintf("shortcut-agent %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if string(out) != want {
		t.Errorf("shortcut-agent --version printed %q, want %q", out, want)
	}

	broker := startMosquitto(t, 0)
	sub := subscribe(t, broker.URL(), "homeassistant/#")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startAgentProc(t, bin, dir, addr, loopingImagesConfig(t, dir, fmt.Sprintf(
		"http: {address: %q}\nmqtt: {broker: %q}\n", addr, broker.URL())))
	const topic = "homeassistant/sensor/procdev/door/config"
	sub.WaitFor(topic, "discovery", atLeast(1))
	for _, m := range sub.All() {
		if m.Topic != topic {
			continue
		}
		var d struct {
			Device struct {
				SWVersion string `json:"sw_version"`
			} `json:"device"`
			Origin struct {
				SWVersion string `json:"sw_version"`
			} `json:"origin"`
		}
		if err := json.Unmarshal([]byte(m.Payload), &d); err != nil {
			t.Fatalf("discovery on %s is not JSON: %v\n%s", m.Topic, err, m.Payload)
		}
		if d.Device.SWVersion != version || d.Origin.SWVersion != version {
			t.Errorf("discovery device.sw_version %q, origin.sw_version %q; want %q from -ldflags", d.Device.SWVersion, d.Origin.SWVersion, version)
		}
	}
	series := fmt.Sprintf(`shortcut_build_info{goversion=%q,version=%q}`, runtime.Version(), version)
	if v := p.metric(t, series); v != 1 {
		t.Errorf("%s = %v, want 1", series, v)
	}
	if m := p.get(t, "/metrics"); !strings.Contains(m, "# HELP shortcut_build_info ") {
		t.Errorf("/metrics lacks the HELP line of shortcut_build_info")
	}
}

// TestTrainVersionFlagPrintsTheBuild checks shortcut-train --version, built
// with the version set as `make build` sets it.
func TestTrainVersionFlagPrintsTheBuild(t *testing.T) {
	const version = "v1.0.0-test"
	bin := filepath.Join(t.TempDir(), "shortcut-train")
	out, err := exec.Command("go", "build", "-ldflags", "-X github.com/shortcut-edge/shortcut/internal/buildinfo.Version="+version,
		"-o", bin, "github.com/shortcut-edge/shortcut/cmd/train").CombinedOutput()
	if err != nil {
		t.Fatalf("go build cmd/train with -ldflags: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("shortcut-train --version: %v (want exit status 0)\n%s", err, out)
	}
	if want := fmt.Sprintf("shortcut-train %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH); string(out) != want {
		t.Errorf("shortcut-train --version printed %q, want %q", out, want)
	}
}
