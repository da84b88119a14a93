// End-to-end tests of the committed artifacts on anvil (from node_modules, free port):
// deploy the Poseidon libraries through the CREATE2 factory, TestToken and ZkCreditsPool;
// deposits (tree roots checked against zk-kit's InternalLeanIMT), depositMany, slash,
// violations, expiry claims, provider transfer, the reverts, and gas figures (printed as
// a table; the bars of docs/ARCHITECTURE.md are asserted where they hold by design).
//
// Run: npm test (in contracts/). Set ZKC_GAS_JSON=<file> to also write the gas figures.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { compile, keccakHex } from '../build.mjs';
import { startAnvil, rpc, RpcError, Contract, words, loadArtifact, popcount } from './lib.mjs';

const F = 21888242871839275222246405745257275088548364400416034343698204186575808495617n;
const UNIT = 10n ** 12n; // 1 credit unit = 1e-6 of an 18-decimal token
const EPOCH_LEN = 3600n;
const LIFETIME = 24n;
const GRACE = 600n;
const GAS_BAR_DEPOSIT = 250_000;
const GAS_BAR_SLASH = 120_000;

const art = {
  pool: loadArtifact('ZkCreditsPool'),
  token: loadArtifact('TestToken'),
  t3: loadArtifact('PoseidonT3'),
  t5: loadArtifact('PoseidonT5'),
};
const Pool = new Contract(art.pool.abi);
const Token = new Contract(art.token.abi);
const gas = {}; // name -> gas used, for the report

function baseConfig(token, provider, overrides = {}) {
  return {
    token,
    provider,
    unit: UNIT,
    cMax: 1000n,
    pMax: 500n,
    epochLen: EPOCH_LEN,
    noteLifetime: LIFETIME,
    grace: GRACE,
    challengeWindow: 3600n,
    bountyBps: 0n,
    treeDepth: 20n,
    rootHistorySize: 64n,
    genesisTime: 0n,
    denominations: [],
    ...overrides,
  };
}

