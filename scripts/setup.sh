#!/usr/bin/env bash
# Installs what Shortcut needs on a Debian 12 (or Raspberry Pi OS bookworm)
# machine, as root. Idempotent: it installs only what is missing, so reruns are
# cheap. Two parts:
#
#   scripts/setup.sh run    what `make run` needs: cgo, OpenCV with its
#                           GStreamer plugins, Fashion-MNIST (the demo video)
#   scripts/setup.sh test   all of `run`, plus what `make test` and the board
#                           builds need: mosquitto, the real TFLite and ONNX
#                           Runtime under Node, Arm NN, chromium, qemu and the
#                           arm64 cross toolchain and sysroot
#   scripts/setup.sh        the same as `test`
#
# Output: one line per thing installed and why, then `setup: ok`. apt's and
# npm's own output goes to $SETUP_LOG (default out/setup.log) and is printed
# only when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

part=${1:-test}
case $part in
run | test) ;;
*) echo "usage: scripts/setup.sh [run|test]" >&2; exit 2 ;;
esac

log=${SETUP_LOG:-out/setup.log}
mkdir -p "$(dirname "$log")"
: >"$log"

fail() {
	echo "setup: $*" >&2
	if [ -s "$log" ]; then
		echo "setup: the last lines of $log:" >&2
		tail -n 25 "$log" >&2
	fi
	exit 1
}

# step DESCRIPTION COMMAND...: runs COMMAND with its output in the log.
step() {
	local what=$1
	shift
	echo "== $*" >>"$log"
	"$@" >>"$log" 2>&1 || fail "$what failed"
}

if ! command -v go >/dev/null; then
	echo "setup: Go 1.26 is required (https://go.dev/dl): put it on PATH and rerun" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
	echo "setup: run as root (it installs Debian packages with apt-get)" >&2
	exit 1
fi
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Each entry: "package|why". The run part first; the test part adds to it.
RUN_PACKAGES=(
	"build-essential|cgo (gocv and the agent)"
	"pkg-config|cgo finds OpenCV"
	"libopencv-dev|cameras and video through OpenCV 4.6 (gocv v0.25.0)"
	"gstreamer1.0-plugins-base|GStreamer sources: videotestsrc, videoconvert, appsink"
	"gstreamer1.0-plugins-good|GStreamer camera pipelines: v4l2src, jpegdec, rtspsrc"
	"dataset-fashion-mnist|the demo's video of real Fashion-MNIST test images"
	"ca-certificates|Go modules over HTTPS"
	"curl|the demo asks the agent's /healthz"
)
TEST_PACKAGES=(
	"mosquitto|a real MQTT broker for the agent tests"
	"mosquitto-clients|mosquitto_pub and mosquitto_sub in the tests"
	"nodejs|the real TFLite witness runs under Node"
	"npm|installs the witness (LiteRT.js, tfjs-tflite)"
	"procps|tests look at processes (ps, pgrep)"
	"qemu-user-static|arm64 tests under qemu-user"
	"gcc-aarch64-linux-gnu|cross-compiling the agent for arm64 with cgo"
	"g++-aarch64-linux-gnu|cross-compiling Arm NN code for arm64"
	"systemd|systemd-analyze verify of the unit"
	"adduser|package install checks"
	"g++|the Arm NN witness"
	"libarmnn-dev|Arm NN, a second witness and an accelerator backend"
	"libarmnntfliteparser-dev|Arm NN's .tflite parser"
	"libarmnn-cpuref-backend22|Arm NN's reference backend"
	"chromium|the agent's web page tested in a real browser (headless)"
	"llvm-19|make arm-estimate and its test: llvm-mca prices the Pis' cores"
	"python3-torch|PyTorch (CPU): the witness of pretrained's torch.save .pth and safetensors import (scripts/gpu-pretrained.sh)"
	"python3-torchvision|torchvision's own ResNet-18/50 for that witness"
)

wanted=("${RUN_PACKAGES[@]}")
[ "$part" = run ] || wanted+=("${TEST_PACKAGES[@]}")

# The arm64 package lists (for the cross-build sysroot; nothing arm64 is
# installed on this machine). Only the test part needs them.
if [ "$part" = test ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
	echo "setup: adding arm64 to apt's architectures (the arm64 sysroot for board builds)"
	step "dpkg --add-architecture arm64" as_root dpkg --add-architecture arm64
	need_update=1
fi

need_update=${need_update:-0}
have_node() { command -v node >/dev/null && command -v npm >/dev/null; }
missing=()
for entry in "${wanted[@]}"; do
	p=${entry%%|*}
	why=${entry#*|}
	# Node may come from elsewhere (a newer install): then Debian's is not needed.
	if [[ $p == nodejs || $p == npm ]] && have_node; then continue; fi
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing+=("$p")
		echo "setup: installing $p: $why"
	fi
done
if ((${#missing[@]})) || [ "$need_update" = 1 ]; then
	step "apt-get update" as_root apt-get update
	if ((${#missing[@]})); then
		step "apt-get install ${missing[*]}" as_root env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends "${missing[@]}"
	fi
fi

if [ "$part" = test ]; then
	# The real TFLite witness (pinned versions, lock file committed). It says
	# itself what it installs (Node.js 20 when the system's is older, npm ci).
	if [ -x tools/tflite-node/setup.sh ]; then
		ok=1
		tools/tflite-node/setup.sh >"$log.node" 2>&1 || ok=0
		grep -E '^tflite-node setup:' "$log.node" | sed 's/^tflite-node setup: /setup: witness: /' || true
		cat "$log.node" >>"$log"
		rm -f "$log.node"
		[ "$ok" = 1 ] || fail "tools/tflite-node/setup.sh failed"
	fi
	# ONNX Runtime, the native peer (onnxruntime-node 1.30.0), and the HDF5
	# witnesses of Keras files (h5wasm 0.10.3, jsfive 0.4.2): lock file
	# committed, npm ci --ignore-scripts.
	if [ -x tools/ort-node/setup.sh ]; then
		ok=1
		tools/ort-node/setup.sh >"$log.ort" 2>&1 || ok=0
		grep -E '^ort-node setup:' "$log.ort" | sed 's/^ort-node setup: /setup: onnx runtime: /' || true
		cat "$log.ort" >>"$log"
		rm -f "$log.ort"
		[ "$ok" = 1 ] || fail "tools/ort-node/setup.sh failed"
	fi
	# The arm64 sysroot (Debian's arm64 OpenCV and Arm NN unpacked; made once).
	ok=1
	scripts/cross-arm64.sh sysroot >"$log.sysroot" 2>&1 || ok=0
	grep -E '^cross-arm64: making' "$log.sysroot" | sed 's/^cross-arm64: /setup: /' || true
	cat "$log.sysroot" >>"$log"
	rm -f "$log.sysroot"
	[ "$ok" = 1 ] || fail "the arm64 sysroot (scripts/cross-arm64.sh sysroot) failed"
fi

echo "setup: ok"
