// A browser-style Worker over node's worker_threads, just enough for the
// Emscripten pthread code in tfjs-tflite's threaded build. That build was made
// for browsers only: it creates `new Worker(url)`, talks through
// onmessage/postMessage, and the worker loads the main glue with importScripts.

import {Worker as NodeWorker} from 'node:worker_threads';
import {fileURLToPath} from 'node:url';

// Runs inside each worker thread (CommonJS, evaluated by worker_threads).
const BOOTSTRAP = `
const {parentPort, workerData} = require('node:worker_threads');
const fs = require('node:fs');
const {pathToFileURL} = require('node:url');
globalThis.self = globalThis;
globalThis.location = {href: pathToFileURL(workerData.file).href, origin: 'file://'};
globalThis.navigator = {hardwareConcurrency: workerData.cores};
globalThis.postMessage = (msg, transfer) => parentPort.postMessage(msg, transfer);
globalThis.importScripts = (url) => {
  const file = String(url).startsWith('file:') ? require('node:url').fileURLToPath(url) : String(url);
  (0, eval)(fs.readFileSync(file, 'utf8') + '\\n//# sourceURL=' + pathToFileURL(file).href);
};
parentPort.on('message', (data) => {
  if (typeof self.onmessage === 'function') self.onmessage({data});
});
importScripts(workerData.file);
`;

class WebWorker {
  constructor(url) {
    const s = String(url);
    const file = s.startsWith('file:') ? fileURLToPath(s) : s;
    this.onmessage = null;
    this.onerror = null;
    this.listeners = {message: [], error: []};
    this.worker = new NodeWorker(BOOTSTRAP, {
      eval: true,
      workerData: {file, cores: globalThis.navigator?.hardwareConcurrency || 1},
    });
    this.worker.on('message', (data) => {
      const ev = {data};
      if (this.onmessage) this.onmessage(ev);
      for (const fn of this.listeners.message) fn(ev);
    });
    this.worker.on('error', (e) => {
      const ev = {message: e?.message, filename: '', lineno: 0, error: e};
      if (this.onerror) this.onerror(ev);
      for (const fn of this.listeners.error) fn(ev);
      if (!this.onerror && this.listeners.error.length === 0) process.stderr.write(`worker error: ${e?.stack || e}\n`);
    });
    // Not unref()'d: while the main thread awaits a worker's reply, the
    // worker is what keeps node running. run.mjs exits explicitly.
  }

  postMessage(msg, transfer) {
    this.worker.postMessage(msg, transfer);
  }

  addEventListener(type, fn) {
    (this.listeners[type] ||= []).push(fn);
  }

  removeEventListener(type, fn) {
    const l = this.listeners[type];
    if (l) this.listeners[type] = l.filter((f) => f !== fn);
  }

  terminate() {
    this.worker.terminate();
  }
}

export function installWorkerShim() {
  globalThis.Worker = WebWorker;
}
