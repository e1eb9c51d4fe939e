// Package head is Shortcut's on-device learning: it keeps the embeddings
// (and optional JPEG thumbnails) that a user labels at the edge, trains a
// softmax classifier ("head") on them in Go, saves both atomically under a
// state directory, and merges a trained head back into a .tflite model.
//
// Data flows: the model's embedding output ([]float32 from resnet/interp)
// -> Store.Add -> Store.Snapshot -> Trainer.Train (on its own goroutine)
// -> *Head (immutable; the caller swaps it in with an atomic.Pointer)
// -> Head.Predict on every frame. Dir.Save/Dir.Load persist a State (head
// plus examples); Export writes the head into the model's FULLY_CONNECTED
// classifier so a plain TFLite runtime gives the same answers.
//
// The base head comes from the model itself (FromModel dequantizes the
// classifier that feeds the SOFTMAX), so a head in Extend mode keeps every
// class the model already knew and adds the user's ones.
package head
