// Reading and writing NumPy .npy files (format versions 1-3, C order) for the
// ONNX Runtime runner and the tests. Tensors are {type, data, dims} with ORT's
// type names; bool data is an Array of booleans.
'use strict';

const fs = require('fs');

// numpy descr <-> ORT tensor type and typed array.
const DTYPES = {
  '<f4': { type: 'float32', array: Float32Array, size: 4 },
  '<f8': { type: 'float64', array: Float64Array, size: 8 },
  '<i8': { type: 'int64', array: BigInt64Array, size: 8 },
  '<i4': { type: 'int32', array: Int32Array, size: 4 },
  '<i2': { type: 'int16', array: Int16Array, size: 2 },
  '|u1': { type: 'uint8', array: Uint8Array, size: 1 },
  '|i1': { type: 'int8', array: Int8Array, size: 1 },
  '|b1': { type: 'bool', array: Uint8Array, size: 1 },
};
const BY_TYPE = {};
for (const [descr, d] of Object.entries(DTYPES)) BY_TYPE[d.type] = { descr, ...d };

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file} is not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) throw new Error(`${file}: malformed .npy header`);
  let d = descr[1].replace(/^=/, '<').replace(/^\|([fi][248])$/, '<$1');
  if (d === '<u1' || d === '<i1' || d === '<b1') d = '|' + d.slice(1);
  const dt = DTYPES[d];
  if (!dt) throw new Error(`${file}: unsupported dtype ${descr[1]}`);
  if (fortran[1] === 'True') throw new Error(`${file}: Fortran order is not supported`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);
  const count = dims.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  if (buf.length < offset + count * dt.size) throw new Error(`${file} is truncated`);
  const bytes = buf.subarray(offset, offset + count * dt.size);
  const copy = new ArrayBuffer(bytes.length);  // aligned for the typed array
  new Uint8Array(copy).set(bytes);
  let data = new dt.array(copy);
  if (dt.type === 'bool') data = Array.from(data, (v) => v !== 0);
  return { type: dt.type, data, dims };
}

// Written to FILE.tmp, then renamed over FILE.
function writeNpy(file, tensor) {
  const dt = BY_TYPE[tensor.type];
  if (!dt) throw new Error(`a tensor of type ${tensor.type} cannot be written as .npy`);
  const dims = tensor.dims;
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${dt.descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  let body;
  if (tensor.type === 'bool') body = Buffer.from(Array.from(tensor.data, (v) => (v ? 1 : 0)));
  else body = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  const tmp = file + '.tmp';
  fs.writeFileSync(tmp, Buffer.concat([head, Buffer.from(header, 'latin1'), body]));
  fs.renameSync(tmp, file);
}

module.exports = { readNpy, writeNpy, BY_TYPE };
