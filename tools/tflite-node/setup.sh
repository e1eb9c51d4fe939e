#!/bin/sh
# Installs the real TFLite builds (LiteRT.js, tfjs-tflite) that Shortcut's
# tests use as a witness. Idempotent: runs `npm ci` only when node_modules is
# missing or package-lock.json changed since the last install.
set -eu
cd "$(dirname "$0")"

if ! command -v npm >/dev/null 2>&1; then
	echo "tflite-node setup: npm is needed (Debian: apt-get install nodejs npm)" >&2
	exit 1
fi
major=0
if command -v node >/dev/null 2>&1; then
	major=$(node -p 'process.versions.node.split(".")[0]')
fi
if [ "$major" -lt 20 ] && [ ! -x .node/bin/node ]; then
	# Debian 12 ships Node.js 18; the witness was verified on 20. The npm
	# registry carries Node.js itself as a package: install it here, beside
	# the runner (internal/witness looks in .node/bin first).
	case $(uname -m) in
	x86_64) arch=x64 ;;
	aarch64 | arm64) arch=arm64 ;;
	*) echo "tflite-node setup: node $(node --version 2>/dev/null) is too old and no Node.js 20 package exists for $(uname -m)" >&2; exit 1 ;;
	esac
	echo "tflite-node setup: system node is missing or older than 20; installing node-linux-$arch@20 from the npm registry into .node"
	npm install --no-save --no-audit --no-fund --prefix .node "node-linux-$arch@20"
	mkdir -p .node/bin
	ln -sf "../node_modules/node-linux-$arch/bin/node" .node/bin/node
	.node/bin/node --version
fi

stamp=node_modules/.shortcut-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	exit 0
fi
echo "tflite-node setup: npm ci (package-lock.json changed or node_modules missing)"
npm ci --no-audit --no-fund
echo "$want" > "$stamp"
