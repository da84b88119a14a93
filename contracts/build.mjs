#!/usr/bin/env node
// Compiles contracts/src/*.sol with the solcjs pinned in package.json and writes
// contracts/artifacts/<Name>.json. `node build.mjs --check` (npm run check) compiles in
// memory and fails if the committed artifacts differ from a fresh build.
//
// Artifacts are reproducible byte for byte: fixed compiler and settings, no metadata in
// the bytecode (appendCBOR false, so no source paths or hashes leak in), pretty JSON with
// sorted ABI keys. The Poseidon libraries have public functions, so the pool links to
// them: the artifacts link them to the addresses they get when deployed through the
// deterministic CREATE2 factory (0x4e59b44847b379578588920ca78fbf26c0b4956c, salt 0),
// and also give the link references so that a deployer can relink elsewhere.

import { createRequire } from 'node:module';
import { readFileSync, writeFileSync, readdirSync, mkdirSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const solc = require('solc');
const { keccak256 } = require('js-sha3');

export const ROOT = dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS_DIR = join(ROOT, 'artifacts');
export const EXPECTED_SOLC = '0.8.37+commit.f401782d.Emscripten.clang';
export const CREATE2_FACTORY = '0x4e59b44847b379578588920ca78fbf26c0b4956c';
export const CREATE2_SALT = '0x' + '00'.repeat(32);

const OUTPUTS = [
  'abi',
  'evm.bytecode.object',
  'evm.bytecode.linkReferences',
  'evm.deployedBytecode.object',
  'evm.deployedBytecode.linkReferences',
  'evm.deployedBytecode.immutableReferences',
  'evm.methodIdentifiers',
  'storageLayout',
];

/// Settings for our contracts (src/, test/).
export const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: 'cancun',
  viaIR: false,
  metadata: { appendCBOR: false },
  outputSelection: { '*': { '*': OUTPUTS } },
};

/// The Poseidon libraries are compiled on their own with runs = 1,000,000: with runs = 200
/// the optimizer folds their unrolled rounds into shared jump targets, and a hash costs
/// 29k (T3) / 116k (T5) gas instead of 18k / 51k. The code stays under 24,576 bytes.
export const LIBRARY_SETTINGS = { ...SETTINGS, optimizer: { enabled: true, runs: 1_000_000 } };
export const LIBRARY_SOURCES = ['poseidon-solidity/PoseidonT3.sol', 'poseidon-solidity/PoseidonT5.sol'];

// Contracts that get an artifact, in source-unit order. Libraries are added when linked.
const TOP_LEVEL = ['src/ZkCreditsPool.sol:ZkCreditsPool', 'src/TestToken.sol:TestToken', 'src/CloseVerifier.sol:CloseVerifier'];

function readSources(dir, prefix) {
  const out = {};
  for (const f of readdirSync(join(ROOT, dir)).filter((f) => f.endsWith('.sol')).sort()) {
    out[`${prefix}${f}`] = { content: readFileSync(join(ROOT, dir, f), 'utf8') };
  }
  return out;
}

function findImports(path) {
  // Source units are named by import path: "src/..." / "test/..." are ours, everything
  // else ("poseidon-solidity/...", "@zk-kit/...") resolves in node_modules.
  const candidates = [join(ROOT, path), join(ROOT, 'node_modules', path)];
  for (const c of candidates) {
    if (resolve(c).startsWith(ROOT) && existsSync(c)) return { contents: readFileSync(c, 'utf8') };
  }
  return { error: `import not found: ${path}` };
}

export function runSolc(sources, settings) {
  if (solc.version() !== EXPECTED_SOLC) {
    throw new Error(`solc ${solc.version()} is installed, expected ${EXPECTED_SOLC}: run npm ci`);
  }
  const input = { language: 'Solidity', sources, settings };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const w of (output.errors || []).filter((e) => e.severity !== 'error')) {
    // Only our own sources must be warning-free; dependencies are what they are.
    if (w.sourceLocation && !/^(src|test)\//.test(w.sourceLocation.file)) continue;
    process.stderr.write(w.formattedMessage + '\n');
  }
  if (errors.length) {
    throw new Error('solc failed:\n' + errors.map((e) => e.formattedMessage).join('\n'));
  }
  return output;
}

/// Compile src/ (and test/ when withTests). Throws on compiler errors.
export function compile({ withTests = false } = {}) {
  const sources = { ...readSources('src', 'src/'), ...(withTests ? readSources('test', 'test/') : {}) };
  return runSolc(sources, SETTINGS);
}

/// Compile the Poseidon libraries with LIBRARY_SETTINGS.
export function compileLibraries() {
  const sources = Object.fromEntries(LIBRARY_SOURCES.map((p) => [p, { content: findImports(p).contents }]));
  return runSolc(sources, LIBRARY_SETTINGS);
}

export function keccakHex(hexOrBytes) {
  const bytes = typeof hexOrBytes === 'string' ? Buffer.from(hexOrBytes.replace(/^0x/, ''), 'hex') : hexOrBytes;
  return '0x' + keccak256(bytes);
}

export function checksumAddress(addr) {
  const a = addr.toLowerCase().replace(/^0x/, '');
  const h = keccak256(a);
  let out = '0x';
  for (let i = 0; i < 40; i++) out += parseInt(h[i], 16) >= 8 ? a[i].toUpperCase() : a[i];
  return out;
}

export function create2Address(factory, salt, initCode) {
  const data = '0xff' + factory.slice(2) + salt.slice(2) + keccakHex(initCode).slice(2);
  return checksumAddress('0x' + keccakHex(data).slice(-40));
}

