#!/usr/bin/env bash
# GPU check of issue 4, for the lent H100 (no Go there: build here, carry the binary).
#
#   here:     make gpu-prep     # bin/shortcut-train (stripped) + out/gpu-data/fashion-mnist/*.gz
#   there:    scripts/gpu-check.sh        (carry: bin, out/gpu-data)
#   dry run:  GPU_CHECK_DRY=1 scripts/gpu-check.sh   (here, on the CPU, tiny settings)
#
# Steps: (1) ResNet-20 on Fashion-MNIST with the "fast" recipe through XLA + the CUDA PJRT
# plugin that JAX ships; prints test accuracy, wall time, images/s against the targets
# (>= 94.0 % in <= 180 s). (2) bench-train: our training step of ResNet-20 and ResNet-56 at batch
# 128. (3) scripts/gpu/torch_step.py: PyTorch's step of the same networks (fp32, channels_last,
# bf16 autocast). (4) ratios ours / PyTorch's best mode. Results go to $OUT (the device tool
# brings it back) or out/gpu-check, summary.txt last.
#
# Settings (environment): EPOCHS (30), FIT_ARCH (resnet20), BENCH_ARCHS (resnet20,resnet56),
# BENCH_STEPS (100), TORCH_MODES (fp32,channels_last,bf16; add channels_last_bf16 or compile),
# BIN (bin/shortcut-train), GPU_DATA (out/gpu-data/fashion-mnist), PYTHON (python3).
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=${GPU_CHECK_DRY:-0}
BIN=${BIN:-bin/shortcut-train}
DATA=${GPU_DATA:-out/gpu-data/fashion-mnist}
RES=${GPU_CHECK_OUT:-${OUT:-out/gpu-check}}
PYTHON=${PYTHON:-python3}
EPOCHS=${EPOCHS:-30}
FIT_ARCH=${FIT_ARCH:-resnet20}
BENCH_ARCHS=${BENCH_ARCHS:-resnet20,resnet56}
BENCH_STEPS=${BENCH_STEPS:-100}
TORCH_MODES=${TORCH_MODES:-fp32,channels_last,bf16}
TARGET_ACC=0.940
TARGET_WALL=180

