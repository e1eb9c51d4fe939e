package train

import (
	_ "embed"
	"fmt"
	"strings"

	"github.com/shortcut-edge/shortcut/train/models"
)

//go:embed imagenet_classes.txt
var imageNetClassesFile string

// ImageNetClasses returns the 1,000 ImageNet-1k class names in class-index order (output k of
// torchvision's and Keras' ImageNet models is name k); the file's header says where they come
// from.
func ImageNetClasses() []string {
	var out []string
	for _, l := range strings.Split(imageNetClassesFile, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// ExportWeights maps a torchvision-layout weights file onto opt.Arch, as ImportWeights does
// (same checks, same errors), and writes it straight to a float export in out (model.json and
// weights.bin, train/EXPORT.md) with batch norm folded, without a run directory or a GoMLX
// backend: the path from pretrained weights to a .tflite (`shortcut-train pretrained`).
// opt.Run and opt.Seed are not used. With opt.Arch keras-resnet50 it reads Keras .h5 weights
// onto Keras' ResNet50 instead (exportKeras, train/keras.go).
func ExportWeights(opt ImportOptions, out string) (sum *ImportSummary, m *Manifest, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("import %s: %v", opt.Path, r)
		}
	}()
	if opt.NewHead {
		return nil, nil, fmt.Errorf("export %s: a new (random) classifier cannot be exported untrained; import into a run and fine-tune it", opt.Path)
	}
	if strings.EqualFold(opt.Arch, models.KerasResNet50Arch) {
		return exportKeras(opt, out)
	}
	im, err := importTensors(opt)
	if err != nil {
		return nil, nil, err
	}
	m, blob, err := fold(im.ctx, im.net, im.meta)
	if err != nil {
		return nil, nil, fmt.Errorf("export %s: %w", opt.Path, err)
	}
	m.Arch = im.meta.Arch
	if err := writeExport(out, m, blob); err != nil {
		return nil, nil, err
	}
	return &ImportSummary{Meta: im.meta, Tensors: im.tensors, Ignored: im.ignored, Format: im.format}, m, nil
}
