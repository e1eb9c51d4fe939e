#!/usr/bin/env bash
# Issue 5's full-size numbers: ResNet-20 and ResNet-50 trained on Fashion-MNIST on the lent GPU,
# then (on that machine's CPUs, with our runtime) exported, quantized with each calibration
# method and scored on the whole test set: float and int8 accuracy, top-1 agreement, worst
# layers' SQNR. No Go there: build here, carry the binary.
#
#   here:     make gpu-prep
#   there:    scripts/gpu-quant.sh                 (carry: bin, out/gpu-data)
#   here:     scripts/gpu-quant.sh --witness DIR [eval flags]   (DIR: the files that came back)
#             runs the int8 models it brought back in LiteRT.js/tfjs-tflite on the whole test set
#   dry run:  GPU_QUANT_DRY=1 scripts/gpu-quant.sh (here, CPU, tiny models; numbers mean nothing)
#
# Results go to $OUT (the device tool brings back 8 files of at most 16 MiB) or out/gpu-quant:
# summary.txt (the table), quant.json, train.log, r20-int8.tflite, r50-int8.tflite split into
# 15 MiB parts (r50-int8.tflite.part-aa, -ab, ...).
#
# Settings (environment): ARCHS (resnet20,resnet50), EPOCHS (30), METHODS (minmax,percentile,mse,mse+bc;
# +bc: with bias correction),
# CALIBRATION (1000), BIN (bin/shortcut-train), GPU_DATA (out/gpu-data/fashion-mnist), PYTHON,
# RUNS (arch=DIR,...: quantize the latest checkpoint of a run trained elsewhere instead of training;
# with GPU_QUANT_CPU=1 no GPU is needed, e.g. RUNS=resnet20=runs/r20 GPU_QUANT_CPU=1), EVAL_LIMIT
# (score only the first N test images).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin/shortcut-train}
DATA=${GPU_DATA:-out/gpu-data/fashion-mnist}
PYTHON=${PYTHON:-python3}
die() { echo "gpu-quant: $*" >&2; exit 1; }

