package main

import (
	"bufio"
	"bytes"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/agent/agenttest"
)

// roadRewrites are the only changes TestTheRoad makes to docs/road.md's
// commands besides the paths (the page's "What the test changes" lists
// them too).
var roadRewrites = []struct {
	re  *regexp.Regexp
	new string
}{
	{regexp.MustCompile(`^sudo `), ""},
	{regexp.MustCompile(`--input 224\b`), "--input 64"},
	{regexp.MustCompile(`--frames \d+`), "--frames 40"},
	{regexp.MustCompile(`--interval \S+`), "--interval 0s"},
}

// roadScenes are what the camera sees during each --capture of the road:
// a Fashion-MNIST class folder per capture folder.
var roadScenes = map[string]string{"photos/": "shirt", "teach/mug": "bag", "teach/nothing": "sandal", "watch": "bag"}

var captureDir = regexp.MustCompile(`--capture (\S+)`)

// roadCommands reads the lines of docs/road.md's ```sh blocks.
func roadCommands(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../docs/road.md")
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "```sh":
			in = true
		case strings.HasPrefix(line, "```"):
			in = false
		case in && line != "" && !strings.HasPrefix(line, "#"):
			cmds = append(cmds, line)
		}
	}
	if len(cmds) < 8 {
		t.Fatalf("docs/road.md has %d commands in ```sh blocks; the road has more", len(cmds))
	}
	return cmds
}

// TestTheRoad runs every command of docs/road.md, in order, with local
// files in place of the downloads, the board and the camera: weights
// -> pretrained -> --capture of calibration and teaching photos ->
// pretrained --calibration -> head -> --check-model -> the model on the
// board.
func TestTheRoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries and trains a head")
	}
	dir := t.TempDir()
	bin, work, board := filepath.Join(dir, "bin"), filepath.Join(dir, "work"), filepath.Join(dir, "board")
	for _, d := range []string{bin, work, board} {
		os.MkdirAll(d, 0o755)
	}
	for name, pkg := range map[string]string{"shortcut-train": "./", "shortcut-agent": "../agent"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, name), pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	scenes := writeFashionFolder(t, filepath.Join(dir, "scenes"), "train", 40, map[string]int32{"shirt": 6, "bag": 8, "sandal": 5})
	scene := filepath.Join(dir, "scene")
	setScene := func(class string) { // what the camera sees: a class folder
		os.Remove(scene)
		if err := os.Symlink(filepath.Join(scenes, class), scene); err != nil {
			t.Fatal(err)
		}
	}
	setScene(roadScenes["photos/"])
	broker := agenttest.StartMosquitto(t, 0)
	cfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `device: {id: kitchen}
model: {path: %s/model.tflite}
cameras:
  - id: cam0
    source: images:%s?loop=1
    fps: 50
    preprocess: {fit: crop, roi: [2, 2, 26, 26]}
mqtt: {broker: %q}
http: {address: ""}
learning: {state_dir: %s}
`, board, scene, broker.URL(), filepath.Join(dir, "state")), 0o644)

	var checkModel, watched string
	for _, line := range roadCommands(t) {
		cmd := line
		for _, r := range roadRewrites {
			cmd = r.re.ReplaceAllString(cmd, r.new)
		}
		cmd = strings.ReplaceAll(cmd, "/etc/shortcut/agent.yaml", cfg)
		cmd = strings.ReplaceAll(cmd, "/var/lib/shortcut/", board+"/")
		if url, ok := strings.CutPrefix(cmd, "curl -LO "); ok {
			writePretrainedSafetensors(t, filepath.Join(work, filepath.Base(url)), pretrainedWeights(t, 10, 1))
			continue
		}
		if cmd == "systemctl restart shortcut-agent" {
			setScene(roadScenes["watch"])
			startRoadAgent(t, filepath.Join(bin, "shortcut-agent"), cfg)
			continue
		}
		cmd = strings.ReplaceAll(cmd, "-h board.local", fmt.Sprintf("-h 127.0.0.1 -p %d", broker.Port))
		switch prog, _, _ := strings.Cut(cmd, " "); prog {
		case "shortcut-train", "shortcut-agent", "cp", "mosquitto_sub":
		default:
			t.Fatalf("docs/road.md: %q: the test does not know how to run %s here; teach it or move the line out of a ```sh block", line, prog)
		}
		if m := captureDir.FindStringSubmatch(cmd); m != nil {
			class, ok := roadScenes[m[1]]
			if !ok {
				t.Fatalf("docs/road.md: %q: the test has no scene for --capture %s (roadScenes)", line, m[1])
			}
			setScene(class)
		}
		c := exec.Command("bash", "-euo", "pipefail", "-c", cmd)
		c.Dir = work
		c.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("docs/road.md: %q (run as %q): %v\n%s", line, cmd, err, out)
		}
		t.Logf("$ %s\n%s", cmd, lastLines(string(out), 3))
		if strings.Contains(cmd, "--check-model") {
			checkModel = string(out)
		}
		if strings.HasPrefix(cmd, "mosquitto_sub") {
			watched = string(out)
		}
	}

	photos, _ := filepath.Glob(filepath.Join(work, "photos", "cam0-*.png"))
	if len(photos) != 40 {
		t.Errorf("photos/ holds %d captures, want the 40 asked for", len(photos))
	}
	for _, p := range append(photos[:min(1, len(photos))], filepath.Join(work, "teach", "mug", "cam0-000001.png")) {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		c, err := png.DecodeConfig(f)
		f.Close()
		if err != nil || c.Width != 64 || c.Height != 64 {
			t.Errorf("%s: %dx%d (%v), want the model's 64x64 input", p, c.Width, c.Height, err)
		}
	}
	for _, p := range []string{"calibrated/model-int8.tflite", "calibrated/model-int8.report.json", "mug.tflite"} {
		if _, err := os.Stat(filepath.Join(work, p)); err != nil {
			t.Errorf("the road should have made %s: %v", p, err)
		}
	}
	if !strings.Contains(checkModel, "2 labels") {
		t.Errorf("--check-model on mug.tflite should report the 2 labels of teach/ (mug, nothing):\n%s", checkModel)
	}
	// Watching: the board's camera shows the mug, and its state says so.
	if !strings.Contains(watched, "shortcut/kitchen/cam0/state ") || !strings.Contains(watched, `"label":"mug"`) {
		t.Errorf("watching the state with the mug in view printed %q; want kitchen/cam0's state labelled mug", watched)
	}
	want, _ := os.ReadFile(filepath.Join(work, "mug.tflite"))
	got, _ := os.ReadFile(filepath.Join(board, "model.tflite"))
	if len(want) == 0 || !bytes.Equal(got, want) {
		t.Errorf("the board's model.tflite (%d bytes) is not mug.tflite (%d bytes)", len(got), len(want))
	}
}

// startRoadAgent runs the built agent on cfg, as systemd would on the
// board, until the test ends.
func startRoadAgent(t *testing.T, bin, cfg string) {
	t.Helper()
	var logs bytes.Buffer
	c := exec.Command(bin, "-config", cfg)
	c.Stdout, c.Stderr = &logs, &logs
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Process.Signal(os.Interrupt)
		c.Wait()
		if t.Failed() {
			t.Logf("agent log:\n%s", lastLines(logs.String(), 30))
		}
	})
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
