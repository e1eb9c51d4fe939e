package agent_test

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/agent/agenttest"
)

// quadrants is source picture i: a 200x160 frame, red outside the region
// of interest [40,20,168,148], and inside it four 64x64 squares whose
// colours depend on i, so that a saved frame shows both that the ROI was
// applied and which source image it came from.
func quadrants(i int) (*image.RGBA, [4]color.RGBA) {
	q := [4]color.RGBA{
		{uint8(10 + 20*i), 200, 30, 255}, {40, uint8(50 + 20*i), 220, 255},
		{250, 250, uint8(20 * i), 255}, {uint8(90 + 10*i), 10, uint8(160 - 10*i), 255},
	}
	img := image.NewRGBA(image.Rect(0, 0, 200, 160))
	for y := range 160 {
		for x := range 200 {
			c := color.RGBA{255, 0, 0, 255}
			if x >= 40 && x < 168 && y >= 20 && y < 148 {
				c = q[(y-20)/64*2+(x-40)/64]
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img, q
}

// TestCaptureSavesFramesAsTheModelSeesThem runs `shortcut-agent --capture`
// on an image-folder camera with a region of interest: it writes --frames
// PNG files of the model's input size whose pixels are the ROI of
// source images, in order, scaled to the input, and nothing of the red
// outside; it refuses a folder that holds files unless --append, which
// numbers on; a wrong --camera and a source shorter than --frames are
// errors that name the flag.
func TestCaptureSavesFramesAsTheModelSeesThem(t *testing.T) {
	dir := t.TempDir()
	bin := buildAgent(t, dir)
	model := agenttest.WriteModel(t, dir, agenttest.ModelConfig{Size: 64, Labels: []string{"mug", "none"}, Seed: 3})
	frames := filepath.Join(dir, "frames")
	os.Mkdir(frames, 0o755)
	var want [][4]color.RGBA
	for i := range 5 {
		img, q := quadrants(i)
		want = append(want, q)
		f, err := os.Create(filepath.Join(frames, fmt.Sprintf("f%02d.png", i)))
		if err != nil {
			t.Fatal(err)
		}
		png.Encode(f, img)
		f.Close()
	}
	cfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `device: {id: kitchen}
model: {path: %s, watch: false}
cameras:
  - id: desk
    source: images:%s
    fps: 10
    preprocess: {fit: crop, roi: [40, 20, 168, 148]}
mqtt: {broker: "tcp://127.0.0.1:1"}
http: {address: ""}
learning: {state_dir: %s}
`, model, frames, filepath.Join(dir, "state")), 0o644)

	// source is which source image file shows; -1 when none.
	source := func(t *testing.T, file string) int {
		t.Helper()
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		img, err := png.Decode(f)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if b := img.Bounds(); b.Dx() != 64 || b.Dy() != 64 {
			t.Fatalf("%s is %dx%d, want the model's 64x64 input", file, b.Dx(), b.Dy())
		}
	next:
		for i, q := range want {
			for y := range 64 {
				for x := range 64 {
					r, g, b, _ := img.At(x, y).RGBA()
					w := q[y/32*2+x/32]
					if max(absDiff(r>>8, w.R), absDiff(g>>8, w.G), absDiff(b>>8, w.B)) > 1 {
						continue next
					}
				}
			}
			return i
		}
		r, g, b, _ := img.At(0, 0).RGBA()
		t.Errorf("%s is none of the source images' ROI scaled by 1/2 (pixel 0,0 = %d,%d,%d)", file, r>>8, g>>8, b>>8)
		return -1
	}
	// inOrder checks that the files show source images in order: a camera
	// whose frames come faster than they are saved skips some, as it does
	// for the model.
	inOrder := func(t *testing.T, files ...string) {
		t.Helper()
		last := -1
		for _, f := range files {
			i := source(t, f)
			if i >= 0 && i <= last {
				t.Errorf("%s shows source image %d, after image %d: want the camera's order", f, i, last)
			}
			last = max(last, i)
		}
	}

	out := filepath.Join(dir, "photos")
	stdout, code := runBinary(t, bin, "-config", cfg, "--capture", out, "--frames", "3", "--interval", "10ms")
	if code != 0 {
		t.Fatalf("--capture: status %d\n%s", code, stdout)
	}
	inOrder(t, filepath.Join(out, "desk-000001.png"), filepath.Join(out, "desk-000002.png"), filepath.Join(out, "desk-000003.png"))
	if es, _ := os.ReadDir(out); len(es) != 3 {
		t.Errorf("%s holds %d entries after --frames 3, want 3", out, len(es))
	}

	t.Run("a folder with files in it is refused without --append", func(t *testing.T) {
		stdout, code := runBinary(t, bin, "-config", cfg, "--capture", out, "--frames", "1")
		if code == 0 || !strings.Contains(stdout, "--append") || !strings.Contains(stdout, "--capture "+out) {
			t.Errorf("--capture into a full folder: status %d\n%s", code, stdout)
		}
	})
	t.Run("--append numbers on after the files there", func(t *testing.T) {
		stdout, code := runBinary(t, bin, "-config", cfg, "--capture", out, "--frames", "2", "--append")
		if code != 0 {
			t.Fatalf("--append: status %d\n%s", code, stdout)
		}
		inOrder(t, filepath.Join(out, "desk-000004.png"), filepath.Join(out, "desk-000005.png")) // a new session reads the folder again
		if es, _ := os.ReadDir(out); len(es) != 5 {
			t.Errorf("%s holds %d entries after 3 and 2 more frames, want 5", out, len(es))
		}
	})
	t.Run("an unknown --camera names the cameras there are", func(t *testing.T) {
		stdout, code := runBinary(t, bin, "-config", cfg, "--capture", filepath.Join(dir, "x"), "--frames", "1", "--camera", "door")
		if code == 0 || !strings.Contains(stdout, `--camera "door"`) || !strings.Contains(stdout, "desk") {
			t.Errorf("--camera door: status %d\n%s", code, stdout)
		}
	})
	t.Run("a source shorter than --frames says what to do", func(t *testing.T) {
		stdout, code := runBinary(t, bin, "-config", cfg, "--capture", filepath.Join(dir, "y"), "--frames", "9")
		if code != 1 || !strings.Contains(stdout, "of 9 frames") || !strings.Contains(stdout, "?loop=1") {
			t.Errorf("--frames 9 of 5 images: status %d\n%s", code, stdout)
		}
	})
	t.Run("--frames without --capture is refused", func(t *testing.T) {
		stdout, code := runBinary(t, bin, "-config", cfg, "--frames", "3")
		if code != 2 || !strings.Contains(stdout, "--capture DIR") {
			t.Errorf("--frames alone: status %d\n%s", code, stdout)
		}
	})
}

func absDiff(a uint32, b uint8) uint32 {
	if a > uint32(b) {
		return a - uint32(b)
	}
	return uint32(b) - a
}
