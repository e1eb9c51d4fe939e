#!/usr/bin/env bash
# Installs every Debian and npm package that the build, the tests and `make run`
# need. Idempotent: it installs only what is missing, so it is cheap to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
  build-essential pkg-config          # cgo (gocv)
  libopencv-dev                       # camera/ (gocv v0.25.0 over OpenCV 4.6)
  mosquitto mosquitto-clients         # a real MQTT broker for the agent tests
  dataset-fashion-mnist               # real training and accuracy tests
  nodejs npm                          # the TFLite witness (LiteRT.js, tfjs-tflite)
  qemu-user-static                    # arm64 tests under qemu-user
  gcc-aarch64-linux-gnu g++-aarch64-linux-gnu  # cross-compiling the agent with cgo
  systemd adduser                     # systemd-analyze verify, package install checks
  g++ libarmnn-dev libarmnntfliteparser-dev libarmnn-cpuref-backend22  # Arm NN, a second witness
)

# arm64 package lists, so the cross-build sysroot can be downloaded (nothing
# arm64 is installed on this machine).
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
  apt-get update -qq
fi

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# Node may come from elsewhere (a newer install); accept any node >= 18 with npm.
if command -v node >/dev/null && command -v npm >/dev/null; then
  tmp=()
  for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || tmp+=("$p"); done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v go >/dev/null; then
  echo "setup: Go 1.26 is required (https://go.dev/dl); put it on PATH and rerun" >&2
  exit 1
fi

# The real TFLite witness (pinned versions, lock file committed).
if [ -x tools/tflite-node/setup.sh ]; then
  tools/tflite-node/setup.sh
fi
# The arm64 sysroot (Debian's arm64 OpenCV and Arm NN unpacked; built once).
scripts/cross-arm64.sh sysroot >/dev/null

echo "setup: ok"
