package train

import (
	"encoding/json"
	"fmt"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/shortcut-edge/shortcut/train/data"
	"github.com/shortcut-edge/shortcut/train/models"
)

// metaParam is the context parameter (saved in every checkpoint) that holds ModelMeta as JSON.
const metaParam = "shortcut_model"

// stateParam holds RunState as JSON.
const stateParam = "shortcut_run"

// ModelMeta describes a trained model well enough to rebuild, evaluate and export it.
type ModelMeta struct {
	Arch       string    `json:"arch"`
	BaseWidth  int       `json:"base_width"`
	Height     int       `json:"height"`   // network input (after PadTo)
	Width      int       `json:"width"`    //
	Channels   int       `json:"channels"` //
	Classes    []string  `json:"classes"`
	Mean       []float32 `json:"mean"` // input normalization per channel, on the 0..1 scale
	Std        []float32 `json:"std"`
	PadTo      int       `json:"pad_to"`      // dataset images were padded to this size
	DataHeight int       `json:"data_height"` // dataset image size before padding
	DataWidth  int       `json:"data_width"`
	Dataset    string    `json:"dataset"`
}

// Net returns the layer list of the model.
func (m ModelMeta) Net() (*models.Net, error) {
	return models.New(models.Config{Arch: m.Arch, BaseWidth: m.BaseWidth, Height: m.Height, Width: m.Width,
		Channels: m.Channels, NumClasses: len(m.Classes)})
}

// batchOptions returns the evaluation pipeline of the model (no augmentation).
func (m ModelMeta) batchOptions(batch int) data.BatchOptions {
	return data.BatchOptions{BatchSize: batch, Norm: data.Normalization{Mean: m.Mean, Std: m.Std}, PadTo: m.PadTo}
}

// RunState is the training progress saved with each checkpoint, so a resumed run continues.
type RunState struct {
	EpochsDone  int     `json:"epochs_done"`
	StepInEpoch int64   `json:"step_in_epoch"` // steps of the unfinished epoch already taken
	BestValAcc  float64 `json:"best_val_acc"`
	BestEpoch   int     `json:"best_epoch"`
	Seed        uint64  `json:"seed"`
	Recipe      string  `json:"recipe"`
	TotalSteps  int64   `json:"total_steps"`
}

func setJSONParam(ctx *context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx.InAbsPath(context.RootScope).SetParam(key, string(b))
	return nil
}

// getJSONParam reads a JSON parameter; found is false when absent.
func getJSONParam(ctx *context.Context, key string, v any) (found bool, err error) {
	raw, ok := ctx.InAbsPath(context.RootScope).GetParam(key)
	if !ok {
		return false, nil
	}
	s, ok := raw.(string)
	if !ok {
		return true, fmt.Errorf("checkpoint parameter %q is %T, want a JSON string", key, raw)
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return true, fmt.Errorf("checkpoint parameter %q: %w", key, err)
	}
	return true, nil
}
