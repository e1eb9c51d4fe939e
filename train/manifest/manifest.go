// Package manifest is the schema of model.json, the float export that
// `shortcut-train export` writes (train.Export) and `quantize` and `eval` read
// (quant.ReadExport); train/EXPORT.md describes it. One definition for both
// sides, in a leaf package, so that quant (which the agent links) reads the
// format without importing the training framework.
package manifest

// Format names the layout; a reader refuses any other.
const Format = "shortcut-float-v1"

// Manifest is model.json.
type Manifest struct {
	Format  string            `json:"format"`
	Arch    string            `json:"arch"`
	Input   Input             `json:"input"`
	Classes []string          `json:"classes"`
	Output  string            `json:"output"`
	Weights string            `json:"weights"`
	Tensors map[string]Tensor `json:"tensors"`
	Ops     []Op              `json:"ops"`
	// BNEpsilon is the batch-norm epsilon folded into the weights (for the record).
	BNEpsilon float64 `json:"bn_epsilon"`
}

// Input is the input section: the network takes Shape = [1, H, W, C] floats
// x = (pixel/255 - Mean[c]) / Std[c], computed after images of
// ImageH x ImageW were zero-padded (centred) to PadTo x PadTo when PadTo > 0.
type Input struct {
	Name   string    `json:"name"`
	Shape  []int     `json:"shape"` // [1, H, W, C], NHWC
	Mean   []float32 `json:"mean"`
	Std    []float32 `json:"std"`
	PadTo  int       `json:"pad_to,omitempty"`
	ImageH int       `json:"image_height"`
	ImageW int       `json:"image_width"`
}

// ContentSize is the [height, width] of the dataset images inside the
// input when training padded them (PadTo > 0) to a larger input, for
// resnet.Metadata.ImageSize: the images lie centred and the border holds
// pixel value 0, as data.BatchOptions.PadTo does. It is zero (the content
// fills the input) without padding, when the image size is unknown, or when
// the images already fill the input.
func (in Input) ContentSize() [2]int {
	if in.PadTo <= 0 || in.ImageH <= 0 || in.ImageW <= 0 || len(in.Shape) != 4 {
		return [2]int{}
	}
	if in.ImageH == in.Shape[1] && in.ImageW == in.Shape[2] {
		return [2]int{}
	}
	return [2]int{in.ImageH, in.ImageW}
}

// Tensor locates a little-endian float32 array in the weights file.
type Tensor struct {
	Shape  []int `json:"shape"`
	Offset int64 `json:"offset"` // bytes from the start of the weights file
}

// Op is one operation of the folded graph, in execution order.
type Op struct {
	Op         string   `json:"op"` // conv2d, add, max_pool, mean, fully_connected
	Name       string   `json:"name"`
	Inputs     []string `json:"inputs"`
	Output     string   `json:"output"`
	Weights    string   `json:"weights,omitempty"` // conv2d: [O, KH, KW, I] (OHWI); fully_connected: [O, I]
	Bias       string   `json:"bias,omitempty"`    // [O]
	Kernel     []int    `json:"kernel,omitempty"`  // max_pool: [KH, KW]
	Stride     []int    `json:"stride,omitempty"`  // [SH, SW]
	Padding    []int    `json:"padding,omitempty"` // explicit [top, bottom, left, right]
	Activation string   `json:"activation"`        // "none" or "relu"
	// Synthesized marks ops that the trained graph expresses otherwise (option-A shortcuts,
	// written as 1x1 convolutions with 0/1 weights).
	Synthesized bool `json:"synthesized,omitempty"`
}
