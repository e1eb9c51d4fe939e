#!/bin/sh
# Builds the int8 kernel and interpreter tests for arm64 and runs them under
# qemu user emulation: once on a CPU with the dot-product extension (the
# NEON SDOT, NEON and Go kernels) and once on a Cortex-A53 (no SDOT: the
# plain NEON and Go kernels). Correctness only; qemu says nothing about speed.
# Needs Debian's qemu-user-static. Takes about a minute.
set -eu
cd "$(dirname "$0")/.."
command -v qemu-aarch64-static >/dev/null || {
	echo "test-arm64-kernels: qemu-aarch64-static not found; apt-get install qemu-user-static" >&2
	exit 1
}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for pkg in fast interp; do
	path=./resnet/internal/fast/
	[ "$pkg" = interp ] && path=./resnet/interp/
	GOARCH=arm64 CGO_ENABLED=0 go test -c -o "$dir/$pkg.arm64" "$path"
done
for cpu in max cortex-a53; do
	for pkg in fast interp; do
		echo "== $pkg on qemu -cpu $cpu"
		timeout 300 qemu-aarch64-static -cpu "$cpu" "$dir/$pkg.arm64" -test.short -test.timeout 280s
	done
done
