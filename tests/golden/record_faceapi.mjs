// Records reference outputs of the ORIGINAL face-api models (@vladmandic/face-api 1.7.15 on
// @tensorflow/tfjs 4.22.0) so that the OpenVINO rebuild can be checked against them.
// Run through record.sh, which installs the pinned packages and dumps the pixels first.
//
// usage: node record_faceapi.mjs --pixels DIR --models DIR --out FILE [--backend cpu|wasm]
//   DIR (pixels) holds manifest.json + <stem>.rgb written by dump_pixels.py (OpenCV-decoded RGB).
//
// All floats are written with full double precision (JSON.stringify is round-trip exact); values
// that tfjs computes in float32 are exact float32 values stored as doubles.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import { parseArgs, setBackend } from './cli_common.mjs';

const require = createRequire(import.meta.url);
const tf = require('@tensorflow/tfjs');
const wasm = require('@tensorflow/tfjs-backend-wasm');
// The node-wasm bundle takes tfjs from @tensorflow/tfjs (pure JS) instead of tfjs-node, so the
// plain CPU backend works; the wasm backend is only registered, not selected.
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

const LABELS = ['neutral', 'happy', 'sad', 'angry', 'fearful', 'disgusted', 'surprised'];
const MIN_CONFIDENCE = 0.5;
const MAX_RESULTS = 100;
const NMS_IOU = 0.5; // hard-coded in SsdMobilenetv1.locateFaces
const SSD_INPUT = 512;
const EXPR_INPUT = 112;
const TOP_ANCHORS = 20;
const GRID = 8;

function loadImage(dir, entry) {
  const buf = fs.readFileSync(path.join(dir, entry.raw));
  if (buf.length !== entry.width * entry.height * 3) throw new Error(`${entry.raw}: wrong size`);
  return tf.tensor3d(Int32Array.from(buf), [entry.height, entry.width, 3], 'int32');
}

const exprObject = (fe) => Object.fromEntries(LABELS.map((l) => [l, fe[l]]));

// Per-channel mean (float64 accumulation) of a [1,S,S,3] network input tensor (before the
// network's own normalisation) and an 8x8 grid of RGB samples spanning rows 0..gridH-1 and
// columns 0..gridW-1, so a re-implementation can check its preprocessing without the network.
function tensorDigest(batch, gridH, gridW) {
  const [, h, w, c] = batch.shape;
  const data = batch.dataSync();
  const sums = [0, 0, 0];
  for (let i = 0; i < data.length; i++) sums[i % c] += data[i];
  const ys = [...Array(GRID).keys()].map((k) => Math.round((k * (gridH - 1)) / (GRID - 1)));
  const xs = [...Array(GRID).keys()].map((k) => Math.round((k * (gridW - 1)) / (GRID - 1)));
  const grid = ys.map((y) => xs.map((x) => [0, 1, 2].map((ch) => data[(y * w + x) * c + ch])));
  return { shape: batch.shape, mean_rgb: sums.map((s) => s / (h * w)), grid_y: ys, grid_x: xs, grid_rgb: grid };
}

// The tensor face-api feeds a network: SSD uses toBatchTensor(512, false), the expression net
// toBatchTensor(112, true). The SSD grid spans the image part (top-left, reshaped size) only.
async function preprocessDigest(img, size, centre) {
  const netInput = await faceapi.toNetInput(img);
  const batch = netInput.toBatchTensor(size, centre);
  const dims = centre ? { width: size, height: size } : netInput.getReshapedInputDimensions(0);
  const digest = tensorDigest(batch, dims.height, dims.width);
  batch.dispose();
  return digest;
}

async function rawSsd(img) {
  const netInput = await faceapi.toNetInput(img);
  const { boxes, scores } = faceapi.nets.ssdMobilenetv1.forwardInput(netInput);
  const boxesData = boxes[0].arraySync();
  const scoresData = Array.from(scores[0].dataSync());
  tf.dispose([...boxes, ...scores]);
  const reshaped = netInput.getReshapedInputDimensions(0);
  const order = scoresData.map((s, i) => i).sort((a, b) => scoresData[b] - scoresData[a] || a - b);
  return {
    boxesData,
    scoresData,
    padX: SSD_INPUT / reshaped.width,
    padY: SSD_INPUT / reshaped.height,
    summary: {
      num_anchors: scoresData.length,
      num_above_min_confidence: scoresData.filter((s) => s > MIN_CONFIDENCE).length,
      reshaped_width: reshaped.width,
      reshaped_height: reshaped.height,
      top: order.slice(0, TOP_ANCHORS).map((i) => ({
        anchor_index: i,
        score: scoresData[i],
        box_tlbr: boxesData[i],
      })),
    },
  };
}

// locateFaces does not expose which anchor a detection came from: find it by recomputing the
// relative box exactly the way locateFaces does.
function findAnchor(raw, det) {
  const rel = det.relativeBox;
  const hits = [];
  raw.scoresData.forEach((s, i) => {
    if (s !== det.score) return;
    const b = raw.boxesData[i];
    const top = Math.max(0, b[0]) * raw.padY;
    const left = Math.max(0, b[1]) * raw.padX;
    const bottom = Math.min(1.0, b[2]) * raw.padY;
    const right = Math.min(1.0, b[3]) * raw.padX;
    const close = (a, e) => Math.abs(a - e) <= 1e-12;
    if (close(rel.x, left) && close(rel.y, top) && close(rel.width, right - left)
      && close(rel.height, bottom - top)) hits.push(i);
  });
  return hits.length === 1 ? hits[0] : null;
}

