// run.mjs: runs .tflite models with a real TFLite build under plain Node, as
// a witness for Shortcut's own runtime.
//
//   node [--experimental-wasm-relaxed-simd] run.mjs --engine litert|tfjs --threads 1|2 < jobs.jsonl
//
// One process loads one engine once (the WASM start-up is the slow part) and
// then runs every job it reads from stdin, one JSON object per line:
//
//   {"model": "m.tflite", "inputs": ["x.npy"], "outputs": ["y.npy"], "iters": 0}
//
// Inputs are given in the order of the model's subgraph inputs, as .npy files
// whose dtype and shape match the input tensor. Each output tensor is written
// to the matching path as .npy with the output tensor's dtype and shape (fewer
// paths than outputs: the rest are not written), or, with "output_dir": D
// instead of "outputs", every output i to D/output_<i>.npy. iters > 0 also
// times the model: warm-up runs ("warmup": N, or by default at least 2 runs
// and 200 ms), then iters timed runs.
//
// Every protocol line on stdout starts with "@@witness " followed by JSON, so
// that whatever the WASM glue prints cannot be mistaken for a result:
//
//   {"ready": true, "engine": ..., "threads": ..., "load_ms": ...}   once, after start-up
//   {"job": 0, "ok": true, "inputs": [...], "outputs": [...], "ms_mean": ..., "ms_min": ...}
//   {"job": 1, "ok": false, "error": "..."}                          a failed job; the rest go on
//   {"fatal": "..."}                                                 start-up failed; exit code 1
//
// LiteRT.js needs node's --experimental-wasm-relaxed-simd flag (Node 20): its
// SIMD builds use relaxed SIMD, and without the flag it falls back to a
// compatibility build that has no threads.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import util from 'node:util';
import {createRequire} from 'node:module';
import {fileURLToPath, pathToFileURL} from 'node:url';
import {performance} from 'node:perf_hooks';
import readline from 'node:readline';

import {readNpy, writeNpy, DTYPE_ARRAYS} from './npy.mjs';
import {installWorkerShim} from './worker_shim.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MODULES = path.join(HERE, 'node_modules');
const require = createRequire(import.meta.url);

function emit(obj) {
  process.stdout.write('@@witness ' + JSON.stringify(obj) + '\n');
}

// The WASM glue logs with console.log; keep stdout for the protocol.
for (const name of ['log', 'info', 'debug', 'warn']) {
  console[name] = (...args) => process.stderr.write(util.format(...args) + '\n');
}

function parseArgs(argv) {
  const opts = {engine: '', threads: 1};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`flag ${a} needs a value`);
      return argv[++i];
    };
    if (a === '--engine') opts.engine = next();
    else if (a === '--threads') opts.threads = Number(next());
    else throw new Error(`unknown argument ${JSON.stringify(a)}; usage: run.mjs --engine litert|tfjs --threads 1|2 < jobs.jsonl`);
  }
  if (opts.engine !== 'litert' && opts.engine !== 'tfjs') {
    throw new Error(`--engine must be litert or tfjs, got ${JSON.stringify(opts.engine)}`);
  }
  if (!Number.isInteger(opts.threads) || opts.threads < 1 || opts.threads > 64) {
    throw new Error(`--threads must be an integer from 1 to 64, got ${opts.threads}`);
  }
  return opts;
}

