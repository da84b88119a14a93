// Minimal helpers for the contract tests: start anvil from node_modules on a free port,
// raw JSON-RPC, and just enough ABI encoding/decoding. Node built-ins plus the pinned
// js-sha3 (through build.mjs); no ethers/viem.

import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, keccakHex } from '../build.mjs';

const require = createRequire(import.meta.url);

// ------------------------------------------------------------------ anvil

function anvilBinary() {
  const arch = { x64: 'amd64', arm64: 'arm64' }[process.arch];
  const plat = process.platform === 'win32' ? 'win32' : process.platform;
  try {
    const p = require.resolve(`@foundry-rs/anvil-${plat}-${arch}/bin/anvil${plat === 'win32' ? '.exe' : ''}`);
    if (existsSync(p)) return [p, []];
  } catch {
    // fall back to the npm wrapper
  }
  return [process.execPath, [join(ROOT, 'node_modules/@foundry-rs/anvil/bin.mjs')]];
}

export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/// Start anvil on 127.0.0.1:<free port>. Returns { url, stop }.
export async function startAnvil(extraArgs = []) {
  const port = await freePort();
  const [cmd, pre] = anvilBinary();
  const child = spawn(cmd, [...pre, '--host', '127.0.0.1', '--port', String(port), ...extraArgs], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`anvil exited: ${stderr}`);
    try {
      await rpc(url, 'eth_chainId');
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`anvil did not start: ${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const stop = () =>
    new Promise((res) => {
      if (child.exitCode !== null) return res();
      child.once('exit', () => res());
      child.kill('SIGTERM');
      setTimeout(() => child.exitCode === null && child.kill('SIGKILL'), 3000).unref();
    });
  return { url, stop, pid: child.pid };
}

// ------------------------------------------------------------------ JSON-RPC

export class RpcError extends Error {
  constructor(err) {
    super(err.message);
    this.code = err.code;
    this.data = err.data;
  }
}

let nextId = 1;
export async function rpc(url, method, params = []) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, params }),
  });
  const j = await res.json();
  if (j.error) throw new RpcError(j.error);
  return j.result;
}

// ------------------------------------------------------------------ ABI

const hex = (n, bytes = 32) => BigInt(n).toString(16).padStart(bytes * 2, '0');
const word = (n) => {
  const v = BigInt(n);
  if (v < 0n) throw new Error('negative');
  return hex(v);
};
const isDynamic = (t) =>
  t.type === 'string' ||
  t.type === 'bytes' ||
  t.type.endsWith('[]') ||
  (t.type === 'tuple' && t.components.some(isDynamic));

const fixedArray = (t) => t.type.match(/^(.*)\[(\d+)\]$/);
/// Bytes a static type takes in place (tuples and fixed arrays inline their members).
function staticSize(t) {
  const f = fixedArray(t);
  if (f) return Number(f[2]) * staticSize({ ...t, type: f[1] });
  if (t.type === 'tuple') return t.components.reduce((n, c) => n + staticSize(c), 0);
  return 32;
}

function encodeOne(t, v) {
  const f = fixedArray(t);
  if (f && !isDynamic(t)) {
    const inner = { ...t, type: f[1] };
    return encodeTuple(v.map(() => inner), v);
  }
  if (t.type.endsWith('[]')) {
    const inner = { ...t, type: t.type.slice(0, -2) };
    return word(v.length) + encodeTuple(v.map(() => inner), v);
  }
  if (t.type === 'tuple') return encodeTuple(t.components, t.components.map((c) => v[c.name]));
  if (t.type === 'string' || t.type === 'bytes') {
    const b = t.type === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v.replace(/^0x/, ''), 'hex');
    const h = b.toString('hex');
    return word(b.length) + h.padEnd(Math.ceil(h.length / 64) * 64, '0');
  }
  if (t.type === 'address') return v.toLowerCase().replace(/^0x/, '').padStart(64, '0');
  if (t.type === 'bool') return word(v ? 1 : 0);
  if (t.type === 'bytes32' && typeof v === 'bigint') return word(v);
  if (t.type === 'bytes32') return v.replace(/^0x/, '').padEnd(64, '0');
  if (/^uint\d*$/.test(t.type)) return word(v);
  throw new Error(`unsupported ABI type ${t.type}`);
}

function encodeTuple(types, values) {
  const headLen = types.reduce((n, t) => n + (isDynamic(t) ? 32 : staticSize(t)), 0);
  let head = '';
  let tail = '';
  types.forEach((t, i) => {
    const e = encodeOne(t, values[i]);
    if (isDynamic(t)) {
      head += word(headLen + tail.length / 2);
      tail += e;
    } else head += e;
  });
  return head + tail;
}

const canonicalType = (t) =>
  t.type.startsWith('tuple') ? `(${t.components.map(canonicalType).join(',')})${t.type.slice(5)}` : t.type;
export const signature = (item) => `${item.name}(${item.inputs.map(canonicalType).join(',')})`;
export const selector = (sig) => keccakHex(Buffer.from(sig)).slice(0, 10);
export const topic = (sig) => keccakHex(Buffer.from(sig));

/// A thin contract handle over an ABI: c.data.fn(...args) gives calldata.
export class Contract {
  constructor(abi, address = null) {
    this.abi = abi;
    this.address = address;
  }
  fn(name) {
    const items = this.abi.filter((x) => x.type === 'function' && x.name === name);
    if (items.length !== 1) throw new Error(`function ${name}: ${items.length} matches`);
    return items[0];
  }
  encode(name, args) {
    const f = this.fn(name);
    return selector(signature(f)) + encodeTuple(f.inputs, args);
  }
  encodeDeploy(bytecode, args) {
    const c = this.abi.find((x) => x.type === 'constructor');
    return bytecode + (c ? encodeTuple(c.inputs, args) : '');
  }
  errorSelector(name) {
    const e = this.abi.find((x) => x.type === 'error' && x.name === name);
    if (!e) throw new Error(`no error ${name}`);
    return selector(signature(e));
  }
  eventTopic(name) {
    const e = this.abi.find((x) => x.type === 'event' && x.name === name);
    if (!e) throw new Error(`no event ${name}`);
    return topic(signature(e));
  }
}

/// 32-byte words of a hex blob, as BigInt.
export const words = (data) => (data.replace(/^0x/, '').match(/.{64}/g) || []).map((w) => BigInt('0x' + w));

export function loadArtifact(name) {
  return JSON.parse(readFileSync(join(ROOT, 'artifacts', `${name}.json`), 'utf8'));
}

export const popcount = (n) => n.toString(2).split('').filter((c) => c === '1').length;
/// Number of trailing 1 bits: the node hashes a deposit at leaf index n does.
export const trailingOnes = (n) => n.toString(2).length - n.toString(2).replace(/1+$/, '').length;
