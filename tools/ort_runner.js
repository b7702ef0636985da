#!/usr/bin/env node
// ONNX Runtime runner for autoprec: one JSON request per stdin line, one JSON
// response per stdout line (the protocol is in docs/targets.md). Tensors are
// exchanged as .npy files. Anything ORT logs goes to stderr, never stdout.
//
//   {"cmd":"load","model":PATH,"threads":N,"optimized_model":PATH?,"profiling":BOOL?}
//                                                      -> {"ok":true,"inputs":[..],"outputs":[..]}
//   {"cmd":"run","inputs":{NAME:SPEC},"outputs_dir":DIR} -> {"ok":true,"outputs":{NAME:FILE},"ms":T}
//   {"cmd":"time","inputs":{NAME:SPEC},"warmup":W,"repeats":R}
//                                                      -> {"ok":true,"median_ms":M,"times_ms":[..]}
//        (after a load with "profiling":true, also "kernel_ms": median per run of the summed
//         operator kernel times from ORT's profiler, "kernel_times_ms" and "ops_ms" per operator)
//   {"cmd":"quit"}                                     -> {"ok":true}, then exit 0
//   any failure                                        -> {"ok":false,"error":"one line"}
// SPEC is {"file":"x.npy"} or {"dtype":"float32","shape":[1,3],"fill":"zeros"|"random","seed":0}.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');

const npy = require('./npy.js');

const { BY_TYPE } = npy;

let ort;
try {
  ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));
} catch (e) {
  ort = null;
}

function readNpy(file) {
  const t = npy.readNpy(file);
  return new ort.Tensor(t.type, t.data, t.dims);
}

// Deterministic uniform [0, 1) numbers (mulberry32).
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function makeTensor(name, spec) {
  if (spec === null || typeof spec !== 'object') throw new Error(`input ${name}: expected an object`);
  if (typeof spec.file === 'string') return readNpy(spec.file);
  const dt = BY_TYPE[spec.dtype || 'float32'];
  if (!dt) throw new Error(`input ${name}: unsupported dtype ${spec.dtype}`);
  if (!Array.isArray(spec.shape) || spec.shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`input ${name}: needs "file" or a "shape" of non-negative integers`);
  }
  const count = spec.shape.reduce((a, b) => a * b, 1);
  const fill = spec.fill || 'zeros';
  if (fill !== 'zeros' && fill !== 'random') throw new Error(`input ${name}: fill must be zeros or random`);
  const next = rng(spec.seed || 0);
  let data;
  if (dt.type === 'bool') data = Array.from({ length: count }, () => fill === 'random' && next() < 0.5);
  else if (dt.type === 'int64') data = BigInt64Array.from({ length: count }, () => BigInt(fill === 'random' ? Math.floor(next() * 256) : 0));
  else if (dt.type.startsWith('float')) data = dt.array.from({ length: count }, () => (fill === 'random' ? next() : 0));
  else data = dt.array.from({ length: count }, () => (fill === 'random' ? Math.floor(next() * 128) : 0));
  return new ort.Tensor(dt.type, data, spec.shape);
}

function feeds(session, inputs) {
  if (inputs === null || typeof inputs !== 'object') throw new Error('"inputs" must be an object');
  const out = {};
  for (const name of session.inputNames) {
    if (!(name in inputs)) throw new Error(`missing input ${name}`);
    out[name] = makeTensor(name, inputs[name]);
  }
  for (const name of Object.keys(inputs)) {
    if (!session.inputNames.includes(name)) throw new Error(`the model has no input ${name}`);
  }
  return out;
}

function metadata(list, names) {
  return names.map((name, i) => {
    const m = list && list[i];
    if (!m || !m.isTensor) return { name };
    return { name, type: m.type, shape: m.shape };
  });
}

function safeName(name) {
  return name.replace(/[^A-Za-z0-9_.-]/g, '_');
}

function nonNegativeInt(value, fallback, what) {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0) throw new Error(`"${what}" must be a non-negative integer`);
  return value;
}

let session = null;
let profilePrefix = null;  // set while the loaded session records an ORT profile
let loads = 0;

