// What the golden recorders (record_faceapi.mjs, record_human.mjs) share: their argument
// parsing and the tfjs backend choice. The caller passes its own tf and wasm modules, so both
// resolve from the same node_modules as the recorder itself.
import path from 'node:path';

// --key value pairs; `keys` are the accepted ones, `required` those that must be given.
export function parseArgs(argv, keys, required) {
  const args = { backend: 'cpu' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (![...keys, 'backend'].includes(key) || argv[i + 1] === undefined) {
      throw new Error(`bad argument ${argv[i]}; see the usage line at the top of this file`);
    }
    args[key] = argv[i + 1];
  }
  for (const k of required) if (!args[k]) throw new Error(`--${k} is required`);
  return args;
}

export async function setBackend(tf, wasm, require, name) {
  if (name === 'wasm') {
    const dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
    wasm.setWasmPaths(`${dir}${path.sep}`);
  }
  if (!(await tf.setBackend(name))) throw new Error(`tfjs backend ${name} failed to initialise`);
  await tf.ready();
}
