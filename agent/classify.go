package agent

import "github.com/shortcut-edge/shortcut/agent/classify"

// The classify stage (package agent/classify: loading and checking a model,
// sessions, accelerators) under the names the agent and its callers use.
type (
	ModelInfo         = classify.ModelInfo
	Classifier        = classify.Classifier
	Session           = classify.Session
	EmbeddingSession  = classify.EmbeddingSession
	HeadModel         = classify.HeadModel
	ModelLoader       = classify.ModelLoader
	AcceleratorStatus = classify.AcceleratorStatus
)

// LoadModel reads, prepares and checks a .tflite (classify.LoadModel).
func LoadModel(path string) (Classifier, error) { return classify.LoadModel(path) }
