package resnet

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Names of the Model.metadata entries that Shortcut writes.
const (
	// MetaShortcut names the entry holding Metadata as JSON.
	MetaShortcut = "shortcut.meta"
	// MetaMinRuntime names the entry that TensorFlow's converter writes:
	// the oldest TFLite runtime able to run the model, as a NUL-padded
	// string.
	MetaMinRuntime = "min_runtime_version"
	// MetaTFLite names the entry of the standard TFLite metadata
	// (TensorFlow Lite Support's ModelMetadata flatbuffer) that Marshal
	// writes for labels and normalization; see tflmetadata.go.
	MetaTFLite = "TFLITE_METADATA"
)

// minRuntimeVersion is the TFLite release that introduced the int8 kernels
// (per-channel CONV_2D v3, QUANTIZE) our models use.
const minRuntimeVersion = "1.14.0"

// metaJSON is the stable on-disk form of Metadata; field names are part of
// the file format, independent of the Go field names.
type metaJSON struct {
	Name        string    `json:"name,omitempty"`
	Version     string    `json:"version,omitempty"`
	Labels      []string  `json:"labels,omitempty"`
	Mean        []float32 `json:"mean,omitempty"`
	Std         []float32 `json:"std,omitempty"`
	OutputNames []string  `json:"output_names,omitempty"`
	// ImageSize is Metadata.ImageSize, [height, width]; absent when zero.
	ImageSize []int `json:"image_size,omitempty"`
}

func (md *Metadata) isZero() bool {
	return md.Name == "" && md.Version == "" && len(md.Labels) == 0 && len(md.Mean) == 0 &&
		len(md.Std) == 0 && len(md.OutputNames) == 0 && !md.HasImageSize()
}

func encodeMetadata(md *Metadata) ([]byte, error) {
	j := metaJSON{
		Name: md.Name, Version: md.Version, Labels: md.Labels,
		Mean: md.Mean, Std: md.Std, OutputNames: md.OutputNames,
	}
	if md.HasImageSize() {
		j.ImageSize = md.ImageSize[:]
	}
	return json.Marshal(j)
}

func decodeMetadata(data []byte) (Metadata, error) {
	var j metaJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&j); err != nil {
		return Metadata{}, fmt.Errorf("invalid JSON: %v", err)
	}
	md := Metadata{
		Name: j.Name, Version: j.Version, Labels: j.Labels,
		Mean: j.Mean, Std: j.Std, OutputNames: j.OutputNames,
	}
	if j.ImageSize != nil {
		// The values are checked against the input by Validate; here only
		// the form, so that [0, 0] is not silently read as "absent".
		if len(j.ImageSize) != 2 {
			return Metadata{}, fmt.Errorf("image_size has %d values, want [height, width]", len(j.ImageSize))
		}
		if j.ImageSize[0] < 1 || j.ImageSize[1] < 1 {
			return Metadata{}, fmt.Errorf("image_size %v: want [height, width] of at least 1 each", j.ImageSize)
		}
		md.ImageSize = [2]int{j.ImageSize[0], j.ImageSize[1]}
	}
	return md, nil
}

// minRuntimeBuffer is the min_runtime_version buffer contents: the version
// string padded with NULs to 16 bytes, as TFLite writes it.
func minRuntimeBuffer() []byte {
	b := make([]byte, 16)
	copy(b, minRuntimeVersion)
	return b
}
