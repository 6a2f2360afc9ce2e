#!/usr/bin/env node
// ONNX Runtime side of `make bench` (see bench/README.md).
//
//   node ort_bench.js MODEL.onnx [--threads N] [--seconds S] [--warmup N] [--batch B] [--imgsz S]
//
// Loads the model with intraOpNumThreads N (default 2), interOpNumThreads 1, sequential
// execution and graphOptimizationLevel 'all', feeds one random Bx3xSxS float32 input
// (defaults 1x3x224x224; a batch above 1 needs a model with a dynamic batch axis) and times
// session.run:
// --warmup untimed runs, then runs until --seconds have passed (at least 10). Prints one
// JSON object {"latency_ms": {"p50", "p90", "p99"}, "iters", "threads", "ort"}; on failure
// prints {"error": "..."} and exits with status 1.
'use strict';

function percentile(sorted, p) {
  const idx = p * (sorted.length - 1);
  const lo = Math.floor(idx);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (idx - lo);
}

function parseArgs(argv) {
  const a = { model: null, threads: 2, seconds: 3, warmup: 5, imgsz: 224, batch: 1 };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i];
    if (!f.startsWith('--')) { a.model = f; continue; }
    const v = Number(argv[++i]);
    if (!Number.isFinite(v) || v < 0) throw new Error(`${f} needs a non-negative number`);
    if (f === '--threads') a.threads = v;
    else if (f === '--seconds') a.seconds = v;
    else if (f === '--warmup') a.warmup = v;
    else if (f === '--imgsz') a.imgsz = v;
    else if (f === '--batch') {
      if (!Number.isInteger(v) || v < 1) throw new Error('--batch needs a positive integer');
      a.batch = v;
    }
    else throw new Error(`unknown flag ${f}`);
  }
  if (!a.model) throw new Error('usage: node ort_bench.js MODEL.onnx [--threads N] [--seconds S] [--warmup N] [--batch B] [--imgsz S]');
  return a;
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const ort = require('onnxruntime-node');
  const session = await ort.InferenceSession.create(a.model, {
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const name = session.inputNames[0];
  const dims = [a.batch, 3, a.imgsz, a.imgsz];
  const n = dims.reduce((x, y) => x * y, 1);
  const data = new Float32Array(n);
  let s = 12345;  // a small LCG: values in [-1, 1), reproducible
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    data[i] = (s / 2147483648) - 1;
  }
  const feeds = { [name]: new ort.Tensor('float32', data, dims) };
  for (let i = 0; i < a.warmup; i++) await session.run(feeds);
  const ms = [];
  const tEnd = process.hrtime.bigint() + BigInt(Math.round(a.seconds * 1e9));
  while (ms.length < 10 || process.hrtime.bigint() < tEnd) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  ms.sort((x, y) => x - y);
  let version = 'unknown';
  try { version = require('onnxruntime-node/package.json').version; } catch (e) { /* keep 'unknown' */ }
  console.log(JSON.stringify({
    latency_ms: { p50: percentile(ms, 0.5), p90: percentile(ms, 0.9), p99: percentile(ms, 0.99) },
    iters: ms.length, threads: a.threads, batch: a.batch, ort: version, model: a.model,
  }));
}

main().catch((e) => {
  console.log(JSON.stringify({ error: String(e && e.message ? e.message : e).split('\n')[0] }));
  process.exit(1);
});
