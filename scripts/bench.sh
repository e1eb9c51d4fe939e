#!/usr/bin/env bash
# `make bench`: prints the benchmark tables. Each section is measured in this
# run, beside its peer where there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== runtime: int8 ResNet-50 224x224 (ours vs a real TFLite, same run)"
go run ./internal/cmd/benchtable -train bin/shortcut-train -iters "${BENCH_ITERS:-5}"
echo "== runtime: ours vs ONNX Runtime (native CPU), int8 and float ResNet-50/18 224 and ResNet-20 32, 1 and 2 threads, interleaved"
go run ./internal/cmd/benchtable -train bin/shortcut-train -peer ort -rounds "${BENCH_ROUNDS:-5}" -iters "${BENCH_ORT_ITERS:-2}"
echo "== runtime: ResNet-50 224 per kernel path and thread count"
go test -run '^$' -bench ResNet50 -benchtime "${BENCH_ITERS:-5}x" ./resnet/interp/
echo "== camera: capture + preprocessing per frame (640x480 and 1920x1080 to 224x224)"
go test -run '^$' -bench . ./camera/
echo "== agent: per-frame overhead (instant classifier), publish rate to mosquitto, RSS with int8 ResNet-50 (target <= 150 MB), CPU of one web page viewer"
go test -run '^$' -bench . -benchtime 1x ./agent/
echo "== on-device learning: head training time"
go test -run '^$' -bench Train -benchtime 5x ./agent/head/
echo "== shortcut-train head: embeddings of 1,000 224x224 JPEGs with int8 ResNet-50 (one interpreter per core), and the whole command on 10 classes x 100 Fashion-MNIST PNGs"
go test -run '^$' -bench Head -benchtime 1x ./cmd/train/
echo "== agent: inference stage on int8 ResNet-50 224, our kernels vs the onnxruntime-cpu accelerator (binary built with -tags onnxruntime)"
go test -tags onnxruntime -run '^$' -bench InferenceEngines -benchtime "${BENCH_ITERS:-5}x" ./agent/
