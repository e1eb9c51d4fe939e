package agent

import (
	"time"

	"github.com/shortcut-edge/shortcut/agent/payload"
)

// The wire contract (package agent/payload) under the names the agent and
// its callers use.
type (
	ModelRef         = payload.ModelRef
	Scored           = payload.Scored
	Latency          = payload.Latency
	Prediction       = payload.Prediction
	State            = payload.State
	CameraEvent      = payload.CameraEvent
	Event            = payload.Event
	UpdateInfo       = payload.UpdateInfo
	Reply            = payload.Reply
	HeadInfo         = payload.HeadInfo
	LearnResult      = payload.LearnResult
	LabelCount       = payload.LabelCount
	Capturing        = payload.Capturing
	LabelsResult     = payload.LabelsResult
	ForgetResult     = payload.ForgetResult
	ResetResult      = payload.ResetResult
	ExportResult     = payload.ExportResult
	ModelResult      = payload.ModelResult
	ImportResult     = payload.ImportResult
	LearnProgress    = payload.LearnProgress
	Health           = payload.Health
	HealthMQTT       = payload.HealthMQTT
	HealthCamera     = payload.HealthCamera
	HealthSource     = payload.HealthSource
	WebStatus        = payload.WebStatus
	WebModel         = payload.WebModel
	WebCamera        = payload.WebCamera
	WebSession       = payload.WebSession
	WebLabels        = payload.WebLabels
	WebLabelExamples = payload.WebLabelExamples
	WebExample       = payload.WebExample
	UploadResult     = payload.UploadResult
)

const (
	EventNew               = payload.EventNew
	EventUpdate            = payload.EventUpdate
	EventEnd               = payload.EventEnd
	EventModelReloaded     = payload.EventModelReloaded
	EventModelReloadFailed = payload.EventModelReloadFailed
	EventHeadTrained       = payload.EventHeadTrained
	EventHeadTrainFailed   = payload.EventHeadTrainFailed
	EventHeadReset         = payload.EventHeadReset
	EventHeadImported      = payload.EventHeadImported
	NoState                = payload.NoState
)

func stamp(t time.Time) string            { return payload.Stamp(t) }
func ms(d time.Duration) float64          { return payload.MS(d) }
func round(v float64, digits int) float64 { return payload.Round(v, digits) }
func mustJSON(v any) []byte               { return payload.JSON(v) }