if [ "${1:-}" = --witness ]; then
	# Here, after the run: the witness on the full test set for each int8 model that came back.
	DIR=${2:?usage: scripts/gpu-quant.sh --witness DIR}
	mkdir -p out
	for p in "$DIR"/*.tflite.part-aa; do
		[ -e "$p" ] || continue
		cat "${p%.part-aa}".part-* >"out/gpu-quant-$(basename "${p%.part-aa}")"
	done
	for m in "$DIR"/*-int8.tflite out/gpu-quant-*-int8.tflite; do
		[ -f "$m" ] || continue
		echo "== witness: $m =="
		"$BIN" eval --model "$m" --data fashion-mnist --witness --layers 0 "${@:3}" | grep -E '^(model|accuracy|TFLite)'
	done
	exit 0
fi

ARCHS=${ARCHS:-resnet20,resnet50}
EPOCHS=${EPOCHS:-30}
METHODS=${METHODS:-minmax,percentile,mse,mse+bc}
CALIBRATION=${CALIBRATION:-1000}
RES=${GPU_QUANT_OUT:-${OUT:-out/gpu-quant}}
RUNS=${RUNS:-}

[ -x "$BIN" ] || die "$BIN missing: run 'make gpu-prep' here and carry bin/"
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
	[ -f "$DATA/$f" ] || die "$DATA/$f missing: run 'make gpu-prep' here and carry out/gpu-data"
done
mkdir -p "$RES"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-quant.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SUMMARY=$RES/summary.txt
: >"$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }

if [ "${GPU_QUANT_DRY:-0}" = 1 ]; then
	BACKEND=cpu OPS=portable
	FIT_EXTRA=(--width 4 --epochs 1 --train-limit 512 --test-limit 256 --downsample 2 --pad-to 16)
	Q_EXTRA=(--downsample 2) EVAL_EXTRA=(--downsample 2 --limit 500)
	CALIBRATION=64
	say "gpu-quant DRY RUN on the CPU (tiny settings; numbers mean nothing)"
elif [ "${GPU_QUANT_CPU:-0}" = 1 ]; then
	BACKEND=cpu OPS=portable FIT_EXTRA=() Q_EXTRA=() EVAL_EXTRA=(--witness) # LiteRT.js is here
	say "gpu-quant on the CPU: runs $RUNS"
else
	. scripts/gpu/xla-env.sh
	FIT_EXTRA=(--epochs "$EPOCHS" --pad-to 32)
	Q_EXTRA=() EVAL_EXTRA=()
	say "gpu-quant on $(nvidia-smi -L 2>/dev/null | head -1 || echo 'unknown GPU')"
fi
[ -z "${EVAL_LIMIT:-}" ] || EVAL_EXTRA+=(--limit "$EVAL_LIMIT")
# Training on the GPU; quantization and scoring on the CPU cores there, our runtime.
for a in ${ARCHS//,/ }; do
	short=r${a#resnet}
	run=$(echo ",$RUNS," | grep -o ",$a=[^,]*" | cut -d= -f2- || true)
	if [ -n "$run" ]; then
		# A run trained elsewhere (e.g. on this CPU): its latest checkpoint.
		say ""
		say "== $a: run $run (latest checkpoint) =="
		"$BIN" export --run "$run" --latest --out "$WORK/$short-float" >>"$RES/train.log" 2>&1 || die "export $a failed"
	else
		say ""
		say "== $a: fit --recipe fast ${FIT_EXTRA[*]} =="
		t0=$(date +%s)
		"$BIN" fit --arch "$a" --data "fashion-mnist:$DATA" --recipe fast --backend "$BACKEND" --ops "$OPS" \
			--run "$WORK/$short" --progress off --checkpoint-every 0 "${FIT_EXTRA[@]}" \
			>"$WORK/$short-fit.out" 2>>"$RES/train.log" || { tail -5 "$RES/train.log" >&2; die "fit $a failed"; }
		say "$(grep -E '^(test_acc|train_img_per_s)=' "$WORK/$short-fit.out" | tr '\n' ' ')fit_wall_s=$(($(date +%s) - t0))"
		"$BIN" export --run "$WORK/$short" --out "$WORK/$short-float" >>"$RES/train.log" 2>&1 || die "export $a failed"
	fi
	for m in ${METHODS//,/ }; do
		q=$WORK/$short-$m.tflite
		bc=()
		[ "${m%+bc}" = "$m" ] || bc=(--bias-correction)
		"$BIN" quantize --model "$WORK/$short-float" --data "fashion-mnist:$DATA" --calibration "$CALIBRATION" \
			--method "${m%+bc}" "${bc[@]}" "${Q_EXTRA[@]}" --out "$q" >>"$RES/train.log" 2>&1 || die "quantize $a $m failed"
		"$BIN" eval --model "$q" --float "$WORK/$short-float" --data "fashion-mnist:$DATA" --layers 3 \
			"${EVAL_EXTRA[@]}" --json "$WORK/$short-$m.json" >"$WORK/$short-$m.eval" 2>>"$RES/train.log" ||
			die "eval $a $m failed"
		grep -A4 -i 'worst\|sqnr' "$WORK/$short-$m.eval" | head -6 >>"$RES/train.log" || true
	done
	# The first method's model comes back for the witness run here.
	first=${METHODS%%,*}
	if [ "$(stat -c %s "$WORK/$short-$first.tflite")" -le $((15 * 1024 * 1024)) ]; then
		cp "$WORK/$short-$first.tflite" "$RES/$short-int8.tflite"
	else
		split -b 15M "$WORK/$short-$first.tflite" "$RES/$short-int8.tflite.part-"
	fi
done

say ""
say "== float vs int8 on the test set (our runtime, reference arithmetic) =="
"$PYTHON" - "$WORK" "$RES/quant.json" <<'PY' | tee -a "$SUMMARY"
import json, sys, glob, os
rows = []
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    r = json.load(open(f))
    model, method = os.path.basename(f)[:-5].split("-", 1)
    fl, q = r["float_score"]["accuracy"] * 100, r["score"]["accuracy"] * 100
    # Logits carry a note: their range is chosen for the scores and clips extremes on purpose.
    plain = [l for l in r.get("layers") or [] if not l.get("note")]
    worst = min(plain or [{"sqnr_db": float("nan")}], key=lambda l: l["sqnr_db"])
    w = r.get("witness") or {}
    rows.append(dict(model=model, method=method, images=r["images"], float_acc=fl, int8_acc=q,
                     delta=q - fl, agreement=r["agreement"] * 100, worst_layer=worst.get("name", ""),
                     worst_sqnr_db=worst["sqnr_db"],
                     tflite=("%.2f / %.2f (%.2f)" % (w["accuracy"] * 100, w["agreement"] * 100,
                                                   w["agreement_ties"] * 100)) if w else "not run"))
print("| model | calibration | images | float % | int8 % | int8 - float | top-1 agreement int8/float % "
      "| worst layer SQNR dB | TFLite accuracy / agreement with ours (ties) % |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print("| {model} | {method} | {images} | {float_acc:.2f} | {int8_acc:.2f} | {delta:+.2f} | {agreement:.2f} | "
          "{worst_sqnr_db:.1f} ({worst_layer}) | {tflite} |".format(**r))
json.dump(rows, open(sys.argv[2], "w"), indent=1)
PY
