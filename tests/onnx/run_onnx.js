'use strict';
// Runs an ONNX model with ONNX Runtime (onnxruntime-node, CPU) on tensors read from files and writes every output
// to a file, for illm's bit-exactness tests and benchmark (tests/onnx/support/onnx_runtime_runner.h).
//
//   node run_onnx.js MODEL.onnx [--threads N] [--repeat N] IN_1 OUT_1 [IN_2 OUT_2 ...]
//
// IN/OUT files are "tensor packs" (little-endian): the 8 bytes "ILLMTNS1", u32 count, then per tensor u32 name
// length, the name (UTF-8), u32 element type (ONNX TensorProto codes: 6 int32, 7 int64, 9 bool), u32 rank, rank
// int64 dims, the elements. Prints one JSON object on stdout: ONNX Runtime's version, the session creation time
// and the wall time of every run (ms). Any failure: a message on stderr and exit code 1.
const fs = require('fs');
const ort = require('onnxruntime-node');

const MAGIC = 'ILLMTNS1';
const TYPES = {
  6: { name: 'int32', bytes: 4, array: Int32Array },
  7: { name: 'int64', bytes: 8, array: BigInt64Array },
  9: { name: 'bool', bytes: 1, array: Uint8Array },
};
const CODES = { int32: 6, int64: 7, bool: 9 };

function readPack(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 12 || buf.toString('latin1', 0, 8) !== MAGIC) throw new Error(`${file}: not a tensor pack`);
  let at = 8;
  const u32 = () => { const v = buf.readUInt32LE(at); at += 4; return v; };
  const count = u32();
  const feeds = {};
  for (let i = 0; i < count; ++i) {
    const nameLength = u32();
    const name = buf.toString('utf8', at, at + nameLength); at += nameLength;
    const type = TYPES[u32()];
    if (!type) throw new Error(`${file}: tensor ${name} has an unsupported element type`);
    const dims = [];
    for (let r = u32(); r > 0; --r) { dims.push(Number(buf.readBigInt64LE(at))); at += 8; }
    const n = dims.reduce((a, b) => a * b, 1);
    const bytes = buf.subarray(at, at + n * type.bytes); at += n * type.bytes;
    const data = new type.array(new Uint8Array(bytes).buffer);  // copy: the typed array must be aligned
    feeds[name] = new ort.Tensor(type.name === 'bool' ? 'bool' : type.name, data, dims);
  }
  return feeds;
}

function writePack(file, results) {
  const parts = [Buffer.from(MAGIC, 'latin1')];
  const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
  const names = Object.keys(results).sort();
  parts.push(u32(names.length));
  for (const name of names) {
    const t = results[name];
    if (!(t.type in CODES)) throw new Error(`output ${name} has element type ${t.type} (integers and bool only)`);
    const nameBytes = Buffer.from(name, 'utf8');
    parts.push(u32(nameBytes.length), nameBytes, u32(CODES[t.type]), u32(t.dims.length));
    for (const d of t.dims) { const b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(d)); parts.push(b); }
    parts.push(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  const tmp = `${file}.tmp.${process.pid}`;
  fs.writeFileSync(tmp, Buffer.concat(parts));
  fs.renameSync(tmp, file);
}

async function main(argv) {
  if (argv.length < 3) throw new Error('usage: node run_onnx.js MODEL.onnx [--threads N] [--repeat N] IN OUT [IN OUT ...]');
  const model = argv[0];
  let threads = 1, repeat = 1, i = 1;
  for (; i < argv.length && argv[i].startsWith('--'); i += 2) {
    const value = Number(argv[i + 1]);
    if (!Number.isInteger(value) || value < 1) throw new Error(`${argv[i]} needs a positive integer`);
    if (argv[i] === '--threads') threads = value;
    else if (argv[i] === '--repeat') repeat = value;
    else throw new Error(`unknown option ${argv[i]}`);
  }
  const pairs = argv.slice(i);
  if (pairs.length === 0 || pairs.length % 2 !== 0) throw new Error('expected IN OUT file pairs');
  const started = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    logSeverityLevel: 3,  // errors only: a warning must not hide the error line
  });
  const sessionMs = Number(process.hrtime.bigint() - started) / 1e6;
  const runs = [];
  for (let p = 0; p < pairs.length; p += 2) {
    const feeds = readPack(pairs[p]);
    const ms = [];
    let results;
    for (let r = 0; r < repeat; ++r) {
      const t0 = process.hrtime.bigint();
      results = await session.run(feeds);
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    writePack(pairs[p + 1], results);
    runs.push({ input: pairs[p], ms });
  }
  process.stdout.write(JSON.stringify({ onnxruntime: ort.env.versions.node, node: process.version, threads,
    session_ms: sessionMs, runs }) + '\n');
}

main(process.argv.slice(2)).catch((e) => {
  process.stderr.write(`run_onnx.js: ${String(e && e.message ? e.message : e).split('\n')[0]}\n`);
  process.exit(1);
});
