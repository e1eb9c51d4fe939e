// keras-h5.mjs writes Keras 2 weight files (HDF5, the layout of Keras 2's
// model.save_weights / the keras-applications .h5 files) with h5wasm, the HDF5
// C library compiled to WebAssembly, and reads any HDF5 file back with jsfive,
// an independent pure-JavaScript reader. Shortcut's tests use both as
// witnesses for its own HDF5 reader (train/h5) and Keras importer.
//
//   node keras-h5.mjs write SPEC.json OUT.h5
//   node keras-h5.mjs write SPECS.json -     (SPECS: an array of SPEC, each with "out": the file)
//   node keras-h5.mjs read IN.h5 OUTDIR
//
// write: SPEC is
//   {"blob": "/abs/weights.bin",            // little-endian float32 values
//    "layers": [{"name": "conv1_conv",
//                "weights": [{"name": "conv1_conv/kernel:0", "shape": [7,7,3,64], "offset": 0}]}],
//    "strings": "fixed" | "vlen",           // layer_names/weight_names (h5py writes fixed, "S<n>")
//    "libver": "earliest" | "latest" | ...,  // h5wasm's libver bound (default: the library's)
//    "dtype": "<f" | "<d",                  // dataset element type (default "<f"; a weight's own
//                                            // "dtype" overrides it, "<i" too: a wrong type on purpose)
//    "chunks": true, "compression": 0..9,    // chunked datasets (one chunk per tensor), deflate
//    "split_layer_names": 0,                 // >0: layer_names0, layer_names1, ... of this many names
//    "extra_attrs": true}                    // root attributes backend and keras_version
//   Each layer becomes a group holding the attribute weight_names and the
//   datasets <layer>/<weight name>, as Keras does; a weight name with a slash
//   makes a nested group (conv1_conv/conv1_conv/kernel:0).
//
// read: writes OUTDIR/index.json, {"layer_names": [...], "tensors": [{"layer",
//   "name", "path", "shape", "dtype", "offset"}]}, and OUTDIR/values.bin, every
//   tensor's values as little-endian float64 (jsfive's own decoding), in the
//   order of layer_names and then weight_names.
import fs from "node:fs";
import path from "node:path";

function die(msg) {
  process.stderr.write(`keras-h5: ${msg}\n`);
  process.exit(1);
}

function toStrings(v) {
  if (v === undefined || v === null) return [];
  if (typeof v === "string") return [v];
  // jsfive keeps the NUL padding of fixed-length strings; h5py (numpy's "S")
  // drops it, and so does Keras.
  return Array.from(v, (s) => (typeof s === "string" ? s : new TextDecoder().decode(s)).replace(/\0+$/, ""));
}

async function write(specPath, outPath) {
  const specs = JSON.parse(fs.readFileSync(specPath, "utf8"));
  const h5wasm = await import("h5wasm/node");
  await h5wasm.ready;
  if (Array.isArray(specs)) {
    for (const spec of specs) writeOne(h5wasm, spec, spec.out);
  } else {
    writeOne(h5wasm, specs, outPath);
  }
}

function writeOne(h5wasm, spec, outPath) {
  const blob = fs.readFileSync(spec.blob);
  const floats = new Float32Array(blob.buffer, blob.byteOffset, blob.byteLength / 4);
  const opts = {};
  if (spec.libver) opts.libver = spec.libver;
  const f = new h5wasm.File(outPath, "w", opts);
  const strAttr = (g, name, list) => {
    if (list.length === 0) {
      // Keras writes an empty weight_names as numpy's empty float64 array.
      g.create_attribute(name, new Float64Array(0), [0], "<d");
      return;
    }
    if (spec.strings === "vlen") {
      g.create_attribute(name, list, [list.length]);
    } else {
      const n = Math.max(1, ...list.map((s) => Buffer.byteLength(s)));
      g.create_attribute(name, list, [list.length], `S${n}`);
    }
  };
  const names = spec.layers.map((l) => l.name);
  if (spec.split_layer_names > 0) {
    for (let i = 0, k = 0; i < names.length; i += spec.split_layer_names, k++) {
      strAttr(f, `layer_names${k}`, names.slice(i, i + spec.split_layer_names));
    }
  } else {
    strAttr(f, "layer_names", names);
  }
  if (spec.extra_attrs !== false) {
    f.create_attribute("backend", "tensorflow", null, "S10");
    f.create_attribute("keras_version", "2.15.0", null, "S6");
  }
  const dtype = spec.dtype || "<f";
  for (const l of spec.layers) {
    const g = f.create_group(l.name);
    strAttr(g, "weight_names", l.weights.map((w) => w.name));
    for (const w of l.weights) {
      const n = w.shape.reduce((a, b) => a * b, 1);
      const v = floats.subarray(w.offset / 4, w.offset / 4 + n);
      const dt = w.dtype || dtype;
      const data = dt.endsWith("d") ? Float64Array.from(v) : dt.endsWith("i") ? Int32Array.from(v) : Float32Array.from(v);
      const parts = w.name.split("/");
      let parent = g;
      for (const p of parts.slice(0, -1)) {
        parent = parent.keys().includes(p) ? parent.get(p) : parent.create_group(p);
      }
      const args = { name: parts[parts.length - 1], data, shape: w.shape, dtype: dt };
      if (spec.chunks) {
        args.chunks = w.shape.length ? w.shape : null;
        if (spec.compression) args.compression = spec.compression;
      }
      parent.create_dataset(args);
    }
  }
  f.close();
}

async function read(inPath, outDir) {
  const hdf5 = await import("jsfive");
  const b = fs.readFileSync(inPath);
  const f = new hdf5.File(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength), path.basename(inPath));
  let layerNames = toStrings(f.attrs["layer_names"]);
  if (layerNames.length === 0) {
    for (let k = 0; f.attrs[`layer_names${k}`] !== undefined; k++) layerNames.push(...toStrings(f.attrs[`layer_names${k}`]));
  }
  const tensors = [];
  const chunks = [];
  let offset = 0;
  for (const l of layerNames) {
    const g = f.get(l);
    if (!g) die(`${inPath}: no group ${l}`);
    const wn = g.attrs["weight_names"];
    for (const w of typeof wn === "string" || Array.isArray(wn) || ArrayBuffer.isView(wn) ? toStrings(wn) : []) {
      if (typeof w !== "string" || w === "") continue;
      const d = f.get(`${l}/${w}`);
      if (!d) die(`${inPath}: no dataset ${l}/${w}`);
      const v = Float64Array.from(d.value);
      tensors.push({ layer: l, name: w, path: `${l}/${w}`, shape: d.shape, dtype: d.dtype, offset });
      chunks.push(Buffer.from(v.buffer));
      offset += v.byteLength;
    }
  }
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, "values.bin"), Buffer.concat(chunks));
  fs.writeFileSync(path.join(outDir, "index.json"), JSON.stringify({ layer_names: layerNames, tensors }));
}

const [mode, a, b] = process.argv.slice(2);
try {
  if (mode === "write" && a && b) await write(a, b);
  else if (mode === "read" && a && b) await read(a, b);
  else die("usage: node keras-h5.mjs write SPEC.json OUT.h5 | read IN.h5 OUTDIR");
} catch (e) {
  die(e && e.stack ? e.stack : String(e));
}