async function expressionsOfCrop(img, name, x, y, w, h) {
  const crop = tf.slice3d(img, [y, x, 0], [h, w, 3]);
  const fe = await faceapi.nets.faceExpressionNet.predictExpressions(crop);
  crop.dispose();
  return { name, box: [x, y, w, h], expressions: exprObject(fe) };
}

// Deterministic crops, chosen so the classifier is checked without any box rounding: a square
// (no padding), a centred half-size rectangle, and two odd-difference rectangles (wide and tall)
// that exercise face-api's asymmetric centred pad-to-square.
function fixedCrops(W, H) {
  const s = Math.floor(Math.min(W, H) / 2);
  const hw = Math.floor(W / 2);
  const hh = Math.floor(H / 2);
  return [
    ['center_square', Math.floor((W - s) / 2), Math.floor((H - s) / 2), s, s],
    ['center_half', Math.floor((W - hw) / 2), Math.floor((H - hh) / 2), hw, hh],
    ['wide_odd', Math.floor(W / 3), Math.floor(H / 3), 301, 200],
    ['tall_odd', Math.floor(W / 3), Math.floor(H / 3), 150, 211],
  ];
}

async function recordImage(pixelsDir, entry) {
  const img = loadImage(pixelsDir, entry);
  const W = entry.width;
  const H = entry.height;
  const options = new faceapi.SsdMobilenetv1Options({ minConfidence: MIN_CONFIDENCE, maxResults: MAX_RESULTS });
  const results = await faceapi.detectAllFaces(img, options).withFaceExpressions();
  const raw = await rawSsd(img);
  const detections = results.map((r) => {
    const det = r.detection;
    const b = det.box;
    const rb = det.relativeBox;
    const crop = det.forSize(W, H).box.clipAtImageBorders(W, H); // what extractFaceTensors slices
    return {
      score: det.score,
      anchor_index: findAnchor(raw, det),
      box: [b.x, b.y, b.width, b.height],
      relative_box: [rb.x, rb.y, rb.width, rb.height],
      crop_box: [crop.x, crop.y, crop.width, crop.height],
      expressions: exprObject(r.expressions),
    };
  });
  const whole = await faceapi.nets.faceExpressionNet.predictExpressions(img);
  const crops = [];
  for (const [name, x, y, w, h] of fixedCrops(W, H)) crops.push(await expressionsOfCrop(img, name, x, y, w, h));
  const out = {
    name: entry.name,
    width: W,
    height: H,
    jpeg_sha256: entry.jpeg_sha256,
    rgb_sha256: entry.rgb_sha256,
    detections,
    whole_image_expressions: exprObject(whole),
    fixed_crops: crops,
    ssd_raw: raw.summary,
    ssd_input: await preprocessDigest(img, SSD_INPUT, false),
    whole_image_expression_input: await preprocessDigest(img, EXPR_INPUT, true),
  };
  img.dispose();
  return out;
}

async function main() {
  const args = parseArgs(process.argv.slice(2), ['pixels', 'models', 'out'], ['pixels', 'models', 'out']);
  await setBackend(tf, wasm, require, args.backend);
  const manifest = JSON.parse(fs.readFileSync(path.join(args.pixels, 'manifest.json'), 'utf8'));
  await faceapi.nets.ssdMobilenetv1.loadFromDisk(args.models);
  await faceapi.nets.faceExpressionNet.loadFromDisk(args.models);
  const images = [];
  for (const entry of manifest.images) {
    const rec = await recordImage(args.pixels, entry);
    process.stderr.write(`record_faceapi: ${rec.name}: ${rec.detections.length} face(s)\n`);
    images.push(rec);
  }
  const doc = {
    format: 'expressiond-faceapi-reference/1',
    recorded_at: new Date().toISOString(),
    versions: {
      node: process.version,
      face_api: faceapi.version,
      tfjs: tf.version,
      backend: tf.getBackend(),
      face_api_bundle: 'dist/face-api.node-wasm.js',
      opencv: manifest.opencv,
      numpy: manifest.numpy,
      python: manifest.python,
    },
    pixel_decoder: manifest.decoder,
    settings: {
      ssd: { min_confidence: MIN_CONFIDENCE, max_results: MAX_RESULTS, nms_iou: NMS_IOU, input_size: SSD_INPUT },
      expression: { input_size: EXPR_INPUT, mean_rgb: [122.782, 117.001, 104.298], scale: 1 / 255 },
      top_anchors: TOP_ANCHORS,
    },
    expression_labels: LABELS,
    images,
  };
  fs.writeFileSync(args.out, `${JSON.stringify(doc, null, 1)}\n`);
}

main().catch((err) => {
  process.stderr.write(`record_faceapi: ${err.stack || err}\n`);
  process.exit(1);
});
