#!/usr/bin/env node
// ort_run.mjs - runs an ONNX model with ONNX Runtime (CPU), vigil's reference
// runtime and benchmark peer, on .npy inputs.
//
//   node tools/ort_run.mjs --model M.onnx [--threads N] --out DIR IN.npy...
//       writes every output to DIR/<output name>.npy (name sanitized to
//       [A-Za-z0-9_.-], as `vigil infer` does)
//   node tools/ort_run.mjs --model M.onnx [--threads N] --bench K IN.npy...
//       runs K timed iterations (after 2 warm-up runs) and prints
//       {"min_ms":..,"median_ms":..,"p90_ms":..,"iterations":K,"threads":N}
//
// Inputs bind to the model's inputs in order, or by name with NAME=PATH.
// Graph optimisations are all on; intra-op threads = N, inter-op = 1.
// onnxruntime-node comes from tools/node/node_modules (npm install --ignore-scripts there).
// The .npy reader/writer is our own: v1-v3 headers, C order, little-endian.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const require = createRequire(new URL('./node/package.json', import.meta.url));

const NPY_TO_ORT = {
  '<f4': 'float32', '<f8': 'float64', '<f2': 'float16', '<i8': 'int64', '<i4': 'int32', '<i2': 'int16', '|i1': 'int8',
  '|u1': 'uint8', '<u2': 'uint16', '<u4': 'uint32', '<u8': 'uint64', '|b1': 'bool',
};
const ORT_TO_ARRAY = {
  float32: Float32Array, float64: Float64Array, float16: Uint16Array, int64: BigInt64Array, int32: Int32Array, int16: Int16Array,
  int8: Int8Array, uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array, uint64: BigUint64Array,
  bool: Uint8Array,
};

function fail(message) {
  process.stderr.write(`ort_run: ${message}\n`);
  process.exit(1);
}

function usage() {
  process.stdout.write(
    'usage: node tools/ort_run.mjs --model M.onnx [--threads N] (--out DIR | --bench K) [NAME=]IN.npy...\n');
}

function parseArgs(argv) {
  const opts = { threads: 1, inputs: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--model') opts.model = value();
    else if (a === '--threads') opts.threads = Number(value());
    else if (a === '--out') opts.out = value();
    else if (a === '--bench') opts.bench = Number(value());
    else if (a === '--help' || a === '-h') { usage(); process.exit(0); }
    else if (a.startsWith('--')) fail(`unknown option ${a}`);
    else opts.inputs.push(a);
  }
  if (!opts.model) fail('--model is required');
  if (!Number.isInteger(opts.threads) || opts.threads < 1) fail('--threads must be a positive integer');
  if (opts.bench !== undefined && (!Number.isInteger(opts.bench) || opts.bench < 1))
    fail('--bench must be a positive integer');
  if (!opts.out && opts.bench === undefined) fail('one of --out DIR or --bench K is required');
  return opts;
}

// Parses a .npy image into {dtype (ORT name), dims, data (typed array)}.
export function npyParse(buf, name = 'input') {
  if (buf.length < 10 || buf.readUInt32BE(0) !== 0x934e554d || buf.toString('latin1', 4, 6) !== 'PY')
    throw new Error(`${name}: not a .npy file`);
  const major = buf[6];
  let headerLen, start;
  if (major === 1) { headerLen = buf.readUInt16LE(8); start = 10; }
  else if (major === 2 || major === 3) { headerLen = buf.readUInt32LE(8); start = 12; }
  else throw new Error(`${name}: unsupported .npy version ${major}`);
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) throw new Error(`${name}: malformed .npy header`);
  if (fortran[1] === 'True') throw new Error(`${name}: Fortran-order arrays are not supported`);
  const dtype = NPY_TO_ORT[descr[1]];
  if (!dtype) throw new Error(`${name}: unsupported dtype ${descr[1]}`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);
  const count = dims.reduce((a, b) => a * b, 1);
  const Ctor = ORT_TO_ARRAY[dtype];
  const offset = start + headerLen;
  if (buf.length - offset < count * Ctor.BYTES_PER_ELEMENT) throw new Error(`${name}: data shorter than its shape`);
  // copy into a fresh, aligned buffer
  const bytes = new Uint8Array(count * Ctor.BYTES_PER_ELEMENT);
  bytes.set(buf.subarray(offset, offset + bytes.length));
  return { dtype, dims, data: new Ctor(bytes.buffer) };
}

// Serializes a typed array with dims to a v1 .npy image.
export function npyFormat(dtype, dims, data) {
  const descr = Object.keys(NPY_TO_ORT).find((k) => NPY_TO_ORT[k] === dtype);
  if (!descr) throw new Error(`cannot write dtype ${dtype} to .npy`);
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.writeUInt32BE(0x934e554d, 0);
  head.write('PY', 4, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), body]);
}

export function sanitizeName(name) {
  const s = name.replace(/[^A-Za-z0-9_.-]/g, '_');
  return s.length ? s : 'output';
}

function percentile(sorted, p) {
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  let ort;
  try {
    ort = require('onnxruntime-node');
  } catch (e) {
    fail(`onnxruntime-node is not installed (cd tools/node && npm install --ignore-scripts): ${e.message}`);
  }
  let session;
  try {
    session = await ort.InferenceSession.create(opts.model, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      intraOpNumThreads: opts.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
    });
  } catch (e) {
    fail(`cannot load ${opts.model}: ${e.message}`);
  }
  if (opts.inputs.length !== session.inputNames.length)
    fail(`model has ${session.inputNames.length} inputs (${session.inputNames.join(', ')}), got ${opts.inputs.length}`);
  const feeds = {};
  opts.inputs.forEach((arg, i) => {
    let name = session.inputNames[i];
    let file = arg;
    const eq = arg.indexOf('=');
    if (eq > 0 && session.inputNames.includes(arg.slice(0, eq))) {
      name = arg.slice(0, eq);
      file = arg.slice(eq + 1);
    }
    let arr;
    try {
      arr = npyParse(fs.readFileSync(file), file);
    } catch (e) {
      fail(e.message);
    }
    feeds[name] = new ort.Tensor(arr.dtype, arr.data, arr.dims);
  });
  const run = async () => {
    try {
      return await session.run(feeds);
    } catch (e) {
      fail(`run failed: ${e.message}`);
    }
  };
  if (opts.bench !== undefined) {
    for (let i = 0; i < 2; i++) await run();
    const times = [];
    for (let i = 0; i < opts.bench; i++) {
      const t0 = process.hrtime.bigint();
      await run();
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    times.sort((a, b) => a - b);
    const result = {
      min_ms: times[0], median_ms: percentile(times, 50), p90_ms: percentile(times, 90),
      iterations: opts.bench, threads: opts.threads,
    };
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  const results = await run();
  fs.mkdirSync(opts.out, { recursive: true });
  for (const name of session.outputNames) {
    const t = results[name];
    const file = path.join(opts.out, `${sanitizeName(name)}.npy`);
    fs.writeFileSync(file, npyFormat(t.type, t.dims.map(Number), t.data));
  }
}

main().catch((e) => fail(e.stack || String(e)));
