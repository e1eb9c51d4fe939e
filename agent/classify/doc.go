// Package classify is the agent's classify stage: it loads a .tflite, checks
// it against the model contract (resnet/modelio: one image input, scores,
// embedding; a classifier without an embedding output gets its last
// FULLY_CONNECTED's input), runs it once, and gives every camera its own
// Session over shared weights. Accelerate moves sessions to Arm NN or ONNX
// Runtime when those agree with our kernels. The agent (package agent)
// wires it between preprocessing and the decision stage.
package classify
