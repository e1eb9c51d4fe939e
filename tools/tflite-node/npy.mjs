// A tiny reader and writer for NumPy .npy files (format version 1.0 and 2.0 on
// read, 1.0 on write), enough for the tensors a TFLite model takes and gives:
// little-endian float32, int32, int8 and uint8, C order.

import fs from 'node:fs';

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // "\x93NUMPY"

// descr in the header -> [TypedArray constructor, our dtype name]
const DESCRS = {
  '<f4': [Float32Array, 'float32'],
  '<i4': [Int32Array, 'int32'],
  '|i1': [Int8Array, 'int8'],
  '<i1': [Int8Array, 'int8'],
  '|u1': [Uint8Array, 'uint8'],
  '<u1': [Uint8Array, 'uint8'],
};

const DTYPE_TO_DESCR = {float32: '<f4', int32: '<i4', int8: '|i1', uint8: '|u1'};

export const DTYPE_ARRAYS = {
  float32: Float32Array,
  int32: Int32Array,
  int8: Int8Array,
  uint8: Uint8Array,
};

// readNpy returns {dtype, shape, data} where data is a fresh TypedArray.
export function readNpy(path) {
  const buf = fs.readFileSync(path);
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) {
    throw new Error(`npy ${path}: not a .npy file (missing \\x93NUMPY magic)`);
  }
  const major = buf[6];
  let headerLen;
  let offset;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    offset = 10;
  } else if (major === 2 || major === 3) {
    headerLen = buf.readUInt32LE(8);
    offset = 12;
  } else {
    throw new Error(`npy ${path}: unsupported format version ${major}`);
  }
  const header = buf.subarray(offset, offset + headerLen).toString('latin1');
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) {
    throw new Error(`npy ${path}: cannot parse header ${JSON.stringify(header)}`);
  }
  if (fortran[1] === 'True') {
    throw new Error(`npy ${path}: fortran_order True is not supported; save in C order`);
  }
  const kind = DESCRS[descr[1]];
  if (!kind) {
    throw new Error(`npy ${path}: dtype ${descr[1]} is not supported (want <f4, <i4, |i1 or |u1)`);
  }
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  if (dims.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`npy ${path}: bad shape (${shape[1]})`);
  }
  const [Ctor, dtype] = kind;
  const count = dims.reduce((a, b) => a * b, 1);
  const dataStart = offset + headerLen;
  const need = count * Ctor.BYTES_PER_ELEMENT;
  if (buf.length - dataStart !== need) {
    throw new Error(`npy ${path}: header says ${count} elements of ${dtype} (${need} bytes) but ${buf.length - dataStart} data bytes follow`);
  }
  // Copy so that the TypedArray is aligned and owns its memory.
  const data = new Ctor(count);
  new Uint8Array(data.buffer).set(buf.subarray(dataStart, dataStart + need));
  return {dtype, shape: dims, data};
}

// writeNpy writes data (a TypedArray of the given dtype) with shape, version 1.0.
export function writeNpy(path, dtype, shape, data) {
  const descr = DTYPE_TO_DESCR[dtype];
  if (!descr) throw new Error(`npy ${path}: cannot write dtype ${dtype}`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.length !== count) {
    throw new Error(`npy ${path}: shape [${shape}] needs ${count} elements, data has ${data.length}`);
  }
  const shapeStr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  // Pad with spaces so that magic + version + length + header + '\n' is a multiple of 64.
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  MAGIC.copy(pre, 0);
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  fs.writeFileSync(path, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}
