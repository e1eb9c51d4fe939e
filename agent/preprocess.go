package agent

import (
	"image"

	"github.com/shortcut-edge/shortcut/agent/capture"
)

// Preprocess resizes img to the model's input by stretching it and
// normalizes it with the model's mean and std (capture.Preprocess).
func Preprocess(dst []float32, img image.Image, info ModelInfo) error {
	return capture.Preprocess(dst, img, info)
}

func pixelsImage(px []float32, info ModelInfo, pc PreprocessConfig) *image.RGBA {
	return capture.PixelsImage(px, info, pc)
}

func thumbnail(px []float32, info ModelInfo, pc PreprocessConfig, size int) ([]byte, error) {
	return capture.Thumbnail(px, info, pc, size)
}
