// Runs exported ONNX graphs with onnxruntime-node on .npy inputs and writes .npy outputs,
// so the Python export tool (which has no onnxruntime) can compare them with PyTorch.
//
//   node tools/export/verify_onnx.mjs job.json
//
// job.json: { "threads": 2, "executionProviders": ["cpu"], "runs": [ { "model": "a.onnx",
//             "inputs":  { "name": "in.npy", ... },
//             "outputs": { "name": "out.npy", ... } } ] }
// Paths are relative to job.json. Exit codes: 0 ok, 1 failure, 3 onnxruntime-node missing.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

let ort;
try {
  ort = await import('onnxruntime-node');
} catch (err) {
  process.stderr.write(`onnxruntime-node is not available: ${err.message}\n`);
  process.exit(3);
}

const DTYPES = {
  '<f4': ['float32', Float32Array, 4],
  '<f2': ['float16', Uint16Array, 2],
  '<i8': ['int64', BigInt64Array, 8],
  '<i4': ['int32', Int32Array, 4],
  '|b1': ['bool', Uint8Array, 1],
  '|u1': ['uint8', Uint8Array, 1],
};

function readNpy(path) {
  const buf = readFileSync(path);
  if (buf.readUInt32BE(0) !== 0x934e554d) throw new Error(`${path}: not an .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLen;
  const header = buf.subarray(major === 1 ? 10 : 12, start).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${path}: Fortran order not supported`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const spec = DTYPES[descr];
  if (!spec) throw new Error(`${path}: dtype ${descr} not supported`);
  const [type, Ctor, size] = spec;
  const count = shape.reduce((a, b) => a * b, 1);
  const bytes = buf.subarray(start, start + count * size);
  const data = new Ctor(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return new ort.Tensor(type, type === 'bool' ? Uint8Array.from(data) : data, shape);
}

function writeNpy(path, tensor) {
  const map = { float32: '<f4', int64: '<i8', int32: '<i4', bool: '|b1', float16: '<f2' };
  const descr = map[tensor.type];
  if (!descr) throw new Error(`cannot write ${tensor.type}`);
  const dims = tensor.dims.length === 1 ? `${tensor.dims[0]},` : tensor.dims.join(', ');
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${dims}), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const head = Buffer.alloc(10);
  head.writeUInt32BE(0x934e554d, 0);
  head[4] = 0x50; head[5] = 0x59; // "PY"
  head[6] = 1; head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const data = tensor.data;
  writeFileSync(path, Buffer.concat([head, Buffer.from(header, 'latin1'),
    Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

const jobPath = process.argv[2];
if (!jobPath) {
  process.stderr.write('usage: node verify_onnx.mjs job.json\n');
  process.exit(1);
}
const job = JSON.parse(readFileSync(jobPath, 'utf8'));
const base = dirname(resolve(jobPath));
const sessions = new Map();
try {
  for (const run of job.runs) {
    const modelPath = resolve(base, run.model);
    let session = sessions.get(modelPath);
    if (!session) {
      session = await ort.InferenceSession.create(modelPath, {
        intraOpNumThreads: job.threads ?? 2,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        executionProviders: job.executionProviders ?? ['cpu'],
        extra: { session: { intra_op: { allow_spinning: '0' } } },
      });
      sessions.set(modelPath, session);
    }
    const feeds = {};
    for (const [name, file] of Object.entries(run.inputs)) feeds[name] = readNpy(resolve(base, file));
    const t0 = performance.now();
    const out = await session.run(feeds);
    const ms = performance.now() - t0;
    for (const [name, file] of Object.entries(run.outputs)) {
      if (!out[name]) throw new Error(`${run.model}: no output named ${name}`);
      writeNpy(resolve(base, file), out[name]);
    }
    process.stdout.write(`${run.model}: ${ms.toFixed(1)} ms\n`);
  }
} catch (err) {
  process.stderr.write(`onnxruntime failed: ${err.stack ?? err}\n`);
  process.exit(1);
}