// Per timed run (the last `repeats` model_run events of the profile), the sum
// of the operator kernel times, and the per-operator median.
function kernelTimes(prefix, repeats) {
  const dir = path.dirname(prefix);
  const base = path.basename(prefix);
  const files = fs.readdirSync(dir).filter((f) => f.startsWith(base) && f.endsWith('.json'));
  if (!files.length) throw new Error('ORT wrote no profile');
  const events = JSON.parse(fs.readFileSync(path.join(dir, files[0]), 'utf8'));
  for (const f of files) fs.rmSync(path.join(dir, f), { force: true });
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => a.ts - b.ts).slice(-repeats);
  const kernels = events.filter((e) => e.cat === 'Node' && typeof e.name === 'string' && e.name.endsWith('_kernel_time'));
  const perRun = [];
  const perOp = {};
  for (const run of runs) {
    let total = 0;
    const ops = {};
    for (const k of kernels) {
      if (k.ts < run.ts || k.ts > run.ts + run.dur) continue;
      total += k.dur / 1000;
      const op = (k.args && k.args.op_name) || 'unknown';
      ops[op] = (ops[op] || 0) + k.dur / 1000;
    }
    perRun.push(total);
    for (const [op, ms] of Object.entries(ops)) (perOp[op] = perOp[op] || []).push(ms);
  }
  const ops_ms = {};
  for (const [op, list] of Object.entries(perOp)) ops_ms[op] = median(list);
  return { kernel_ms: median(perRun), kernel_times_ms: perRun, ops_ms };
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function handle(req) {
  switch (req.cmd) {
    case 'load': {
      if (typeof req.model !== 'string') throw new Error('"model" must be a path');
      if (!fs.existsSync(req.model)) throw new Error(`model ${req.model} does not exist`);
      const options = { logSeverityLevel: 3, executionMode: 'sequential' };
      const threads = nonNegativeInt(req.threads, 0, 'threads');
      if (req.optimized_model !== undefined) {
        if (typeof req.optimized_model !== 'string') throw new Error('"optimized_model" must be a path');
        options.optimizedModelFilePath = req.optimized_model;  // the graph after ORT's fusions, for inspection
      }
      profilePrefix = null;
      if (req.profiling === true) {
        profilePrefix = path.join(os.tmpdir(), `autoprec_ort_${process.pid}_${++loads}_`);
        options.enableProfiling = true;
        options.profileFilePrefix = profilePrefix;
      }
      if (threads > 0) {
        options.intraOpNumThreads = threads;
        options.interOpNumThreads = 1;
      }
      if (session) await session.release();
      session = null;
      session = await ort.InferenceSession.create(req.model, options);
      return {
        ok: true,
        inputs: metadata(session.inputMetadata, session.inputNames),
        outputs: metadata(session.outputMetadata, session.outputNames),
      };
    }
    case 'run': {
      if (!session) throw new Error('no model loaded (send "load" first)');
      if (typeof req.outputs_dir !== 'string') throw new Error('"outputs_dir" must be a directory');
      const f = feeds(session, req.inputs);
      const t0 = process.hrtime.bigint();
      const results = await session.run(f);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      fs.mkdirSync(req.outputs_dir, { recursive: true });
      const outputs = {};
      for (const name of session.outputNames) {
        const file = path.join(req.outputs_dir, safeName(name) + '.npy');
        npy.writeNpy(file, results[name]);
        outputs[name] = file;
      }
      return { ok: true, outputs, ms };
    }
    case 'time': {
      if (!session) throw new Error('no model loaded (send "load" first)');
      const warmup = nonNegativeInt(req.warmup, 3, 'warmup');
      const repeats = nonNegativeInt(req.repeats, 10, 'repeats');
      if (repeats < 1) throw new Error('"repeats" must be at least 1');
      const f = feeds(session, req.inputs);
      for (let i = 0; i < warmup; i++) await session.run(f);
      const times = [];
      for (let i = 0; i < repeats; i++) {
        const t0 = process.hrtime.bigint();
        await session.run(f);
        times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      const response = { ok: true, median_ms: median(times), times_ms: times };
      if (profilePrefix) {
        session.endProfiling();  // a session profiles once; load again to profile again
        Object.assign(response, kernelTimes(profilePrefix, repeats));
        profilePrefix = null;
      }
      return response;
    }
    case 'quit':
      return { ok: true };
    default:
      throw new Error(`unknown cmd ${JSON.stringify(req.cmd)} (load, run, time, quit)`);
  }
}

function reply(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function oneLine(e) {
  return String(e && e.message ? e.message : e).split('\n')[0];
}

async function main() {
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  for await (const line of rl) {
    if (!line.trim()) continue;
    let req;
    try {
      req = JSON.parse(line);
    } catch (e) {
      reply({ ok: false, error: `request is not JSON: ${oneLine(e)}` });
      continue;
    }
    if (!ort) {
      reply({ ok: false, error: 'onnxruntime-node is not installed in tools/node_modules (run scripts/setup)' });
      continue;
    }
    try {
      reply(await handle(req));
    } catch (e) {
      reply({ ok: false, error: oneLine(e) });
    }
    if (req && req.cmd === 'quit') break;
  }
  if (session) await session.release();
  process.exit(0);
}

main();
