// run.mjs: runs ONNX models with ONNX Runtime's native CPU library
// (onnxruntime-node), as a witness and native speed peer for Shortcut's own
// runtime.
//
//   node run.mjs < jobs.jsonl                       the protocol (internal/ort)
//   node run.mjs bench --model m.onnx [--threads N] [--warmup W] [--iters M]
//                                                   a quick timing by hand
//
// The protocol: one process reads jobs from stdin, one JSON object per line,
// and answers each (in order, as soon as it is done) with one line on stdout:
//
//   {"model": "m.onnx", "inputs": ["x.npy"], "outputs": ["y.npy"] | "output_dir": "D",
//    "threads": 1, "warmup": 2, "iters": 0, "optimized_model": "opt.onnx"}
//
// Inputs are .npy files in the order of the model's inputs, dtype and shape
// as the model declares; outputs are written as .npy (all of them to
// D/output_<i>.npy with "output_dir"). "threads" is the session's
// intraOpNumThreads (inter-op 1, sequential execution, all graph
// optimizations). A session is made once per (model, threads) and kept, so a
// later job on it measures warm runs only. "iters" > 0 times the model:
// "warmup" untimed runs (default 2), then "iters" timed runs, reported as
// ms_min, ms_median, ms_mean and every sample. "optimized_model" writes the
// graph as ONNX Runtime rewrote it (the fused integer operators can be read
// there).
//
// Protocol lines start with "@@ort " followed by JSON:
//   {"ready": true, "ort": "1.30.0", "node": ...}                  once
//   {"job": 0, "ok": true, "inputs": [...], "outputs": [...], "load_ms": ..., "ms_min": ...}
//   {"job": 1, "ok": false, "error": "..."}                        the rest go on
//   {"fatal": "..."}                                               start-up failed; exit 1

import fs from 'node:fs';
import path from 'node:path';
import util from 'node:util';
import readline from 'node:readline';
import {createRequire} from 'node:module';
import {performance} from 'node:perf_hooks';

// The .npy reader and writer are the TFLite runner's (plain JS, no packages).
import {readNpy, writeNpy} from '../tflite-node/npy.mjs';

const require = createRequire(import.meta.url);

function emit(obj) {
  process.stdout.write('@@ort ' + JSON.stringify(obj) + '\n');
}

for (const name of ['log', 'info', 'debug', 'warn']) {
  console[name] = (...args) => process.stderr.write(util.format(...args) + '\n');
}

function errText(e) {
  return e instanceof Error ? e.message : String(e);
}

// ORT's tensor type names and ours (.npy dtypes) differ only in spelling.
const ORT_TO_NPY = {float32: 'float32', int8: 'int8', uint8: 'uint8', int32: 'int32'};

const sessions = new Map(); // model + threads -> {session, loadMs}

async function session(ort, model, threads, optimized) {
  const key = `${model}\u0000${threads}`;
  const have = sessions.get(key);
  if (have && !optimized) return {...have, cached: true};
  const opts = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  if (optimized) opts.optimizedModelFilePath = optimized;
  const t0 = performance.now();
  let s;
  try {
    s = await ort.InferenceSession.create(new Uint8Array(fs.readFileSync(model)), opts);
  } catch (e) {
    throw new Error(`model ${model}: ONNX Runtime did not load it: ${errText(e)}`);
  }
  const entry = {session: s, loadMs: performance.now() - t0};
  if (have) await have.session.release();
  sessions.set(key, entry);
  return {...entry, cached: false};
}