function link(object, linkReferences, libraries) {
  let code = object;
  for (const [file, libs] of Object.entries(linkReferences || {})) {
    for (const [name, refs] of Object.entries(libs)) {
      const addr = libraries[`${file}:${name}`];
      if (!addr) throw new Error(`no address for library ${file}:${name}`);
      for (const { start, length } of refs) {
        code = code.slice(0, start * 2) + addr.slice(2).toLowerCase() + code.slice((start + length) * 2);
      }
    }
  }
  if (code.includes('__$')) throw new Error('unlinked placeholder left in bytecode');
  return code;
}

export function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
  }
  return v;
}

function contractAt(output, fq) {
  const i = fq.lastIndexOf(':');
  const c = output.contracts[fq.slice(0, i)]?.[fq.slice(i + 1)];
  if (!c) throw new Error(`compiler output has no ${fq}`);
  return c;
}

/// Map artifact file name -> file contents (string), for the top-level contracts and the
/// libraries they link.
export function makeArtifacts(output, libOutput) {
  const compilerOf = (settings) => ({
    version: solc.version(),
    optimizer: settings.optimizer,
    evmVersion: settings.evmVersion,
    viaIR: settings.viaIR,
    metadata: settings.metadata,
  });
  const compiler = compilerOf(SETTINGS);
  // Libraries linked by the top-level contracts (they link nothing themselves).
  const libs = new Map();
  for (const fq of TOP_LEVEL) {
    const c = contractAt(output, fq);
    for (const refs of [c.evm.bytecode.linkReferences, c.evm.deployedBytecode.linkReferences]) {
      for (const [file, names] of Object.entries(refs || {})) {
        for (const name of Object.keys(names)) libs.set(`${file}:${name}`, null);
      }
    }
  }
  const files = {};
  for (const fq of [...libs.keys()].sort()) {
    const c = contractAt(libOutput, fq);
    if (Object.keys(c.evm.bytecode.linkReferences || {}).length) throw new Error(`${fq} links libraries`);
    const bytecode = '0x' + c.evm.bytecode.object;
    const address = create2Address(CREATE2_FACTORY, CREATE2_SALT, bytecode);
    libs.set(fq, address);
    const [sourceName, contractName] = fq.split(':');
    files[`${contractName}.json`] = {
      contractName,
      sourceName,
      abi: sortKeys(c.abi),
      bytecode,
      deployedBytecode: '0x' + c.evm.deployedBytecode.object,
      linkReferences: {},
      deployedLinkReferences: {},
      create2: {
        factory: CREATE2_FACTORY,
        salt: CREATE2_SALT,
        address,
        note: 'deploy by sending salt ++ bytecode as calldata to factory',
      },
      compiler: compilerOf(LIBRARY_SETTINGS),
    };
  }
  const libraries = Object.fromEntries(libs);
  for (const fq of TOP_LEVEL) {
    const c = contractAt(output, fq);
    const [sourceName, contractName] = fq.split(':');
    const used = (refs) =>
      Object.fromEntries(
        Object.entries(libraries).filter(([k]) =>
          Object.entries(refs || {}).some(([f, n]) => Object.keys(n).some((x) => `${f}:${x}` === k)),
        ),
      );
    const refs = c.evm.bytecode.linkReferences || {};
    files[`${contractName}.json`] = {
      contractName,
      sourceName,
      abi: sortKeys(c.abi),
      bytecode: '0x' + link(c.evm.bytecode.object, refs, libraries),
      deployedBytecode: '0x' + link(c.evm.deployedBytecode.object, c.evm.deployedBytecode.linkReferences, libraries),
      linkReferences: sortKeys(refs),
      deployedLinkReferences: sortKeys(c.evm.deployedBytecode.linkReferences || {}),
      // Byte ranges of the runtime code that the constructor fills with immutables (by AST
      // id): a deployer masks them when it compares the code on chain with deployedBytecode.
      immutableReferences: sortKeys(c.evm.deployedBytecode.immutableReferences || {}),
      libraries: used(refs),
      compiler,
    };
  }
  const out = {};
  for (const name of Object.keys(files).sort()) out[name] = JSON.stringify(files[name], null, 2) + '\n';
  return out;
}

function main() {
  const check = process.argv.includes('--check');
  const artifacts = makeArtifacts(compile(), compileLibraries());
  if (!check) {
    mkdirSync(ARTIFACTS_DIR, { recursive: true });
    for (const [name, text] of Object.entries(artifacts)) writeFileSync(join(ARTIFACTS_DIR, name), text);
    console.log(`wrote ${Object.keys(artifacts).map((n) => 'artifacts/' + n).join(', ')}`);
    return;
  }
  const problems = [];
  const present = existsSync(ARTIFACTS_DIR) ? readdirSync(ARTIFACTS_DIR).filter((f) => f.endsWith('.json')) : [];
  for (const [name, text] of Object.entries(artifacts)) {
    const p = join(ARTIFACTS_DIR, name);
    if (!existsSync(p)) problems.push(`artifacts/${name} is missing`);
    else if (readFileSync(p, 'utf8') !== text) problems.push(`artifacts/${name} differs from a fresh build`);
  }
  for (const f of present) if (!(f in artifacts)) problems.push(`artifacts/${f} is not produced by the build (stale?)`);
  if (problems.length) {
    console.error('contracts: committed artifacts are out of date:\n  ' + problems.join('\n  '));
    console.error('run `npm run build` in contracts/ and commit contracts/artifacts/.');
    process.exit(1);
  }
  console.log(`contracts: ${Object.keys(artifacts).length} artifacts are up to date`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