describe('ZkCreditsPool on anvil', () => {
  let node;
  let url;
  let accts;
  let deployer, provider, user, slasher, newProvider;
  let token;
  let pool;
  let ref; // LeanIMTReference
  let Ref;

  const send = async (from, to, data) => {
    const hash = await rpc(url, 'eth_sendTransaction', [{ from, to, data, gas: '0x1c9c380' }]);
    let r = null;
    for (let i = 0; r === null; i++) {
      r = await rpc(url, 'eth_getTransactionReceipt', [hash]);
      if (r === null) {
        assert.ok(i < 500, `no receipt for ${hash}`);
        await new Promise((res) => setTimeout(res, 10));
      }
    }
    assert.equal(r.status, '0x1', `transaction to ${to} failed`);
    r.gas = Number(BigInt(r.gasUsed));
    return r;
  };
  const call = async (to, data, from = deployer) => words(await rpc(url, 'eth_call', [{ from, to, data }, 'latest']));
  const deploy = async (data) => {
    const r = await send(deployer, null, data);
    return r.contractAddress;
  };
  const expectRevert = async (from, to, data, contract, errorName) => {
    let err;
    try {
      await rpc(url, 'eth_call', [{ from, to, data }, 'latest']);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof RpcError, `expected revert ${errorName}, call succeeded`);
    const sel = contract.errorSelector(errorName);
    const got = typeof err.data === 'string' ? err.data : err.data?.data;
    assert.ok(got && got.startsWith(sel), `expected ${errorName} (${sel}), got ${JSON.stringify(err.data)} ${err.message}`);
  };
  const balance = async (who) => (await call(token, Token.encode('balanceOf', [who])))[0];
  const hash2 = async (a, b) => (await call(ref, Ref.encode('hash2', [a, b])))[0];
  const hash4 = async (a, b, c, d) => (await call(ref, Ref.encode('hash4', [a, b, c, d])))[0];
  const deployPool = async (overrides) =>
    deploy(Pool.encodeDeploy(art.pool.bytecode, [baseConfig(token, provider, overrides)]));
  const depositedLogs = (receipt, poolAddr) =>
    receipt.logs
      .filter((l) => l.address.toLowerCase() === poolAddr.toLowerCase() && l.topics[0] === Pool.eventTopic('Deposited'))
      .map((l) => {
        const [leafIndex, leaf, amount, expiryEpoch, root] = words(l.data);
        return { id: BigInt(l.topics[1]), leafIndex, leaf, amount, expiryEpoch, root };
      });
  let nextId = 1000n;
  const freshId = () => keccakBig(`note-${nextId++}`) % F;

  before(async () => {
    node = await startAnvil();
    url = node.url;
    accts = await rpc(url, 'eth_accounts');
    [deployer, provider, user, slasher, newProvider] = accts;

    // Libraries at their CREATE2 addresses (the factory is predeployed on anvil).
    for (const lib of [art.t3, art.t5]) {
      const { factory, salt, address } = lib.create2;
      assert.notEqual(await rpc(url, 'eth_getCode', [factory, 'latest']), '0x', 'CREATE2 factory missing');
      await send(deployer, factory, salt + lib.bytecode.slice(2));
      const code = await rpc(url, 'eth_getCode', [address, 'latest']);
      assert.equal(code.length, lib.deployedBytecode.length, `${lib.contractName} not at ${address}`);
    }
    for (const [k, v] of Object.entries(art.pool.libraries)) {
      const lib = k.endsWith(':PoseidonT3') ? art.t3 : art.t5;
      assert.equal(v, lib.create2.address);
    }

    // The reference tree (zk-kit InternalLeanIMT), compiled in memory, linked the same way.
    const out = compile({ withTests: true });
    const c = out.contracts['test/LeanIMTReference.sol'].LeanIMTReference;
    let code = c.evm.bytecode.object;
    for (const [file, libs] of Object.entries(c.evm.bytecode.linkReferences)) {
      for (const [name, refs] of Object.entries(libs)) {
        const addr = art.pool.libraries[`${file}:${name}`].slice(2).toLowerCase();
        for (const { start, length } of refs) code = code.slice(0, start * 2) + addr + code.slice((start + length) * 2);
      }
    }
    Ref = new Contract(c.abi);
    ref = await deploy('0x' + code);

    token = await deploy(Token.encodeDeploy(art.token.bytecode, ['Test Credits Token', 'TCT']));
    for (const a of [user, slasher, provider]) {
      // The provider holds some already, so gas figures show a payout to a non-zero balance.
      await send(a, token, Token.encode('mint', [a, a === user ? 10n ** 33n : 10n ** 18n]));
    }
    pool = await deployPool({});
    // A finite allowance, so transferFrom pays for decreasing it (like most tokens).
    await send(user, token, Token.encode('approve', [pool, 10n ** 32n]));
  });

  after(async () => {
    if (node) await node.stop();
    const rows = Object.entries(gas).map(([k, v]) => `  ${k.padEnd(58)} ${String(v).padStart(9)}`);
    console.log('\ngas used (receipts):\n' + rows.join('\n'));
    if (process.env.ZKC_GAS_JSON) writeFileSync(process.env.ZKC_GAS_JSON, JSON.stringify(gas, null, 2) + '\n');
  });

  it('exposes its deployment parameters', async () => {
    const get = async (n) => (await call(pool, Pool.encode(n, [])))[0];
    assert.equal(await get('unit'), UNIT);
    assert.equal(await get('treeDepth'), 20n);
    assert.equal(await get('rootHistorySize'), 64n);
    assert.equal(BigInt(await get('provider')), BigInt(provider));
    assert.equal(BigInt(await get('BURN_ADDRESS')), 0xdeadn);
    assert.equal(await get('root'), 0n);
    assert.equal(await get('treeSize'), 0n);
    assert.equal((await call(pool, Pool.encode('isKnownRoot', [0n])))[0], 0n);
  });

  it('rejects bad deployment parameters', async () => {
    for (const [over, name] of [
      [{ unit: 0n }, 'unit'],
      [{ treeDepth: 33n }, 'treeDepth'],
      [{ bountyBps: 10001n }, 'bountyBps'],
      [{ rootHistorySize: 0n }, 'rootHistorySize'],
      [{ denominations: [5n, 5n] }, 'denominations'],
      [{ epochLen: 0n }, 'epochLen'],
    ]) {
      const data = Pool.encodeDeploy(art.pool.bytecode, [baseConfig(token, provider, over)]);
      let err;
      try {
        await rpc(url, 'eth_call', [{ from: deployer, data }, 'latest']);
      } catch (e) {
        err = e;
      }
      assert.ok(err?.data?.startsWith(Pool.errorSelector('InvalidConfig')), `config ${name} accepted`);
    }
  });

  const leafOf = async (id, d, e) => hash4(2n, id, d, e);
  const refInsert = async (leaf) => send(deployer, ref, Ref.encode('insert', [leaf]));
  const refRoot = async () => (await call(ref, Ref.encode('root', [])))[0];

  it('deposit: one note, leaf and root as the LeanIMT computes them', async () => {
    const id = await hash2(1n, 424242n);
    const r = await send(user, pool, Pool.encode('deposit', [id, 5000n * UNIT]));
    gas['deposit (1st note, fresh pool)'] = r.gas;
    const [log] = depositedLogs(r, pool);
    const e = (await call(pool, Pool.encode('currentEpoch', [])))[0] + LIFETIME;
    assert.deepEqual(
      { ...log },
      { id, leafIndex: 0n, leaf: await leafOf(id, 5000n, e), amount: 5000n, expiryEpoch: e, root: log.root },
    );
    await refInsert(log.leaf);
    assert.equal(log.root, await refRoot());
    assert.equal(log.root, log.leaf, 'a one-leaf LeanIMT has the leaf as its root');
    const [amount, expiry, leafIndex, exists] = await call(pool, Pool.encode('deposits', [id]));
    assert.deepEqual([amount, expiry, leafIndex, exists], [5000n, e, 0n, 1n]);
    assert.equal((await call(pool, Pool.encode('outstanding', [e])))[0], 5000n);
    assert.equal(await balance(pool), 5000n * UNIT);
  });

  it('depositMany: 10 notes, one transfer, one root for the batch', async () => {
    const ids = [];
    for (let i = 0; i < 10; i++) ids.push(freshId());
    const amounts = ids.map((_, i) => BigInt(1000 + i) * UNIT);
    const r = await send(user, pool, Pool.encode('depositMany', [ids, amounts]));
    gas['depositMany of 10 notes (leaves 1..10)'] = r.gas;
    gas['depositMany of 10 notes, per note'] = Math.round(r.gas / 10);
    const logs = depositedLogs(r, pool);
    assert.equal(logs.length, 10);
    const transfers = r.logs.filter((l) => l.address.toLowerCase() === token.toLowerCase());
    assert.equal(transfers.length, 1, 'one transferFrom for the whole batch');
    for (const [i, log] of logs.entries()) {
      assert.equal(log.id, ids[i]);
      assert.equal(log.leafIndex, BigInt(i + 1));
      assert.equal(log.amount, BigInt(1000 + i));
      assert.equal(log.leaf, await leafOf(ids[i], log.amount, log.expiryEpoch));
      assert.equal(log.root, logs[0].root);
      await refInsert(log.leaf);
    }
    assert.equal(logs[0].root, await refRoot());
    assert.equal((await call(pool, Pool.encode('root', [])))[0], logs[0].root);
    assert.equal((await call(pool, Pool.encode('treeSize', [])))[0], 11n);
    assert.equal((await call(pool, Pool.encode('isKnownRoot', [logs[0].root])))[0], 1n);
  });

  it('single deposits: roots match the LeanIMT at every size, gas by leaf index', async () => {
    const rootsSeen = [];
    for (let i = 11; i < 40; i++) {
      const id = freshId();
      const r = await send(user, pool, Pool.encode('deposit', [id, 2000n * UNIT]));
      const [log] = depositedLogs(r, pool);
      assert.equal(log.leafIndex, BigInt(i));
      const refGas = (await refInsert(log.leaf)).gas;
      if ([15, 31].includes(i)) gas[`  zk-kit InternalLeanIMT._insert alone, leaf index ${i}`] = refGas;
      assert.equal(log.root, await refRoot(), `root after ${i + 1} leaves`);
      rootsSeen.push(log.root);
      if ([11, 12, 15, 16, 31].includes(i)) {
        gas[`deposit, small tree, leaf index ${i} (${popcount(i)} node hashes)`] = r.gas;
      }
    }
    // All within the ring of 64 are known; the newest is root().
    for (const r of rootsSeen) assert.equal((await call(pool, Pool.encode('isKnownRoot', [r])))[0], 1n);
    assert.equal((await call(pool, Pool.encode('isKnownRoot', [12345n])))[0], 0n);
  });

  it('deposit reverts with named errors', async () => {
    const id = freshId();
    await send(user, pool, Pool.encode('deposit', [id, 1000n * UNIT]));
    await expectRevert(user, pool, Pool.encode('deposit', [id, 1000n * UNIT]), Pool, 'NoteAlreadyDeposited');
    await expectRevert(user, pool, Pool.encode('deposit', [freshId(), 1000n * UNIT + 1n]), Pool, 'AmountNotMultipleOfUnit');
    await expectRevert(user, pool, Pool.encode('deposit', [freshId(), 0n]), Pool, 'ZeroAmount');
    await expectRevert(user, pool, Pool.encode('deposit', [F, UNIT]), Pool, 'NotAFieldElement');
    await expectRevert(user, pool, Pool.encode('deposit', [freshId(), 2n ** 64n * UNIT]), Pool, 'AmountTooLarge');
    await expectRevert(user, pool, Pool.encode('depositMany', [[], []]), Pool, 'EmptyBatch');
    await expectRevert(user, pool, Pool.encode('depositMany', [[freshId()], []]), Pool, 'LengthMismatch');
    const dup = freshId();
    await expectRevert(user, pool, Pool.encode('depositMany', [[dup, dup], [UNIT, UNIT]]), Pool, 'NoteAlreadyDeposited');
  });

  it('slash: pays the provider, marks NC, refuses twice', async () => {
    const k = 0xabcdefn;
    const id = await hash2(1n, k);
    const nc = await hash2(7n, k);
    await send(user, pool, Pool.encode('deposit', [id, 3000n * UNIT]));
    const e = (await call(pool, Pool.encode('deposits', [id])))[1];
    const before = await call(pool, Pool.encode('outstanding', [e]));
    const pBefore = await balance(provider);
    const r = await send(slasher, pool, Pool.encode('slash', [k]));
    gas['slash (bounty 0)'] = r.gas;
    assert.ok(r.gas <= GAS_BAR_SLASH, `slash: ${r.gas} gas`);
    assert.equal((await balance(provider)) - pBefore, 3000n * UNIT);
    assert.equal((await call(pool, Pool.encode('outstanding', [e])))[0], before[0] - 3000n);
    assert.equal((await call(pool, Pool.encode('closedOrSlashed', [nc])))[0], 1n);
    const log = r.logs.find((l) => l.topics[0] === Pool.eventTopic('Slashed'));
    assert.equal(BigInt(log.topics[1]), id);
    assert.equal(BigInt(log.topics[2]), nc);
    const [kk, who, bounty, toProvider] = words(log.data);
    assert.deepEqual([kk, who, bounty, toProvider], [k, BigInt(slasher), 0n, 3000n * UNIT]);
    await expectRevert(slasher, pool, Pool.encode('slash', [k]), Pool, 'NoteAlreadySettled');
    await expectRevert(slasher, pool, Pool.encode('slash', [k + 1n]), Pool, 'UnknownNote');
    await expectRevert(slasher, pool, Pool.encode('slash', [k + F]), Pool, 'NotAFieldElement');
  });

  it('recordViolations: provider only, penalty <= pMax, events', async () => {
    const ns = [11n, 22n, 33n];
    const ev = ['0x' + '11'.repeat(32), '0x' + '22'.repeat(32), '0x' + '33'.repeat(32)];
    await expectRevert(user, pool, Pool.encode('recordViolations', [ns, ev, [1n, 2n, 3n]]), Pool, 'NotProvider');
    await expectRevert(provider, pool, Pool.encode('recordViolations', [ns, ev, [1n, 501n, 3n]]), Pool, 'PenaltyTooLarge');
    await expectRevert(provider, pool, Pool.encode('recordViolations', [ns, ev, [1n]]), Pool, 'LengthMismatch');
    const r = await send(provider, pool, Pool.encode('recordViolations', [ns, ev, [1n, 500n, 3n]]));
    gas['recordViolations (3 entries)'] = r.gas;
    const logs = r.logs.filter((l) => l.topics[0] === Pool.eventTopic('ViolationRecorded'));
    assert.equal(logs.length, 3);
    assert.equal(BigInt(logs[1].topics[1]), 22n);
    assert.deepEqual(words(logs[1].data), [BigInt(ev[1]), 500n]);
  });

  it('claimExpired: only after epoch end + grace, once; then slashing that epoch is refused', async () => {
    const k = 0x5151n;
    const id = await hash2(1n, k);
    await send(user, pool, Pool.encode('deposit', [id, 1000n * UNIT]));
    const e = (await call(pool, Pool.encode('deposits', [id])))[1];
    const genesis = (await call(pool, Pool.encode('genesisTime', [])))[0];
    const out = (await call(pool, Pool.encode('outstanding', [e])))[0];
    await expectRevert(user, pool, Pool.encode('claimExpired', [e]), Pool, 'NotProvider');
    await expectRevert(provider, pool, Pool.encode('claimExpired', [e]), Pool, 'EpochNotExpired');
    const expiry = genesis + (e + 1n) * EPOCH_LEN + GRACE;
    await rpc(url, 'evm_setNextBlockTimestamp', [Number(expiry - 1n)]);
    await rpc(url, 'evm_mine');
    await expectRevert(provider, pool, Pool.encode('claimExpired', [e]), Pool, 'EpochNotExpired');
    await rpc(url, 'evm_setNextBlockTimestamp', [Number(expiry)]);
    const pBefore = await balance(provider);
    const r = await send(provider, pool, Pool.encode('claimExpired', [e]));
    gas['claimExpired'] = r.gas;
    assert.equal((await balance(provider)) - pBefore, out * UNIT);
    const log = r.logs.find((l) => l.topics[0] === Pool.eventTopic('ExpiredClaimed'));
    assert.deepEqual([BigInt(log.topics[1]), words(log.data)[0]], [e, out * UNIT]);
    assert.equal((await call(pool, Pool.encode('epochClaimed', [e])))[0], 1n);
    await expectRevert(provider, pool, Pool.encode('claimExpired', [e]), Pool, 'EpochClaimed');
    await expectRevert(slasher, pool, Pool.encode('slash', [k]), Pool, 'EpochClaimed');
    // Everything deposited is accounted for: the pool holds nothing more.
    assert.equal(await balance(pool), 0n);
  });

  it('provider role moves in two steps', async () => {
    await expectRevert(user, pool, Pool.encode('transferProvider', [user]), Pool, 'NotProvider');
    await send(provider, pool, Pool.encode('transferProvider', [newProvider]));
    assert.equal(BigInt((await call(pool, Pool.encode('pendingProvider', [])))[0]), BigInt(newProvider));
    await expectRevert(user, pool, Pool.encode('acceptProvider', []), Pool, 'NotPendingProvider');
    const r = await send(newProvider, pool, Pool.encode('acceptProvider', []));
    assert.ok(r.logs.some((l) => l.topics[0] === Pool.eventTopic('ProviderTransferred')));
    assert.equal(BigInt((await call(pool, Pool.encode('provider', [])))[0]), BigInt(newProvider));
    assert.equal(BigInt((await call(pool, Pool.encode('pendingProvider', [])))[0]), 0n);
  });

  it('denominations and slasher bounty', async () => {
    const p2 = await deployPool({ bountyBps: 1000n, denominations: [1000n, 5000n] });
    await send(user, token, Token.encode('approve', [p2, 10n ** 32n]));
    const den = words(await rpc(url, 'eth_call', [{ to: p2, data: Pool.encode('denominations', []) }, 'latest']));
    assert.deepEqual(den, [32n, 2n, 1000n, 5000n]);
    await expectRevert(user, p2, Pool.encode('deposit', [freshId(), 3000n * UNIT]), Pool, 'DenominationNotAllowed');
    await expectRevert(
      user,
      p2,
      Pool.encode('depositMany', [[freshId(), freshId()], [1000n * UNIT, 3000n * UNIT]]),
      Pool,
      'DenominationNotAllowed',
    );
    await send(user, p2, Pool.encode('deposit', [freshId(), 1000n * UNIT]));
    const k = 777n;
    await send(user, p2, Pool.encode('deposit', [await hash2(1n, k), 5000n * UNIT]));
    const sBefore = await balance(slasher);
    const pBefore = await balance(provider);
    const r = await send(slasher, p2, Pool.encode('slash', [k]));
    gas['slash (bounty 10%, two transfers)'] = r.gas;
    assert.equal((await balance(slasher)) - sBefore, 500n * UNIT);
    assert.equal((await balance(provider)) - pBefore, 4500n * UNIT);
  });

  it('gas of a deposit in a large tree (state set with anvil_setStorageAt)', async () => {
    // The pool's slot 0 packs _treeSize (low 8 bytes) and _rootCount (next 8 bytes); the
    // frontier starts at slot 3; the root ring is mapping slot 36 (see storageLayout).
    const p3 = await deployPool({});
    await send(user, token, Token.encode('approve', [p3, 10n ** 32n]));
    await send(user, p3, Pool.encode('deposit', [freshId(), 1000n * UNIT])); // warms epoch, balances
    const setSlot = (slot, value) =>
      rpc(url, 'anvil_setStorageAt', [p3, '0x' + slot.toString(16), '0x' + value.toString(16).padStart(64, '0')]);
    const rootCount = 5000n; // ring already lapped: ring writes overwrite non-zero slots
    for (let l = 0n; l <= 20n; l++) await setSlot(3n + l, (l + 1n) * 0x1234567n);
    for (let j = 0n; j < 64n; j++) await setSlot(BigInt(keccakHex(j.toString(16).padStart(64, '0') + (36n).toString(16).padStart(64, '0'))), 99n);
    const cases = [
      ['2^19', 2n ** 19n],
      ['2^19 + 2^18 + 2^17', 2n ** 19n + 2n ** 18n + 2n ** 17n],
      ['4 bits set', 0b10110100000000000000n],
      ['5 bits set', 0b10110100100000000000n],
      ['10 bits set (the mean in [2^19, 2^20))', 0b10110100101011011000n],
      ['15 bits set', 0b11110111101101111010n],
      ['2^20 - 1 (20 bits set, worst case)', 2n ** 20n - 1n],
    ];
    for (const [label, index] of cases) {
      await setSlot(0n, index | (rootCount << 64n));
      const r = await send(user, p3, Pool.encode('deposit', [freshId(), 1000n * UNIT]));
      assert.equal(depositedLogs(r, p3)[0].leafIndex, index);
      const hashes = popcount(Number(index));
      gas[`deposit, 2^20 tree, index ${label}: ${hashes} node hashes`] = r.gas;
      if (hashes <= 4) assert.ok(r.gas <= GAS_BAR_DEPOSIT, `deposit at index ${index}: ${r.gas} gas`);
    }
    await setSlot(0n, (2n ** 19n + 2n ** 18n + 5n) | (rootCount << 64n));
    const ids = Array.from({ length: 10 }, freshId);
    const r = await send(user, p3, Pool.encode('depositMany', [ids, ids.map(() => 1000n * UNIT)]));
    gas['depositMany of 10, 2^20 tree, index 2^19+2^18+5, per note'] = Math.round(r.gas / 10);
    await setSlot(0n, (2n ** 20n) | (rootCount << 64n));
    await expectRevert(user, p3, Pool.encode('deposit', [freshId(), 1000n * UNIT]), Pool, 'TreeFull');
  });
});

function keccakBig(s) {
  return BigInt(keccakHex(Buffer.from(s)));
}
