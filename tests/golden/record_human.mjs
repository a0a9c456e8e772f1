// Records reference outputs of the ORIGINAL human emotion model (@vladmandic/human 3.3.6,
// models/emotion.json, a tfjs graph model) on @tensorflow/tfjs 4.22.0, so that the OpenVINO
// rebuild (human/emotion) can be checked against it. Run through record_human.sh, which
// installs the pinned packages and writes the inputs first (human_inputs.py).
//
// usage: node record_human.mjs --inputs DIR --model FILE --out FILE [--backend cpu|wasm]
//   DIR holds manifest.json + <face>.grey64 (64x64 u8) + <face>.crop (side x side x 3 RGB u8).
//
// Per face: "network" = the model on the grey64 input as g / 127.5 - 1 (the network alone);
// "human" = human's own preprocessing of the square RGB crop (src/gear/emotion.ts in the
// package: resizeBilinear to 64 without align corners, grey with its rgb constants
// 0.2989/0.5870/0.1140, (g - 0.5) * 2, on the crop scaled to 0..1) then the model.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import { parseArgs, setBackend } from './cli_common.mjs';

const require = createRequire(import.meta.url);
const tf = require('@tensorflow/tfjs');
const wasm = require('@tensorflow/tfjs-backend-wasm');

// human's annotations for this (1-channel, oarriaga) model, in output order
const LABELS = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral'];
const RGB = [0.2989, 0.5870, 0.1140]; // human's src/tfjs/constants.ts, rgb

// model.json + its weight shards from disk, as tf.loadGraphModel reads them over http
async function loadModel(file) {
  const json = JSON.parse(fs.readFileSync(file, 'utf8'));
  const specs = [];
  const buffers = [];
  for (const group of json.weightsManifest) {
    specs.push(...group.weights);
    for (const shard of group.paths) buffers.push(fs.readFileSync(path.join(path.dirname(file), shard)));
  }
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const handler = {
    load: async () => ({
      modelTopology: json.modelTopology,
      format: json.format,
      generatedBy: json.generatedBy,
      convertedBy: json.convertedBy,
      weightSpecs: specs,
      weightData,
    }),
  };
  return tf.loadGraphModel(handler);
}

function probabilities(model, input) {
  const out = model.execute(input);
  const values = Array.from(out.dataSync());
  out.dispose();
  return Object.fromEntries(LABELS.map((l, i) => [l, values[i]]));
}

function network(model, dir, face) {
  const buf = fs.readFileSync(path.join(dir, `${face.name}.grey64`));
  if (buf.length !== 64 * 64) throw new Error(`${face.name}.grey64: wrong size`);
  return tf.tidy(() => {
    const g = tf.tensor4d(Float32Array.from(buf), [1, 64, 64, 1]);
    return probabilities(model, tf.sub(tf.div(g, 127.5), 1));
  });
}

function humanPipeline(model, dir, face) {
  const side = face.square_box[2];
  const buf = fs.readFileSync(path.join(dir, `${face.name}.crop`));
  if (buf.length !== side * side * 3) throw new Error(`${face.name}.crop: wrong size`);
  return tf.tidy(() => {
    const image = tf.div(tf.tensor4d(Float32Array.from(buf), [1, side, side, 3]), 255);
    const resize = tf.image.resizeBilinear(image, [64, 64], false);
    const grey = tf.sum(tf.mul(resize, tf.tensor1d(RGB, 'float32')), 3, true);
    return probabilities(model, tf.mul(tf.sub(grey, 0.5), 2));
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2), ['inputs', 'model', 'out'], ['inputs', 'model', 'out']);
  await setBackend(tf, wasm, require, args.backend);
  const model = await loadModel(args.model);
  const manifest = JSON.parse(fs.readFileSync(path.join(args.inputs, 'manifest.json'), 'utf8'));
  const faces = manifest.map((face) => ({
    ...face,
    network: network(model, args.inputs, face),
    human: humanPipeline(model, args.inputs, face),
  }));
  const out = {
    format: 1,
    recorded_at: new Date().toISOString(),
    versions: {
      node: process.version,
      tfjs: tf.version.tfjs,
      backend: tf.getBackend(),
      human: JSON.parse(fs.readFileSync(path.join(path.dirname(args.model), '..', 'package.json'), 'utf8')).version,
    },
    model: 'models/emotion.json of @vladmandic/human',
    labels: LABELS,
    preprocessing: {
      network: 'grey64 u8 -> g / 127.5 - 1, [1, 64, 64, 1]',
      human: 'crop / 255 -> resizeBilinear(64, alignCorners=false) -> sum(rgb * [0.2989, 0.5870, 0.1140]) -> (g - 0.5) * 2',
    },
    faces,
  };
  fs.writeFileSync(args.out, `${JSON.stringify(out, null, 1)}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
