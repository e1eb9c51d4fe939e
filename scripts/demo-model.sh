#!/usr/bin/env bash
# `make demo-model`: remakes configs/demo/fashion-resnet8-int8.tflite, the
# model `make run` uses, with our own tools only: train a ResNet-8 on
# Fashion-MNIST on the CPU, export it with batch norm folded, quantize it to
# int8 with calibration on training images. Takes several minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${RUN:-out/demo-model}
rm -rf "$run"
mkdir -p "$run" configs/demo
bin/shortcut-train fit --arch resnet8 --width 8 --data fashion-mnist --recipe fast --epochs 3 \
  --train-limit 20000 --val 0 --batch 64 --run "$run/run" --progress off
bin/shortcut-train export --run "$run/run" --out "$run/export"
bin/shortcut-train quantize --model "$run/export" --data fashion-mnist --calibration 500 --method minmax \
  --out configs/demo/fashion-resnet8-int8.tflite --report "$run/quant-report.json"
bin/shortcut-train eval --model configs/demo/fashion-resnet8-int8.tflite --float "$run/export" --data fashion-mnist --limit 2000 --layers 0