die() { echo "gpu-check: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "$BIN missing: run 'make gpu-prep' here and carry bin/"
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
	[ -f "$DATA/$f" ] || die "$DATA/$f missing: run 'make gpu-prep' here and carry out/gpu-data"
done
mkdir -p "$RES"
# Work files stay in WORK; at exit, at most 7 files go to RES (the device tool returns 8 at most).
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
SUMMARY=$WORK/summary.txt
: >"$SUMMARY"
collect() {
	cat "$WORK"/bench-*.out "$WORK"/bench-*.log >"$WORK/bench.log" 2>/dev/null || true
	cat "$WORK/torch.out" "$WORK/torch.log" >"$WORK/torch-all.log" 2>/dev/null || true
	for f in summary.txt fit.out fit.log bench.log; do
		[ -f "$WORK/$f" ] && cp "$WORK/$f" "$RES/$f"
	done
	[ -f "$WORK/torch-all.log" ] && cp "$WORK/torch-all.log" "$RES/torch.log"
	[ -f "$WORK/fit-run/metrics.csv" ] && cp "$WORK/fit-run/metrics.csv" "$RES/fit-metrics.csv"
	[ -f "$WORK/fit-run/curves.png" ] && cp "$WORK/fit-run/curves.png" "$RES/fit-curves.png"
	rm -rf "$WORK"
}
trap collect EXIT
say() { echo "$*" | tee -a "$SUMMARY"; }
# val KEY FILE: the value of the last KEY=value in FILE.
val() { grep -o "\(^\|[[:space:]]\)$1=[^[:space:]]*" "$2" | tail -1 | sed 's/.*=//'; }

if [ "$DRY" = 1 ]; then
	# Same commands, tiny and on the CPU: proves the script, not the GPU.
	BACKEND=cpu OPS=portable
	FIT_EXTRA=(--arch resnet8 --width 4 --epochs 1 --train-limit 512 --test-limit 256 --downsample 2 --pad-to 16)
	BENCH_ARCHS=resnet8,resnet14
	BENCH_EXTRA=(--width 4 --batch 16 --input 16,16,3 --steps 3 --warmup 1)
	TORCH_EXTRA=(--device cpu --width 4 --batch 16 --input 16,16,3 --steps 3 --warmup 1)
	TARGET_ACC=0 TARGET_WALL=100000
	if ! "$PYTHON" -c 'import torch' 2>/dev/null && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
		PYTHON=/usr/bin/python3 # Debian's python3-torch when the default python3 lacks torch
	fi
	say "gpu-check DRY RUN on the CPU (tiny settings; numbers mean nothing)"
else
	. scripts/gpu/xla-env.sh
	FIT_EXTRA=(--arch "$FIT_ARCH" --epochs "$EPOCHS" --pad-to 32)
	BENCH_EXTRA=(--batch 128 --input 32,32,3 --steps "$BENCH_STEPS" --warmup 10)
	TORCH_EXTRA=(--device cuda --batch 128 --input 32,32,3 --steps "$BENCH_STEPS" --warmup 10)
	say "gpu-check on $(nvidia-smi -L 2>/dev/null | head -1 || echo 'unknown GPU')"
fi
say "binary $BIN; data $DATA; results $RES (summary.txt, fit.out, fit.log, fit-metrics.csv, fit-curves.png, bench.log, torch.log)"

# 1. Fashion-MNIST accuracy and wall time (process start to exit: data, compilation, training, test).
say ""
say "== fit: recipe fast, ${FIT_EXTRA[*]} =="
t0=$(date +%s.%N)
set +e
"$BIN" fit --data "fashion-mnist:$DATA" --recipe fast --backend "$BACKEND" --ops "$OPS" --run "$WORK/fit-run" \
	--progress off --checkpoint-every 0 "${FIT_EXTRA[@]}" >"$WORK/fit.out" 2>"$WORK/fit.log"
rc=$?
set -e
t1=$(date +%s.%N)
cat "$WORK/fit.out"
[ $rc = 0 ] || { tail -5 "$WORK/fit.log" >&2; die "fit failed (exit $rc); log in $RES/fit.log"; }
acc=$(val test_acc "$WORK/fit.out")
ips=$(val train_img_per_s "$WORK/fit.out")
wall=$(echo "$t1 - $t0" | bc)
acc_ok=$(echo "$acc >= $TARGET_ACC" | bc)
wall_ok=$(echo "$wall <= $TARGET_WALL" | bc)
say "fit_test_acc=$acc target>=$TARGET_ACC $([ "$acc_ok" = 1 ] && echo PASS || echo FAIL)"
say "fit_wall_s=$(printf %.1f "$wall") target<=$TARGET_WALL $([ "$wall_ok" = 1 ] && echo PASS || echo FAIL)"
say "fit_train_img_per_s=$ips"

# 2. Our training step.
say ""
say "== bench-train: our step, fixed batch on the device =="
declare -A OURS TORCH TORCHMODE
for a in ${BENCH_ARCHS//,/ }; do
	"$BIN" bench-train --arch "$a" --backend "$BACKEND" --ops "$OPS" --recipe fast "${BENCH_EXTRA[@]}" \
		>"$WORK/bench-$a.out" 2>"$WORK/bench-$a.log" || { cat "$WORK/bench-$a.log" >&2; die "bench-train $a failed"; }
	OURS[$a]=$(val img_per_s "$WORK/bench-$a.out")
	say "ours arch=$a compile_s=$(val compile_s "$WORK/bench-$a.out") step_ms=$(val step_ms "$WORK/bench-$a.out") img_per_s=${OURS[$a]}"
done

# 3. PyTorch's step of the same networks.
say ""
say "== PyTorch step ($TORCH_MODES) =="
if [ "$DRY" = 1 ] && ! "$PYTHON" -c 'import torch' 2>/dev/null; then
	# The CPU machines here have no PyTorch (no PyPI). The dry run checks all
	# it can and says so; the real run fails if PyTorch fails there.
	"$PYTHON" -c 'import sys; compile(open(sys.argv[1]).read(), sys.argv[1], "exec")' scripts/gpu/torch_step.py || die "scripts/gpu/torch_step.py does not compile"
	say "PyTorch is not installed here ($PYTHON): torch_step.py compiles, but the PyTorch comparison needs the GPU machine's PyTorch; skipped in this dry run"
	say ""
	say "summary in $RES/summary.txt"
	exit 0
fi
set +e
PYTHONUNBUFFERED=1 "$PYTHON" scripts/gpu/torch_step.py --archs "$BENCH_ARCHS" --modes "$TORCH_MODES" \
	"${TORCH_EXTRA[@]}" >"$WORK/torch.out" 2>"$WORK/torch.log"
trc=$?
set -e
tee -a "$SUMMARY" <"$WORK/torch.out"
if [ $trc != 0 ]; then
	echo "gpu-check: torch_step.py exit $trc (a mode failed; see $RES/torch.log)" | tee -a "$SUMMARY" >&2
	tail -5 "$WORK/torch.log" >&2 || true
fi
for a in ${BENCH_ARCHS//,/ }; do
	line=$(grep "^torch_best arch=$a " "$WORK/torch.out" || true)
	TORCH[$a]=$(echo "$line" | grep -o 'img_per_s=[^ ]*' | sed 's/.*=//' || true)
	TORCHMODE[$a]=$(echo "$line" | grep -o 'mode=[^ ]*' | sed 's/.*=//' || true)
done

# 4. Ratios.
say ""
say "== ours / PyTorch (training throughput, batch as above; target >= 1.00 against the best mode) =="
for a in ${BENCH_ARCHS//,/ }; do
	if [ -z "${TORCH[$a]}" ]; then
		say "ratio arch=$a: no PyTorch number"
		continue
	fi
	r=$(printf %.3f "$(echo "scale=4; ${OURS[$a]} / ${TORCH[$a]}" | bc)")
	ok=$(echo "$r >= 1" | bc)
	say "ratio arch=$a ours=${OURS[$a]} torch_best=${TORCH[$a]} (${TORCHMODE[$a]}) ratio=$r $([ "$ok" = 1 ] && echo PASS || echo FAIL)"
	grep "^torch arch=$a " "$WORK/torch.out" | grep -o 'mode=[^ ]*\|img_per_s=[^ ]*' | paste - - |
		while read -r m i; do
			say "  vs ${m#mode=}: $(printf %.3f "$(echo "scale=4; ${OURS[$a]} / ${i#img_per_s=}" | bc)")"
		done
done
say ""
say "summary in $RES/summary.txt"
[ $trc = 0 ] || die "the PyTorch step failed (exit $trc): the comparison is incomplete"