function describe(meta) {
  return meta.map((m) => ({name: m.name, dtype: ORT_TO_NPY[m.type] || m.type, shape: (m.shape || []).map(Number)}));
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

function nonNegInt(v, what, dflt) {
  if (v === undefined || v === null) return dflt;
  if (!Number.isInteger(v) || v < 0) throw new Error(`"${what}" must be a non-negative integer, got ${JSON.stringify(v)}`);
  return v;
}

async function runJob(ort, job) {
  if (typeof job.model !== 'string' || job.model === '') throw new Error('job has no "model" path');
  const threads = nonNegInt(job.threads, 'threads', 1) || 1;
  const iters = nonNegInt(job.iters, 'iters', 0);
  const warmup = nonNegInt(job.warmup, 'warmup', 2);
  const {session: s, loadMs, cached} = await session(ort, job.model, threads, job.optimized_model);
  const inputs = describe(s.inputMetadata);
  const outputs = describe(s.outputMetadata);
  const files = job.inputs || [];
  if (files.length !== inputs.length) {
    throw new Error(`model ${job.model} has ${inputs.length} inputs (${inputs.map((t) => t.name).join(', ')}), the job gives ${files.length}`);
  }
  const feeds = {};
  files.forEach((file, i) => {
    const npy = readNpy(file);
    const want = inputs[i];
    if (npy.dtype !== want.dtype) {
      throw new Error(`input ${i} (${want.name}): ${file} holds ${npy.dtype}, the model wants ${want.dtype}`);
    }
    feeds[want.name] = new ort.Tensor(npy.dtype, npy.data, npy.shape);
  });
  let outFiles = job.outputs || [];
  if (job.output_dir) {
    if (outFiles.length > 0) throw new Error('give either "outputs" or "output_dir", not both');
    outFiles = outputs.map((_, i) => path.join(job.output_dir, `output_${i}.npy`));
  }
  if (outFiles.length > outputs.length) {
    throw new Error(`model ${job.model} has ${outputs.length} outputs, the job names ${outFiles.length} files`);
  }
  const result = {ok: true, threads, load_ms: cached ? 0 : loadMs, inputs, outputs};
  let res = await s.run(feeds);
  if (iters > 0) {
    for (let k = 0; k < warmup; k++) res = await s.run(feeds);
    const samples = [];
    for (let k = 0; k < iters; k++) {
      const t0 = performance.now();
      res = await s.run(feeds);
      samples.push(performance.now() - t0);
    }
    result.samples = samples;
    result.ms_min = Math.min(...samples);
    result.ms_median = median(samples);
    result.ms_mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    result.iters = iters;
  }
  outFiles.forEach((file, i) => {
    if (!file) return;
    const t = res[s.outputNames[i]];
    const dtype = ORT_TO_NPY[t.type];
    if (!dtype) throw new Error(`output ${i} (${s.outputNames[i]}) has type ${t.type}; the runner writes float32, int32, int8, uint8`);
    outputs[i].shape = t.dims.map(Number);
    writeNpy(file, dtype, outputs[i].shape, t.data);
  });
  return result;
}

function loadOrt() {
  const ort = require('onnxruntime-node');
  const version = require('onnxruntime-node/package.json').version;
  return {ort, version};
}

async function serve() {
  let ort;
  let version;
  try {
    ({ort, version} = loadOrt());
  } catch (e) {
    emit({fatal: `load onnxruntime-node: ${errText(e)}`});
    process.exit(1);
  }
  emit({ready: true, ort: version, node: process.version});
  const rl = readline.createInterface({input: process.stdin, crlfDelay: Infinity});
  let n = 0;
  for await (const line of rl) {
    if (line.trim() === '') continue;
    const id = n++;
    try {
      emit({job: id, ...(await runJob(ort, JSON.parse(line)))});
    } catch (e) {
      emit({job: id, ok: false, error: errText(e)});
    }
  }
  process.exit(0);
}

// bench: random standard-normal (float) or random 8-bit inputs of the shapes
// the model declares; prints one line with min and median ms.
async function bench(argv) {
  const o = {model: '', threads: 1, warmup: 3, iters: 10};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`flag ${a} needs a value`);
    i++;
    if (a === '--model') o.model = v;
    else if (a === '--threads') o.threads = Number(v);
    else if (a === '--warmup') o.warmup = Number(v);
    else if (a === '--iters') o.iters = Number(v);
    else throw new Error(`unknown flag ${a}; usage: run.mjs bench --model m.onnx [--threads N] [--warmup W] [--iters M]`);
  }
  if (!o.model) throw new Error('bench needs --model');
  for (const k of ['threads', 'iters']) if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`--${k} must be a positive integer`);
  if (!Number.isInteger(o.warmup) || o.warmup < 0) throw new Error('--warmup must be a non-negative integer');
  const {ort, version} = loadOrt();
  const {session: s, loadMs} = await session(ort, o.model, o.threads);
  const feeds = {};
  let seed = 1;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (const m of s.inputMetadata) {
    const shape = m.shape.map((d) => (typeof d === 'number' ? d : 1));
    const n = shape.reduce((a, b) => a * b, 1);
    let data;
    if (m.type === 'float32') {
      data = Float32Array.from({length: n}, () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd()));
    } else if (m.type === 'int8') {
      data = Int8Array.from({length: n}, () => Math.floor(rnd() * 256) - 128);
    } else if (m.type === 'uint8') {
      data = Uint8Array.from({length: n}, () => Math.floor(rnd() * 256));
    } else {
      throw new Error(`input ${m.name} has type ${m.type}; bench fills float32, int8 and uint8 inputs`);
    }
    feeds[m.name] = new ort.Tensor(m.type, data, shape);
  }
  for (let k = 0; k < o.warmup + 1; k++) await s.run(feeds);
  const samples = [];
  for (let k = 0; k < o.iters; k++) {
    const t0 = performance.now();
    await s.run(feeds);
    samples.push(performance.now() - t0);
  }
  console.log = (...a) => process.stdout.write(util.format(...a) + '\n');
  console.log(`onnxruntime-node ${version} model=${o.model} threads=${o.threads} load_ms=${loadMs.toFixed(1)} warmup=${o.warmup} iters=${o.iters} min_ms=${Math.min(...samples).toFixed(2)} median_ms=${median(samples).toFixed(2)}`);
  process.exit(0);
}

const argv = process.argv.slice(2);
if (argv[0] === 'bench') {
  bench(argv.slice(1)).catch((e) => {
    process.stderr.write(`run.mjs bench: ${errText(e)}\n`);
    process.exit(1);
  });
} else if (argv.length > 0) {
  process.stderr.write(`run.mjs: unknown arguments ${JSON.stringify(argv)}; usage: run.mjs < jobs.jsonl, or run.mjs bench --model m.onnx [--threads N] [--warmup W] [--iters M]\n`);
  process.exit(2);
} else {
  serve();
}
