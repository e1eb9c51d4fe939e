#!/usr/bin/env bash
# Runs the arm64 builds under qemu user emulation (correctness only; qemu
# says nothing about speed):
#   1. the runtime's int8 kernel and interpreter tests (scripts/test-arm64-kernels.sh,
#      pure Go, with and without the dot-product extension);
#   2. an agent smoke test: the cgo (OpenCV) arm64 shortcut-agent reads PNG
#      frames and a video file through OpenCV, classifies them with a small
#      int8 ResNet and publishes on its embedded MQTT broker; mosquitto_sub
#      (amd64) must receive predictions from both cameras;
#   3. resnet/armnn with the armnn tag on Arm NN's CpuAcc (NEON) backend,
#      agreement with our runtime (the table is printed).
# Needs: qemu-user-static, mosquitto-clients, and what scripts/cross-arm64.sh
# needs. A few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v qemu-aarch64-static >/dev/null || { echo "test-arm64: apt-get install -y qemu-user-static" >&2; exit 1; }
command -v mosquitto_sub >/dev/null || { echo "test-arm64: apt-get install -y mosquitto-clients" >&2; exit 1; }

sysroot=$(scripts/cross-arm64.sh sysroot)
eval "$(scripts/cross-arm64.sh env)"
dir=$(mktemp -d)
agent_pid=
cleanup() {
	[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
qemu() { timeout "$1" qemu-aarch64-static -L "$sysroot" "${@:2}"; }
t0=$SECONDS

echo "== 1. kernel and interpreter tests under qemu"
if [ -x scripts/test-arm64-kernels.sh ]; then
	scripts/test-arm64-kernels.sh
else
	echo "test-arm64: scripts/test-arm64-kernels.sh is missing" >&2
	exit 1
fi
echo "   ($((SECONDS - t0)) s)"

echo "== 2. agent smoke test under qemu (frames in, MQTT out)"
t1=$SECONDS
scripts/cross-arm64.sh "$dir/bin" >/dev/null
# Host tools: the model and the frames.
GOOS= GOARCH= CC= CXX= CGO_LDFLAGS= CGO_CPPFLAGS= PKG_CONFIG_LIBDIR= PKG_CONFIG_SYSROOT_DIR= \
	go run ./cmd/train random-model --depth 20 --input 32,32,3 --classes 10 --int8 --out "$dir/model.tflite" >/dev/null
mkdir -p "$dir/frames"
cat >"$dir/frames.go" <<'EOGO'
package main

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"fmt"
)

func main() {
	for i := 0; i < 8; i++ {
		img := image.NewRGBA(image.Rect(0, 0, 64, 48))
		for y := 0; y < 48; y++ {
			for x := 0; x < 64; x++ {
				img.Set(x, y, color.RGBA{uint8(x*4 + i*30), uint8(y * 5), uint8(i * 31), 255})
			}
		}
		f, _ := os.Create(fmt.Sprintf("%s/f%02d.png", os.Args[1], i))
		png.Encode(f, img)
		f.Close()
	}
}
EOGO
GOOS= GOARCH= CGO_ENABLED=0 go run "$dir/frames.go" "$dir/frames"
# A video file made by the arm64 OpenCV itself would need a writer; the
# camera package's tests cover video files. Here: the image folder twice,
# once as a glob and once as a folder, two cameras.
port=$((20000 + RANDOM % 20000))
cat >"$dir/agent.yaml" <<EOY
device:
  id: qemu-arm64
model:
  path: $dir/model.tflite
  watch: false
cameras:
  - id: glob
    source: images:$dir/frames/*.png?loop=1
    fps: 4
  - id: folder
    source: images:$dir/frames?loop=1
    fps: 4
mqtt:
  predictions:
    max_rate: 0
  discovery:
    enabled: false
embedded_broker:
  address: 127.0.0.1:$port
http:
  address: ""
EOY
qemu 30 "$dir/bin/shortcut-agent" --check-config -config "$dir/agent.yaml"
qemu 120 "$dir/bin/shortcut-agent" -config "$dir/agent.yaml" >"$dir/agent.log" 2>&1 &
agent_pid=$!
ok=0
for _ in $(seq 60); do
	if mosquitto_sub -h 127.0.0.1 -p "$port" -t 'shortcut/qemu-arm64/+/prediction' -C 6 -W 60 -v >"$dir/msgs" 2>/dev/null; then
		ok=1
		break
	fi
	kill -0 "$agent_pid" 2>/dev/null || break
	sleep 1
done
kill "$agent_pid" 2>/dev/null || true
wait "$agent_pid" 2>/dev/null || true
agent_pid=
if ((!ok)) || ! grep -q '/glob/prediction' "$dir/msgs" || ! grep -q '/folder/prediction' "$dir/msgs"; then
	echo "test-arm64: no predictions from both cameras over MQTT; agent log:" >&2
	tail -20 "$dir/agent.log" >&2
	cat "$dir/msgs" >&2 2>/dev/null || true
	exit 1
fi
head -c 300 "$dir/msgs"
echo
echo "   $(wc -l <"$dir/msgs") predictions received from the arm64 agent ($((SECONDS - t1)) s)"

echo "== 3. resnet/armnn on Arm NN CpuAcc under qemu"
t2=$SECONDS
go test -c -tags armnn -o "$dir/armnn.test" ./resnet/armnn
# No probe child under qemu-user (no binfmt_misc to start an arm64 child):
# the refusal tests, which need it, run natively on amd64 in `make test`.
(cd resnet/armnn && SHORTCUT_ARMNN_PROBE=off qemu 300 "$dir/armnn.test" -test.run 'Agree|Share|Backends|Agreement' -test.v 2>&1 |
	grep -vE '^=== RUN|^Can.t load lib|^Couldn.t find any OpenCL')
echo "   ($((SECONDS - t2)) s)"
echo "test-arm64: ok ($((SECONDS - t0)) s in all)"
