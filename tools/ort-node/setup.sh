#!/bin/sh
# Installs ONNX Runtime for Node (onnxruntime-node, pinned by
# package-lock.json) that Shortcut's tests and `make bench` use as a native
# CPU witness and speed peer. Idempotent: runs `npm ci` only when
# node_modules is missing or package-lock.json changed since the last install.
#
# --ignore-scripts: the package's install script downloads optional CUDA
# parts from a host that may not be reachable; the CPU library
# (bin/napi-v6/<os>/<arch>/libonnxruntime.so.1) ships inside the package.
set -eu
cd "$(dirname "$0")"

if ! command -v npm >/dev/null 2>&1; then
	echo "ort-node setup: npm is needed (Debian: apt-get install nodejs npm)" >&2
	exit 1
fi
stamp=node_modules/.shortcut-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	exit 0
fi
echo "ort-node setup: npm ci (package-lock.json changed or node_modules missing)"
npm ci --ignore-scripts --no-audit --no-fund
case $(uname -s)-$(uname -m) in
Linux-x86_64) lib=node_modules/onnxruntime-node/bin/napi-v6/linux/x64 ;;
Linux-aarch64) lib=node_modules/onnxruntime-node/bin/napi-v6/linux/arm64 ;;
*) lib="" ;;
esac
if [ -n "$lib" ] && [ ! -f "$lib/libonnxruntime.so.1" ]; then
	echo "ort-node setup: $lib/libonnxruntime.so.1 is missing from the package" >&2
	exit 1
fi
echo "$want" > "$stamp"