function shapeEqual(a, b) {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function checkInput(i, info, npy, file) {
  if (npy.dtype !== info.dtype) {
    throw new Error(`input ${i} (${info.name}): ${file} holds ${npy.dtype}, the model wants ${info.dtype}`);
  }
  if (!shapeEqual(npy.shape, info.shape)) {
    throw new Error(`input ${i} (${info.name}): ${file} has shape [${npy.shape}], the model wants [${info.shape}]`);
  }
}

// ---------------------------------------------------------------- LiteRT.js

// The LiteRT.js glue is CommonJS inside an ESM package ("type": "module"), so
// node will not require it in place. Copy it into a folder that says
// "type": "commonjs"; the threaded build also starts its pthread workers from
// that copy (via __filename), so it has to be a real file.
function liteRtGlueDir() {
  const src = path.join(MODULES, '@litertjs', 'core', 'wasm');
  const dst = path.join(MODULES, '.shortcut-litert-glue');
  fs.mkdirSync(dst, {recursive: true});
  // Several runners may start at once (parallel go test): write each file
  // under a private name and rename it into place, so nobody reads half a file.
  const put = (to, bytes) => {
    let same = false;
    try {
      same = fs.readFileSync(to).equals(bytes);
    } catch {}
    if (same) return;
    const tmp = `${to}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, to);
  };
  put(path.join(dst, 'package.json'), Buffer.from('{"type": "commonjs"}\n'));
  for (const f of fs.readdirSync(src)) {
    if (f.endsWith('.js')) put(path.join(dst, f), fs.readFileSync(path.join(src, f)));
  }
  return {src, dst};
}

async function startLiteRt(threads) {
  const {src, dst} = liteRtGlueDir();
  globalThis.self = globalThis;
  globalThis.location = {href: pathToFileURL(dst + '/').href, origin: 'file://'};
  if (!globalThis.navigator) globalThis.navigator = {hardwareConcurrency: os.cpus().length};
  globalThis.importScripts = (url) => {
    const name = path.basename(String(url));
    const glue = path.join(dst, name);
    const wasm = path.join(src, name.replace(/\.js$/, '.wasm'));
    globalThis.Module = {wasmBinary: fs.readFileSync(wasm)};
    globalThis.ModuleFactory = require(glue);
  };
  const litert = await import('@litertjs/core');
  if (!(await litert.supportsFeature('relaxedSimd'))) {
    throw new Error('this node lacks WASM relaxed SIMD, which the SIMD and threaded LiteRT.js builds use: run node with --experimental-wasm-relaxed-simd (Node 20)');
  }
  const lrt = await litert.loadLiteRt(dst + '/', {threads: threads > 1});
  const wasmThreads = lrt.liteRtWasm.getThreadCount();

  return {
    info: {build: threads > 1 ? 'litert_wasm_threaded_internal' : 'litert_wasm_internal', wasm_threads: wasmThreads},
    async load(bytes) {
      const model = await litert.loadAndCompile(bytes, {accelerator: 'wasm', cpuOptions: {numThreads: threads}});
      const describe = (d) => ({name: d.name, dtype: d.dtype, shape: Array.from(d.shape)});
      let inputs;
      let outputs;
      try {
        inputs = model.getInputDetails().map(describe);
        outputs = model.getOutputDetails().map(describe);
      } catch (e) {
        model.delete();
        throw e;
      }
      let fed = null;
      let results = null;
      const freeResults = () => {
        if (results) for (const t of results) t.delete();
        results = null;
      };
      return {
        inputs,
        outputs,
        setInputs(arrays) {
          if (fed) for (const t of fed) t.delete();
          fed = arrays.map((a, i) => new litert.Tensor(a, inputs[i].shape));
        },
        async run() {
          freeResults();
          results = await model.run(fed);
        },
        output(i) {
          return results[i].toTypedArray().slice();
        },
        close() {
          freeResults();
          if (fed) for (const t of fed) t.delete();
          model.delete();
        },
      };
    },
  };
}

// ------------------------------------------------------------- tfjs-tflite

async function startTfjs(threads) {
  const wasmDir = path.join(MODULES, '@tensorflow', 'tfjs-tflite', 'wasm');
  globalThis.self = globalThis;
  globalThis.location = {href: pathToFileURL(wasmDir + '/').href, origin: 'file://'};
  if (!globalThis.navigator) globalThis.navigator = {hardwareConcurrency: os.cpus().length};
  // tfjs-tflite picks its build from the features it sees; under node it
  // sees SIMD and threads and asks for the threaded build. One thread runs
  // the plain SIMD build, which needs no workers.
  const pick = (name) => (threads > 1 ? name : name.replace('_threaded', ''));
  // Requiring the package starts loading the WASM module at once (and only
  // once per process); wait for it here so that start-up is measured and
  // reported apart from the jobs.
  let settle;
  const instantiated = new Promise((resolve, reject) => (settle = {resolve, reject}));
  globalThis.importScripts = (url) => {
    const name = pick(path.basename(String(url)));
    const file = path.join(wasmDir, name);
    // The glue is a classic script that declares a global factory; indirect
    // eval runs it at global scope, as a browser worker would.
    (0, eval)(fs.readFileSync(file, 'utf8') + `\n//# sourceURL=${pathToFileURL(file).href}`);
    const factory = globalThis.tflite_web_api_ModuleFactory;
    const wasmBinary = fs.readFileSync(file.replace(/\.js$/, '.wasm'));
    globalThis.tflite_web_api_ModuleFactory = (arg = {}) => {
      arg.wasmBinary = wasmBinary;
      if (threads > 1) {
        arg.mainScriptUrlOrBlob = file;
        const locate = arg.locateFile;
        arg.locateFile = (p, dir) => (p.endsWith('.worker.js') ? path.join(wasmDir, pick(name).replace(/\.js$/, '.worker.js')) : locate ? locate(p, dir) : p);
      }
      const p = factory(arg);
      p.then(settle.resolve, settle.reject);
      return p;
    };
  };
  if (threads > 1) installWorkerShim();
  const tflite = require('@tensorflow/tfjs-tflite');
  await instantiated;

  return {
    info: {build: pick('tflite_web_api_cc_simd_threaded')},
    async load(bytes) {
      const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      const model = await tflite.loadTFLiteModel(buf, {numThreads: threads});
      const runner = model.modelRunner;
      const describe = (t) => ({
        name: t.name,
        dtype: t.dataType,
        shape: String(t.shape).split(',').filter((s) => s !== '').map(Number),
      });
      const inT = runner.getInputs();
      const outT = runner.getOutputs();
      const inputs = inT.map(describe);
      const outputs = outT.map(describe);
      for (const t of [...inputs, ...outputs]) {
        if (!DTYPE_ARRAYS[t.dtype]) {
          runner.cleanUp();
          throw new Error(`tensor ${t.name} has type ${t.dtype}; the witness handles float32, int32, int8, uint8`);
        }
      }
      return {
        inputs,
        outputs,
        setInputs(arrays) {
          arrays.forEach((a, i) => inT[i].data().set(a));
        },
        async run() {
          if (!runner.infer()) throw new Error('TFLiteWebModelRunner.infer() returned false');
        },
        output(i) {
          return outT[i].data().slice();
        },
        close() {
          runner.cleanUp();
        },
      };
    },
  };
}

// ------------------------------------------------------------------- jobs

async function runJob(engine, job) {
  if (typeof job.model !== 'string' || job.model === '') throw new Error('job has no "model" path');
  const inputs = job.inputs || [];
  let outputs = job.outputs || [];
  const iters = job.iters || 0;
  if (!Number.isInteger(iters) || iters < 0) throw new Error(`"iters" must be a non-negative integer, got ${job.iters}`);
  const warmup = job.warmup || 0;
  if (!Number.isInteger(warmup) || warmup < 0) throw new Error(`"warmup" must be a non-negative integer, got ${job.warmup}`);
  let bytes;
  try {
    bytes = new Uint8Array(fs.readFileSync(job.model));
  } catch (e) {
    throw new Error(`model ${job.model}: ${e.message}`);
  }
  let m;
  const t0 = performance.now();
  try {
    m = await engine.load(bytes);
  } catch (e) {
    throw new Error(`model ${job.model}: load failed: ${errText(e)}`);
  }
  const loadMs = performance.now() - t0;
  try {
    if (inputs.length !== m.inputs.length) {
      throw new Error(`model ${job.model} has ${m.inputs.length} inputs (${m.inputs.map((t) => t.name).join(', ')}), the job gives ${inputs.length}`);
    }
    if (job.output_dir) {
      if (outputs.length > 0) throw new Error('give either "outputs" or "output_dir", not both');
      outputs = m.outputs.map((_, i) => path.join(job.output_dir, `output_${i}.npy`));
    }
    if (outputs.length > m.outputs.length) {
      throw new Error(`model ${job.model} has ${m.outputs.length} outputs, the job names ${outputs.length} files`);
    }
    const arrays = inputs.map((file, i) => {
      const npy = readNpy(file);
      checkInput(i, m.inputs[i], npy, file);
      return npy.data;
    });
    m.setInputs(arrays);
    const result = {ok: true, load_ms: loadMs, inputs: m.inputs, outputs: m.outputs};
    await m.run();
    if (iters > 0) {
      // V8 compiles WASM first with its baseline compiler and swaps in
      // optimized code in the background; warm up before timing. Default:
      // at least 2 more runs and 200 ms, at most 50 runs.
      const t0 = performance.now();
      for (let k = 0; warmup > 0 ? k < warmup : k < 50 && (k < 2 || performance.now() - t0 < 200); k++) {
        await m.run();
      }
      let sum = 0;
      let min = Infinity;
      for (let k = 0; k < iters; k++) {
        const t0 = performance.now();
        await m.run();
        const dt = performance.now() - t0;
        sum += dt;
        if (dt < min) min = dt;
      }
      result.ms_mean = sum / iters;
      result.ms_min = min;
      result.iters = iters;
    }
    outputs.forEach((file, i) => {
      if (!file) return;
      const o = m.outputs[i];
      writeNpy(file, o.dtype, o.shape, m.output(i));
    });
    return result;
  } finally {
    m.close();
  }
}

function errText(e) {
  if (e instanceof Error) return e.message;
  return String(e);
}

async function main() {
  let opts;
  let engine;
  const t0 = performance.now();
  try {
    opts = parseArgs(process.argv.slice(2));
    engine = opts.engine === 'litert' ? await startLiteRt(opts.threads) : await startTfjs(opts.threads);
  } catch (e) {
    emit({fatal: `start ${opts ? opts.engine : ''}: ${errText(e)}`});
    process.exit(1);
  }
  emit({ready: true, engine: opts.engine, threads: opts.threads, node: process.version, load_ms: performance.now() - t0, ...engine.info});

  const rl = readline.createInterface({input: process.stdin, crlfDelay: Infinity});
  let n = 0;
  for await (const line of rl) {
    if (line.trim() === '') continue;
    const id = n++;
    try {
      const job = JSON.parse(line);
      const r = await runJob(engine, job);
      emit({job: id, ...r});
    } catch (e) {
      emit({job: id, ok: false, error: errText(e)});
    }
  }
  // Threaded builds keep worker threads alive; leave explicitly.
  process.exit(0);
}

main();
