// Command demovideo writes a real video file of labelled test images (for
// `make run` and the agent's tests): each image is scaled up with nearest
// neighbour, shown for a few frames, and its true label is written to a CSV
// beside the video so predictions can be scored.
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"image"
	"os"
	"strconv"

	"gocv.io/x/gocv"

	"github.com/shortcut-edge/shortcut/train/data"
)

func main() {
	src := flag.String("data", "fashion-mnist", "dataset source (as shortcut-train fit --data)")
	split := flag.String("split", "test", "train or test")
	count := flag.Int("count", 40, "images to show")
	offset := flag.Int("offset", 0, "first image index")
	frames := flag.Int("frames", 5, "frames per image")
	fps := flag.Float64("fps", 10, "frames per second written in the file")
	size := flag.Int("size", 112, "frame height and width in pixels")
	out := flag.String("out", "demo.avi", "output video (MJPG in AVI)")
	truth := flag.String("truth", "", "CSV of frame,label,class written beside the video (default: <out>.csv)")
	flag.Parse()
	if err := run(*src, *split, *count, *offset, *frames, *fps, *size, *out, *truth); err != nil {
		fmt.Fprintln(os.Stderr, "demovideo:", err)
		os.Exit(1)
	}
}

func run(srcSpec, split string, count, offset, frames int, fps float64, size int, out, truth string) error {
	if count < 1 || frames < 1 || size < 8 || fps <= 0 {
		return fmt.Errorf("--count, --frames must be >= 1, --size >= 8 and --fps > 0")
	}
	src, err := data.ParseSource(srcSpec)
	if err != nil {
		return err
	}
	d, err := data.Load(src, split)
	if err != nil {
		return err
	}
	if offset < 0 || offset+count > d.Len() {
		return fmt.Errorf("images %d..%d are outside the %d in %s", offset, offset+count, d.Len(), d.Name)
	}
	if truth == "" {
		truth = out + ".csv"
	}
	vw, err := gocv.VideoWriterFile(out, "MJPG", fps, size, size, true)
	if err != nil {
		return fmt.Errorf("opening %s for writing: %w", out, err)
	}
	defer vw.Close()
	f, err := os.Create(truth)
	if err != nil {
		return err
	}
	defer f.Close()
	w := csv.NewWriter(f)
	_ = w.Write([]string{"frame", "image", "label", "class"})
	typ := gocv.MatTypeCV8UC1
	if d.Channels == 3 {
		typ = gocv.MatTypeCV8UC3
	}
	small, err := gocv.NewMatFromBytes(d.Height, d.Width, typ, make([]byte, d.ImageSize()))
	if err != nil {
		return err
	}
	defer small.Close()
	big, bgr := gocv.NewMat(), gocv.NewMat()
	defer big.Close()
	defer bgr.Close()
	frame := 0
	for i := offset; i < offset+count; i++ {
		img, err := gocv.NewMatFromBytes(d.Height, d.Width, typ, append([]byte(nil), d.Image(i)...))
		if err != nil {
			return err
		}
		gocv.Resize(img, &big, image.Pt(size, size), 0, 0, gocv.InterpolationNearestNeighbor)
		img.Close()
		if d.Channels == 1 {
			gocv.CvtColor(big, &bgr, gocv.ColorGrayToBGR)
		} else {
			// Dataset images are RGB; swapping R and B is its own inverse.
			gocv.CvtColor(big, &bgr, gocv.ColorBGRToRGB)
		}
		for k := 0; k < frames; k++ {
			if err := vw.Write(bgr); err != nil {
				return fmt.Errorf("writing frame %d: %w", frame, err)
			}
			_ = w.Write([]string{strconv.Itoa(frame), strconv.Itoa(i), strconv.Itoa(int(d.Labels[i])), d.Classes[d.Labels[i]]})
			frame++
		}
	}
	w.Flush()
	fmt.Printf("wrote %s: %d frames of %d %s %s images (%dx%d), truth in %s\n", out, frame, count, d.Name, split, size, size, truth)
	return w.Error()
}
