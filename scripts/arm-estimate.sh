#!/bin/sh
# Raspberry Pi 5 and Pi 4 latency estimates of int8 ResNet-50 224 with our
# kernels, by simulation (internal/armestimate): the real arm64 code runs
# once under qemu-user with its execution log on, and LLVM's pipeline
# models of the boards' cores (llvm-mca 19) price every basic block.
# Needs qemu-user-static and llvm-19; about two minutes on 2 cores.
# Arguments go to the command: -model M.tflite, -depth, -size, -boards pi5.
set -eu
cd "$(dirname "$0")/.."
missing=
command -v qemu-aarch64-static >/dev/null || missing="$missing qemu-user-static"
command -v llvm-mca-19 >/dev/null || missing="$missing llvm-19"
if [ -n "$missing" ]; then
	echo "arm-estimate: apt-get install -y$missing" >&2
	exit 1
fi
exec go run ./internal/cmd/armestimate "$@"
