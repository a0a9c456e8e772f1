// Times the ORIGINAL face-api models (@vladmandic/face-api 1.7.15 on @tensorflow/tfjs 4.22.0) on
// the same pixels expressiond gets, for benchmarks/vs_faceapi.py (which installs the packages,
// dumps the pixels and runs this). See README.md.
//
// usage: node bench_faceapi.mjs --pixels DIR --models DIR --backend cpu|wasm --repeat N --out FILE
//          [--mode detect|whole]
//   DIR (pixels): manifest.json + raw RGB files (H*W*3 bytes, row-major, uint8), as written by
//   vs_faceapi.py / tests/golden/dump_pixels.py. DIR (models): face-api's model/ folder.
//
// Per input shape: one untimed warm-up (tfjs prepares its kernels per shape; the first photo of
// each size pays it), then per image N timed runs of
//   detectAllFaces(img, SsdMobilenetv1Options({minConfidence: 0.5})).withFaceExpressions()
// on a tensor made once from the pixels (no image decoding is timed, as on the Python side).
// --mode whole (close-ups, where the SSD finds no face): each photo is one pre-cropped face and
// the timed call is faceapi.nets.faceExpressionNet.predictExpressions(tensor), face-api's way to
// classify a face image; the face's box is the whole photo and it has no detector score.
// Writes per image all times, their median, and per face the box and the top-1 expression.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const tf = require('@tensorflow/tfjs');
const wasm = require('@tensorflow/tfjs-backend-wasm');
// The node-wasm bundle takes tfjs from @tensorflow/tfjs (pure JS) instead of tfjs-node.
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

const MIN_CONFIDENCE = 0.5;
const ARGS = ['pixels', 'models', 'backend', 'repeat', 'out', 'mode'];

function parseArgs(argv) {
  const args = { backend: 'wasm', repeat: '5', mode: 'detect' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!ARGS.includes(key) || argv[i + 1] === undefined) {
      throw new Error(`bad argument ${argv[i]}; see the usage line at the top of this file`);
    }
    args[key] = argv[i + 1];
  }
  for (const k of ['pixels', 'models', 'out']) if (!args[k]) throw new Error(`--${k} is required`);
  if (!['cpu', 'wasm'].includes(args.backend)) throw new Error('--backend must be cpu or wasm');
  if (!['detect', 'whole'].includes(args.mode)) throw new Error('--mode must be detect or whole');
  args.repeat = Number.parseInt(args.repeat, 10);
  if (!(args.repeat >= 1)) throw new Error('--repeat must be an integer >= 1');
  return args;
}

async function setBackend(name) {
  if (name === 'wasm') {
    const dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
    wasm.setWasmPaths(`${dir}${path.sep}`);
  }
  if (!(await tf.setBackend(name))) throw new Error(`tfjs backend ${name} failed to initialise`);
  await tf.ready();
  if (name !== 'wasm') return { threads: 1 };
  return {
    simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'),
    multithread: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'),
    threads: wasm.getThreadsCount(),
  };
}

function loadImage(dir, entry) {
  const buf = fs.readFileSync(path.join(dir, entry.raw));
  if (buf.length !== entry.width * entry.height * 3) throw new Error(`${entry.raw}: wrong size`);
  return tf.tensor3d(Int32Array.from(buf), [entry.height, entry.width, 3], 'int32');
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function topExpression(expressions) {
  let best = null;
  for (const [label, p] of Object.entries(expressions)) {
    if (typeof p === 'number' && (best === null || p > best[1])) best = [label, p];
  }
  return best;
}

const warmedShapes = new Set();

// detect: [{detection, expressions}] per face; whole: the photo is one face, no detector
async function wholePhoto(img) {
  const expressions = await faceapi.nets.faceExpressionNet.predictExpressions(img);
  const [height, width] = img.shape;
  return [{ detection: { box: { x: 0, y: 0, width, height }, score: null }, expressions }];
}

async function benchImage(pixelsDir, entry, options, repeat, mode) {
  const img = loadImage(pixelsDir, entry);
  const run = mode === 'whole'
    ? () => wholePhoto(img)
    : () => faceapi.detectAllFaces(img, options).withFaceExpressions();
  const shape = img.shape.join('x');
  if (!warmedShapes.has(shape)) {
    await run(); // warm-up: first use of this input shape
    warmedShapes.add(shape);
  }
  const ms = [];
  let results = null;
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now();
    results = await run();
    ms.push(performance.now() - t0);
  }
  img.dispose();
  const faces = results.map((r) => {
    const b = r.detection.box;
    const [expression, probability] = topExpression(r.expressions);
    return { box: [b.x, b.y, b.width, b.height], score: r.detection.score, expression, probability };
  });
  return { name: entry.name, width: entry.width, height: entry.height, rgb_sha256: entry.rgb_sha256,
    ms, median_ms: median(ms), faces };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const backendInfo = await setBackend(args.backend);
  const manifest = JSON.parse(fs.readFileSync(path.join(args.pixels, 'manifest.json'), 'utf8'));
  const tLoad = performance.now();
  await faceapi.nets.ssdMobilenetv1.loadFromDisk(args.models);
  await faceapi.nets.faceExpressionNet.loadFromDisk(args.models);
  const loadMs = performance.now() - tLoad;
  const options = new faceapi.SsdMobilenetv1Options({ minConfidence: MIN_CONFIDENCE });
  const tensorsBefore = tf.memory().numTensors;
  const images = [];
  for (const [i, entry] of manifest.images.entries()) {
    const rec = await benchImage(args.pixels, entry, options, args.repeat, args.mode);
    process.stderr.write(`bench_faceapi: ${args.backend} [${i + 1}/${manifest.images.length}] `
      + `${rec.name}: ${rec.median_ms.toFixed(1)} ms median of ${args.repeat}, `
      + `${rec.faces.length} face(s)\n`);
    images.push(rec);
  }
  const doc = {
    format: 'expressiond-faceapi-bench/1',
    measured_at: new Date().toISOString(),
    backend: tf.getBackend(),
    backend_info: backendInfo,
    repeat: args.repeat,
    model_load_ms: loadMs,
    leaked_tensors: tf.memory().numTensors - tensorsBefore,
    settings: args.mode === 'whole'
      ? { mode: 'whole', call: 'faceExpressionNet.predictExpressions(whole photo)' }
      : { mode: 'detect', min_confidence: MIN_CONFIDENCE, max_results: options.maxResults },
    versions: { node: process.version, face_api: faceapi.version, tfjs: tf.version.tfjs,
      face_api_bundle: 'dist/face-api.node-wasm.js' },
    images,
  };
  fs.writeFileSync(args.out, `${JSON.stringify(doc, null, 1)}\n`);
}

main().catch((err) => {
  process.stderr.write(`bench_faceapi: ${err.stack || err}\n`);
  process.exit(1);
});
