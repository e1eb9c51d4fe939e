#!/usr/bin/env bash
# Runs the AVX-VNNI int8 kernel's tests on a CPU without AVX-VNNI.
#
# No emulator here runs AVX-VNNI: Debian's qemu-user-static 7.2 (and QEMU's
# TCG to this day) has no VEX VPDPBUSD; `qemu-x86_64-static -cpu max` shows
# AVX2 but no AVX-VNNI (nor AVX-512), and `-cpu max,+avx-vnni` warns "TCG
# doesn't support requested feature: CPUID.07H:EAX.avx-vnni [bit 4]".
# Instead the fast package is assembled with -D AVXVNNI_AS_EVEX: each of the
# AVX-VNNI kernel's VEX VPDPBUSD becomes the EVEX one (same operation on the
# same YMM registers, AVX-512 VNNI + VL), the package then offers the
# "avxvnni" family on an AVX-512 VNNI CPU, and every test that loops over
# the families runs it: everything of the kernel but those 5-byte encodings,
# which `go run gen_tile.go gen_tilearm.go gen_armas.go -check` (in resnet/internal/fast)
# compares with GNU as.
#
# Needs an AVX-512 VNNI CPU (it says so and exits 0 elsewhere). ~15 s.
set -euo pipefail
cd "$(dirname "$0")/.."
pkg=github.com/shortcut-edge/shortcut/resnet/internal/fast
flags=(-count=1 "-asmflags=$pkg=-D=AVXVNNI_AS_EVEX")
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# The fast package's kernel tests and the interpreter's every-kernel-path
# tests (both arithmetics), verbose so that the avxvnni subtests are counted.
go test "${flags[@]}" -v -run 'Conv|XNNPACK|Kernel|Tile' ./resnet/internal/fast/ ./resnet/interp/ >"$out" 2>&1 || {
	grep -E -- '^(--- FAIL|FAIL|panic)|^\s+--- FAIL' "$out" | head -40 >&2
	tail -20 "$out" >&2
	exit 1
}
n=$(grep -c -E -- '--- PASS: .*avxvnni' "$out" || true)
if [ "$n" -eq 0 ]; then
	if grep -q -E 'avx512_vnni' /proc/cpuinfo && grep -q -E 'avx512vl' /proc/cpuinfo; then
		echo "test-avxvnni: no avxvnni subtest ran on an AVX-512 VNNI CPU: the EVEX twin is not in effect" >&2
		exit 1
	fi
	echo "test-avxvnni: this CPU has no AVX-512 VNNI to run the EVEX twin on; nothing tested"
	exit 0
fi
echo "test-avxvnni: $n avxvnni subtests passed (EVEX twin of the AVX-VNNI kernel, both arithmetics)"
