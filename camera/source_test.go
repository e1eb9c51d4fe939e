package camera

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseSourceReadsEverySupportedForm(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "frames"), 0o755)
	folder := filepath.Join(dir, "frames")
	for _, tc := range []struct {
		src  string
		want Spec
	}{
		{"0", Spec{Kind: KindDevice, Device: 0}},
		{" 2 ", Spec{Kind: KindDevice, Device: 2}},
		{"/dev/video0", Spec{Kind: KindDevice, Device: -1, Path: "/dev/video0"}},
		{"/dev/video1?width=1280&height=720&fps=30&fourcc=MJPG",
			Spec{Kind: KindDevice, Device: -1, Path: "/dev/video1", Width: 1280, Height: 720, FPS: 30, FourCC: "MJPG"}},
		{"v4l2:3", Spec{Kind: KindDevice, Device: 3}},
		{"file:demo.avi", Spec{Kind: KindFile, Device: -1, Path: "demo.avi"}},
		{"file:demo.avi?loop=1", Spec{Kind: KindFile, Device: -1, Path: "demo.avi", Loop: true}},
		{"file:demo.avi?loop", Spec{Kind: KindFile, Device: -1, Path: "demo.avi", Loop: true}},
		{"/data/clip.mp4?loop=0", Spec{Kind: KindFile, Device: -1, Path: "/data/clip.mp4"}},
		{"images:/data/*.png?loop=true", Spec{Kind: KindImages, Device: -1, Path: "/data/*.png", Loop: true}},
		{"images:/data/img-??.png", Spec{Kind: KindImages, Device: -1, Path: "/data/img-??.png"}},
		{"/data/*.jpg", Spec{Kind: KindImages, Device: -1, Path: "/data/*.jpg"}},
		{"/data/one.png", Spec{Kind: KindImages, Device: -1, Path: "/data/one.png"}},
		{folder, Spec{Kind: KindImages, Device: -1, Path: folder}},
		{"rtsp://u:p@cam:554/s1", Spec{Kind: KindRTSP, Device: -1, URL: "rtsp://u:p@cam:554/s1"}},
		{"RTSPS://cam/s", Spec{Kind: KindRTSP, Device: -1, URL: "RTSPS://cam/s"}},
		{"http://cam:8080/?action=stream", Spec{Kind: KindHTTP, Device: -1, URL: "http://cam:8080/?action=stream"}},
		{"https://cam/mjpg", Spec{Kind: KindHTTP, Device: -1, URL: "https://cam/mjpg"}},
		{"gst:videotestsrc ! appsink", Spec{Kind: KindGStreamer, Device: -1, Pipeline: "videotestsrc ! appsink"}},
	} {
		t.Run(tc.src, func(t *testing.T) {
			got, err := ParseSource(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Raw = tc.src
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if live := got.Kind != KindFile && got.Kind != KindImages; got.Live() != live {
				t.Errorf("Live() = %v", got.Live())
			}
		})
	}
}

func TestParseSourceExplainsWhatIsWrong(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"", "empty source"},
		{"-1", "negative device index"},
		{"udp://0.0.0.0:5000", `unsupported URL scheme "udp"`},
		{"rtsp://", "malformed RTSP URL"},
		{"http:///x", "malformed HTTP URL"},
		{"gst:", "empty GStreamer pipeline"},
		{"gst:v4l2src ! autovideosink", "must end in appsink"},
		{"file:", "empty path"},
		{"file:a.avi?loop=2", `loop="2"`},
		{"images:/x/*.png?fps=3", `unknown option "fps" for a images source (known: loop)`},
		{"/dev/video0?fourcc=MJPEG", "four characters"},
		{"/dev/video0?fps=-5", "positive number"},
	} {
		t.Run(tc.src, func(t *testing.T) {
			_, err := ParseSource(tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "supported:") {
				t.Errorf("error %q does not list the supported forms", err)
			}
		})
	}
}

func TestBackoffGrowsToItsMaximumWithBoundedJitter(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: 0.2}
	for _, tc := range []struct {
		attempt int
		base    time.Duration
	}{{0, 100 * time.Millisecond}, {1, 200 * time.Millisecond}, {3, 800 * time.Millisecond}, {4, time.Second}, {60, time.Second}, {5000, time.Second}} {
		lo, mid, hi := b.Delay(tc.attempt, 0), b.Delay(tc.attempt, 0.5), b.Delay(tc.attempt, 1)
		if mid != tc.base {
			t.Errorf("attempt %d: %v without jitter, want %v", tc.attempt, mid, tc.base)
		}
		if lo != time.Duration(float64(tc.base)*0.8) || hi != min(time.Duration(float64(tc.base)*1.2), b.Max) {
			t.Errorf("attempt %d: jitter range [%v, %v] around %v", tc.attempt, lo, hi, tc.base)
		}
	}
	if d := (Backoff{}).Delay(0, 0.5); d != 250*time.Millisecond {
		t.Errorf("default first delay %v, want 250ms", d)
	}
}
