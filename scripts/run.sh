#!/usr/bin/env bash
# `make run`: the main end-to-end job on embedded defaults.
# Today: make an int8 ResNet-50 (224x224, random weights) with our own builder
# and quantizer, write it as .tflite, run it in our runtime and in a real
# TFLite (LiteRT.js), and show that both agree.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out/run}
mkdir -p "$out"
echo "== 1. build and quantize an int8 ResNet-50 -> $out/resnet50_int8.tflite"
bin/shortcut-train random-model --depth 50 --input 224,224,3 --classes 1000 --int8 --out "$out/resnet50_int8.tflite"
echo "== 2. run it: ours vs a real TFLite on the same input"
go run ./internal/cmd/agree --train bin/shortcut-train --model "$out/resnet50_int8.tflite" --dir "$out"
echo "== 3. time it"
bin/shortcut-train bench --model "$out/resnet50_int8.tflite" --iters 3
