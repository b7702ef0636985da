// Runs an exported QDQ model in ONNX Runtime (onnxruntime-node) and compares
// its outputs with autoprec's simulation. Self-contained: reads and writes
// .npy itself.
//
//   node ort_compare.js make-input IDX_DIR COUNT IMAGES.npy LABELS.npy
//       first COUNT test images as float32 [N,1,H,W] scaled by 1/255, labels int64
//   node ort_compare.js compare MODEL.onnx IMAGES.npy SIMULATED.npy [LABELS.npy]
//       [--max-diff T] [--min-agreement A] [--optimization disabled|basic|extended|all]
//       prints one JSON line {examples, top1_agreement, max_abs_diff,
//       mean_abs_diff, logit_range, ort_top1, simulated_top1}; exit 1 when
//       max_abs_diff > T or top1_agreement < A.
//
// onnxruntime-node is loaded from $AUTOPREC_ORT_NODE_MODULES.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const { readNpy, writeNpy } = require('../tools/npy.js');

function readIdx(dir, name) {
  for (const candidate of [name, name + '.gz']) {
    const file = path.join(dir, candidate);
    if (fs.existsSync(file)) {
      const raw = fs.readFileSync(file);
      return candidate.endsWith('.gz') ? zlib.gunzipSync(raw) : raw;
    }
  }
  throw new Error(`${dir} has no ${name}[.gz]`);
}

function makeInput(dir, count, imagesOut, labelsOut) {
  const images = readIdx(dir, 't10k-images-idx3-ubyte');
  const labels = readIdx(dir, 't10k-labels-idx1-ubyte');
  const rows = images.readUInt32BE(8);
  const cols = images.readUInt32BE(12);
  const n = Math.min(count, images.readUInt32BE(4));
  const x = new Float32Array(n * rows * cols);
  for (let i = 0; i < x.length; ++i) x[i] = images[16 + i] / 255;
  const y = new BigInt64Array(n);
  for (let i = 0; i < n; ++i) y[i] = BigInt(labels[8 + i]);
  writeNpy(imagesOut, { type: 'float32', data: x, dims: [n, 1, rows, cols] });
  writeNpy(labelsOut, { type: 'int64', data: y, dims: [n] });
}

function argmax(data, offset, length) {
  let best = 0;
  for (let j = 1; j < length; ++j) if (data[offset + j] > data[offset + best]) best = j;
  return best;
}

async function compare(modelPath, imagesPath, simulatedPath, labelsPath, maxDiff, minAgreement, optimization) {
  const modules = process.env.AUTOPREC_ORT_NODE_MODULES;
  if (!modules) throw new Error('set AUTOPREC_ORT_NODE_MODULES to the node_modules holding onnxruntime-node');
  const ort = require(path.join(modules, 'onnxruntime-node'));
  const session = await ort.InferenceSession.create(modelPath, { graphOptimizationLevel: optimization });
  const x = readNpy(imagesPath);
  const sim = readNpy(simulatedPath);
  const labels = labelsPath ? readNpy(labelsPath).data : null;
  const n = x.dims[0];
  const per = x.data.length / n;
  const classes = sim.data.length / n;
  const batch = 100;
  let agree = 0, ortCorrect = 0, simCorrect = 0, maxAbs = 0, sumAbs = 0, range = 0;
  for (let start = 0; start < n; start += batch) {
    const b = Math.min(batch, n - start);
    const input = new ort.Tensor('float32', x.data.slice(start * per, (start + b) * per), [b, ...x.dims.slice(1)]);
    const result = await session.run({ [session.inputNames[0]]: input });
    const y = result[session.outputNames[0]].data;
    if (y.length !== b * classes) throw new Error(`ORT returned ${y.length} values for ${b} examples of ${classes}`);
    for (let i = 0; i < b; ++i) {
      const simOffset = (start + i) * classes;
      for (let j = 0; j < classes; ++j) {
        const d = Math.abs(y[i * classes + j] - sim.data[simOffset + j]);
        maxAbs = Math.max(maxAbs, d);
        sumAbs += d;
        range = Math.max(range, Math.abs(sim.data[simOffset + j]));
      }
      const a = argmax(y, i * classes, classes);
      const s = argmax(sim.data, simOffset, classes);
      agree += a === s;
      if (labels) {
        ortCorrect += BigInt(a) === BigInt(labels[start + i]);
        simCorrect += BigInt(s) === BigInt(labels[start + i]);
      }
    }
  }
  const report = {
    model: path.basename(modelPath),
    optimization,
    examples: n,
    top1_agreement: agree / n,
    max_abs_diff: maxAbs,
    mean_abs_diff: sumAbs / (n * classes),
    logit_range: range,
  };
  if (labels) {
    report.ort_top1 = ortCorrect / n;
    report.simulated_top1 = simCorrect / n;
  }
  console.log(JSON.stringify(report));
  return report.max_abs_diff <= maxDiff && report.top1_agreement >= minAgreement;
}

async function main(argv) {
  const option = (name, fallback, parse = Number) => {
    const i = argv.indexOf(name);
    if (i < 0) return fallback;
    const value = parse(argv[i + 1]);
    argv.splice(i, 2);
    return value;
  };
  const optimization = option('--optimization', 'all', String);
  const maxDiff = option('--max-diff', Infinity);
  const minAgreement = option('--min-agreement', 0);
  const [command, ...rest] = argv;
  if (command === 'make-input' && rest.length === 4) {
    makeInput(rest[0], Number(rest[1]), rest[2], rest[3]);
    return 0;
  }
  if (command === 'compare' && (rest.length === 3 || rest.length === 4)) {
    return (await compare(rest[0], rest[1], rest[2], rest[3], maxDiff, minAgreement, optimization)) ? 0 : 1;
  }
  console.error('usage: ort_compare.js make-input IDX_DIR COUNT IMAGES.npy LABELS.npy\n' +
                '       ort_compare.js compare MODEL.onnx IMAGES.npy SIMULATED.npy [LABELS.npy] [--max-diff T] [--min-agreement A]\n' +
                '       [--optimization disabled|basic|extended|all]');
  return 2;
}

main(process.argv.slice(2)).then((code) => process.exit(code), (e) => {
  console.error(`ort_compare: ${e.message}`);
  process.exit(2);
});
