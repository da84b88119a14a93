// End-to-end tests of the committed artifacts on anvil (from node_modules, free port):
// deploy the Poseidon libraries through the CREATE2 factory, TestToken and ZkCreditsPool;
// deposits and commitRoot (committed roots checked against zk-kit's InternalLeanIMT),
// depositMany (commits its root), slash,
// violations, expiry claims, provider transfer, the reverts, and gas figures (printed as
// a table; the bars of docs/ARCHITECTURE.md are asserted where they hold by design).
//
// Run: npm test (in contracts/). Set ZKC_GAS_JSON=<file> to also write the gas figures.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { compile, keccakHex } from '../build.mjs';
import { startAnvil, rpc, RpcError, Contract, words, loadArtifact, popcount, trailingOnes } from './lib.mjs';

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
  verifier: loadArtifact('CloseVerifier'),
};
// Any field elements do as a receipt key here: the pool only checks a close names an
// accepted one (the proof checks the signature).
// Receipt keys must be points of BabyJubJub's prime-order subgroup: Base8 and 2 Base8.
const SERVER_KEY = [
  5299619240641551281634865583518297030282874472190772894086521144482721001553n,
  16950150798460657717958625567821834550301663161624707787222815936182638968203n,
];
const OTHER_KEY = [
  10031262171927540148667355526369034398030886437092045105752248699557385197826n,
  633281375905621697187330766174974863687049529291089048651929454608812697683n,
];
let closeVerifier; // set in before()
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
    closeVerifier,
    serverKeyX: SERVER_KEY[0],
    serverKeyY: SERVER_KEY[1],
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
        const [leafIndex, leaf, amount, expiryEpoch, ...rest] = words(l.data);
        assert.equal(rest.length, 0, 'Deposited carries no root');
        return { id: BigInt(l.topics[1]), leafIndex, leaf, amount, expiryEpoch };
      });
  const committedLogs = (receipt, poolAddr) =>
    receipt.logs
      .filter(
        (l) => l.address.toLowerCase() === poolAddr.toLowerCase() && l.topics[0] === Pool.eventTopic('RootCommitted'),
      )
      .map((l) => {
        const [root, size] = words(l.data);
        return { root, size, logIndex: Number(BigInt(l.logIndex)) };
      });
  const view = async (name, args = [], at = pool) => (await call(at, Pool.encode(name, args)))[0];
  // commitRoot from an account with no role: it is permissionless.
  const commit = async (at = pool) => {
    const r = await send(slasher, at, Pool.encode('commitRoot', []));
    const logs = committedLogs(r, at);
    assert.ok(logs.length <= 1);
    return { r, log: logs[0] };
  };
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
    closeVerifier = await deploy(art.verifier.bytecode);
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
    assert.equal(await get('committedSize'), 0n);
    assert.equal((await call(pool, Pool.encode('isKnownRoot', [0n])))[0], 0n);
    // Committing an empty tree changes nothing and emits nothing.
    assert.equal(await get('commitRoot'), 0n);
    const { log } = await commit();
    assert.equal(log, undefined);
    assert.equal(await get('rootCount'), 0n);
  });

  it('rejects bad deployment parameters', async () => {
    for (const [over, name] of [
      [{ unit: 0n }, 'unit'],
      [{ treeDepth: 21n }, 'treeDepth'],
      [{ treeDepth: 0n }, 'treeDepth'],
      [{ bountyBps: 10001n }, 'bountyBps'],
      [{ rootHistorySize: 0n }, 'rootHistorySize'],
      [{ denominations: [5n, 5n] }, 'denominations'],
      [{ epochLen: 0n }, 'epochLen'],
      [{ closeVerifier: '0x' + '00'.repeat(19) + '01' }, 'closeVerifier'],
      [{ serverKeyX: F }, 'serverKey'],
      [{ serverKeyX: 11n, serverKeyY: 22n }, 'serverKey'],
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
    assert.deepEqual({ ...log }, { id, leafIndex: 0n, leaf: await leafOf(id, 5000n, e), amount: 5000n, expiryEpoch: e });
    assert.equal(committedLogs(r, pool).length, 0, 'a single deposit commits no root');
    assert.equal(await view('treeSize'), 1n);
    assert.equal(await view('root'), 0n, 'nothing committed yet');
    assert.equal(await view('isKnownRoot', [log.leaf]), 0n);
    await refInsert(log.leaf);
    const { r: c, log: committed } = await commit();
    gas['commitRoot, 1 leaf (0 node hashes)'] = c.gas;
    assert.deepEqual({ root: committed.root, size: committed.size }, { root: await refRoot(), size: 1n });
    assert.equal(committed.root, log.leaf, 'a one-leaf LeanIMT has the leaf as its root');
    assert.equal(await view('root'), log.leaf);
    assert.equal(await view('isKnownRoot', [log.leaf]), 1n);
    assert.equal(await view('committedSize'), 1n);
    // A second commit with no deposit in between is a no-op.
    const again = await commit();
    assert.equal(again.log, undefined);
    gas['commitRoot, nothing new since the last commit'] = again.r.gas;
    assert.equal(await view('rootCount'), 1n);
    const [amount, expiry, leafIndex, exists] = await call(pool, Pool.encode('deposits', [id]));
    assert.deepEqual([amount, expiry, leafIndex, exists], [5000n, e, 0n, 1n]);
    assert.equal((await call(pool, Pool.encode('outstanding', [e])))[0], 5000n);
    assert.equal(await balance(pool), 5000n * UNIT);
  });

  it('depositMany: 10 notes, one transfer, commits one root for the batch', async () => {
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
      await refInsert(log.leaf);
    }
    const committed = committedLogs(r, pool);
    assert.equal(committed.length, 1, 'one RootCommitted for the batch');
    assert.equal(committed[0].size, 11n);
    assert.equal(committed[0].root, await refRoot());
    const lastDeposited = Math.max(
      ...r.logs.filter((l) => l.topics[0] === Pool.eventTopic('Deposited')).map((l) => Number(BigInt(l.logIndex))),
    );
    assert.ok(committed[0].logIndex > lastDeposited, 'RootCommitted follows the Deposited events it covers');
    assert.equal(await view('root'), committed[0].root);
    assert.equal(await view('treeSize'), 11n);
    assert.equal(await view('committedSize'), 11n);
    assert.equal(await view('isKnownRoot', [committed[0].root]), 1n);
  });

  it('single deposits and commits: committed roots match the LeanIMT at every size, gas by leaf index', async () => {
    const rootsSeen = [];
    for (let i = 11; i < 40; i++) {
      const id = freshId();
      const r = await send(user, pool, Pool.encode('deposit', [id, 2000n * UNIT]));
      const [log] = depositedLogs(r, pool);
      assert.equal(log.leafIndex, BigInt(i));
      assert.equal(committedLogs(r, pool).length, 0);
      const refGas = (await refInsert(log.leaf)).gas;
      if ([15, 31].includes(i)) gas[`  zk-kit InternalLeanIMT._insert alone, leaf index ${i}`] = refGas;
      if ([11, 12, 15, 16, 31].includes(i)) {
        gas[`deposit, small tree, leaf index ${i} (${trailingOnes(i)} node hashes)`] = r.gas;
      }
      // Commit after every deposit up to 30 leaves, then after every third: a root is
      // the LeanIMT root of all leaves so far, whatever was committed before.
      if (i < 30 || i % 3 === 0) {
        const { r: c, log: committed } = await commit();
        assert.deepEqual([committed.root, committed.size], [await refRoot(), BigInt(i + 1)], `root after ${i + 1} leaves`);
        assert.equal(await view('root'), committed.root);
        if ([27, 31].includes(i + 1)) {
          gas[`commitRoot, small tree, ${i + 1} leaves (${popcount(i + 1) - 1} node hashes)`] = c.gas;
        }
        rootsSeen.push(committed.root);
      } else {
        assert.equal(await view('isKnownRoot', [await refRoot()]), 0n, 'an uncommitted root is not known');
      }
    }
    // All within the ring of 64 are known; the newest is root().
    for (const r of rootsSeen) assert.equal(await view('isKnownRoot', [r]), 1n);
    assert.equal(await view('isKnownRoot', [12345n]), 0n);
  });

  it('the ring keeps the last rootHistorySize committed roots', async () => {
    const p4 = await deployPool({ rootHistorySize: 3n });
    await send(user, token, Token.encode('approve', [p4, 10n ** 32n]));
    const roots = [];
    for (let i = 0; i < 5; i++) {
      await send(user, p4, Pool.encode('deposit', [freshId(), UNIT]));
      roots.push((await commit(p4)).log.root);
    }
    const known = [];
    for (const r of roots) known.push(await view('isKnownRoot', [r], p4));
    assert.deepEqual(known, [0n, 0n, 1n, 1n, 1n]);
    assert.equal(await view('rootCount', [], p4), 5n);
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

  it('close: the checks before the proof revert by name; the clearance is EIP-712 by the provider', async () => {
    const k = 0x5eed_c105en;
    const id = await hash2(1n, k);
    await send(user, pool, Pool.encode('deposit', [id, 2000n * UNIT]));
    const e = (await call(pool, Pool.encode('deposits', [id])))[1];
    const { log } = await commit();
    const nc = await hash2(7n, k);
    const nullifier = 0x1234n;
    const base = {
      root: log.root,
      nc,
      nullifier,
      yw: 99n,
      deposit: 2000n,
      expiryEpoch: e,
      payoutAmount: 1500n,
      burn: 0n,
      lostLastReceipt: false,
      payout: user,
      relayer: '0x' + '00'.repeat(20),
      relayFee: 0n,
      serverKeyX: SERVER_KEY[0],
      serverKeyY: SERVER_KEY[1],
    };
    const proof = [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n];
    const chainId = BigInt(await rpc(url, 'eth_chainId'));
    const typed = (n, nul) => ({
      types: {
        EIP712Domain: [
          { name: 'name', type: 'string' },
          { name: 'version', type: 'string' },
          { name: 'chainId', type: 'uint256' },
          { name: 'verifyingContract', type: 'address' },
        ],
        CloseClearance: [
          { name: 'nc', type: 'uint256' },
          { name: 'nullifier', type: 'uint256' },
        ],
      },
      primaryType: 'CloseClearance',
      domain: { name: 'zkcredits', version: '1', chainId: Number(chainId), verifyingContract: pool },
      message: { nc: '0x' + n.toString(16), nullifier: '0x' + nul.toString(16) },
    });
    const sign = (who, n, nul) => rpc(url, 'eth_signTypedData_v4', [who, JSON.stringify(typed(n, nul))]);
    // The pool's digest is the EIP-712 hash, computed here independently.
    const enc = (...ws) => Buffer.from(ws.map((w) => w.toString(16).padStart(64, '0')).join(''), 'hex');
    const kh = (str) => BigInt(keccakHex(Buffer.from(str)));
    const domain = BigInt(
      keccakHex(
        enc(
          kh('EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)'),
          kh('zkcredits'),
          kh('1'),
          chainId,
          BigInt(pool),
        ),
      ),
    );
    const structHash = BigInt(keccakHex(enc(kh('CloseClearance(uint256 nc,uint256 nullifier)'), nc, nullifier)));
    const digest = keccakHex(Buffer.concat([Buffer.from([0x19, 0x01]), enc(domain, structHash)]));
    assert.equal((await call(pool, Pool.encode('clearanceDigest', [nc, nullifier])))[0], BigInt(digest));

    const good = await sign(provider, nc, nullifier);
    const coop = (args, sig = good) => Pool.encode('closeCooperative', [{ ...base, ...args }, proof, sig]);
    // A valid clearance gets past every check to the verifier, which refuses the garbage proof.
    await expectRevert(user, pool, coop({}), Pool, 'InvalidProof');
    await expectRevert(user, pool, coop({}, await sign(user, nc, nullifier)), Pool, 'InvalidClearance');
    await expectRevert(user, pool, coop({}, await sign(provider, nc + 1n, nullifier)), Pool, 'InvalidClearance');
    await expectRevert(user, pool, coop({}, await sign(provider, nc, nullifier + 1n)), Pool, 'InvalidClearance');
    await expectRevert(user, pool, coop({}, '0x' + good.slice(2, 130)), Pool, 'InvalidClearance');
    await expectRevert(user, pool, coop({ root: log.root + 1n }), Pool, 'UnknownRoot');
    await expectRevert(user, pool, coop({ serverKeyY: 23n }), Pool, 'UnknownServerKey');
    await expectRevert(user, pool, coop({ payout: '0x' + '00'.repeat(20) }), Pool, 'InvalidPayout');
    await expectRevert(user, pool, coop({ payoutAmount: 1500n, burn: 501n }), Pool, 'AmountsExceedDeposit');
    // A relay fee is paid out of U, and to somebody.
    await expectRevert(user, pool, coop({ relayer: provider, relayFee: 1501n }), Pool, 'InvalidRelayFee');
    await expectRevert(user, pool, coop({ relayFee: 1n }), Pool, 'InvalidRelayFee');
    await expectRevert(user, pool, coop({ relayer: provider, relayFee: 1500n }), Pool, 'InvalidProof');
    const uni = (args) => Pool.encode('closeUnilateral', [{ ...base, ...args }, proof]);
    await expectRevert(user, pool, uni({}), Pool, 'InvalidProof');
    await expectRevert(user, pool, uni({ yw: F }), Pool, 'InputNotInField');
    await expectRevert(user, pool, Pool.encode('finalize', [nc]), Pool, 'NoPendingClose');
    await expectRevert(user, pool, Pool.encode('challenge', [nc, 1n, 2n]), Pool, 'NoPendingClose');
    // The provider may accept more keys, nobody else, and only subgroup points.
    await expectRevert(user, pool, Pool.encode('acceptServerKey', OTHER_KEY), Pool, 'NotProvider');
    for (const bad of [
      [5n, 6n], // off the curve
      [0n, 1n], // the identity
      [0n, F - 1n], // order 2
      [F - SERVER_KEY[0], F - SERVER_KEY[1]], // Base8 plus the order-2 point: not in the subgroup
    ]) {
      await expectRevert(provider, pool, Pool.encode('acceptServerKey', bad), Pool, 'InvalidServerKey');
    }
    const accepted = await send(provider, pool, Pool.encode('acceptServerKey', OTHER_KEY));
    gas['acceptServerKey (subgroup check)'] = accepted.gas;
    await expectRevert(user, pool, coop({ serverKeyX: OTHER_KEY[0], serverKeyY: OTHER_KEY[1] }), Pool, 'InvalidProof');
    // A slashed note cannot close.
    await send(slasher, pool, Pool.encode('slash', [k]));
    await expectRevert(user, pool, coop({}), Pool, 'NoteAlreadySettled');
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

  it('hostile tokens: fee on transfer, false return, re-entry are refused by name', async () => {
    const out = compile({ withTests: true });
    const c = out.contracts['test/HostileTokens.sol'].HostileToken;
    const Hostile = new Contract(c.abi);
    const bad = await deploy('0x' + c.evm.bytecode.object);
    const p5 = await deployPool({ token: bad });
    await send(user, bad, Hostile.encode('mint', [user, 10n ** 30n]));
    await send(user, bad, Hostile.encode('approve', [p5, 10n ** 30n]));
    const setMode = (mode, data = '0x') => send(deployer, bad, Hostile.encode('setMode', [mode, p5, data]));
    // Fee on transfer: depositMany checks the exact sum; a single deposit credits what came.
    await setMode(1n);
    const ids = [freshId(), freshId()];
    await expectRevert(user, p5, Pool.encode('depositMany', [ids, [1000n * UNIT, 1000n * UNIT]]), Pool, 'TransferAmountMismatch');
    await expectRevert(user, p5, Pool.encode('deposit', [freshId(), 150n * UNIT]), Pool, 'AmountNotMultipleOfUnit');
    const r = await send(user, p5, Pool.encode('deposit', [freshId(), 100_000n * UNIT]));
    assert.equal(depositedLogs(r, p5)[0].amount, 99_000n, 'D is what arrived');
    // A token that returns false.
    await setMode(2n);
    await expectRevert(user, p5, Pool.encode('deposit', [freshId(), UNIT]), Pool, 'TokenCallFailed');
    // A token that calls back into the pool during the transfer.
    await setMode(3n, Pool.encode('deposit', [freshId(), UNIT]));
    await expectRevert(user, p5, Pool.encode('deposit', [freshId(), UNIT]), Pool, 'Reentrancy');
  });

  it('gas of a deposit in a large tree (state set with anvil_setStorageAt)', async () => {
    // The pool's slot 0 packs _treeSize (low 8 bytes), _rootCount (next 8 bytes) and
    // _committedSize (next 8); the frontier starts at slot 3; the root ring is mapping slot
    // 36 (see storageLayout).
    const p3 = await deployPool({});
    await send(user, token, Token.encode('approve', [p3, 10n ** 32n]));
    await send(user, p3, Pool.encode('deposit', [freshId(), 1000n * UNIT])); // warms epoch, balances
    const setSlot = (slot, value) =>
      rpc(url, 'anvil_setStorageAt', [p3, '0x' + slot.toString(16), '0x' + value.toString(16).padStart(64, '0')]);
    const rootCount = 5000n; // ring already lapped: ring writes overwrite non-zero slots
    for (let l = 0n; l <= 20n; l++) await setSlot(3n + l, (l + 1n) * 0x1234567n);
    for (let j = 0n; j < 64n; j++) await setSlot(BigInt(keccakHex(j.toString(16).padStart(64, '0') + (36n).toString(16).padStart(64, '0'))), 99n);
    const slot0 = (size, committed) => setSlot(0n, size | (rootCount << 64n) | (committed << 128n));
    const half = 2n ** 19n;
    const cases = [
      ['2^19 (even)', half],
      ['2^19 + 1', half + 1n],
      ['2^19 + 3', half + 3n],
      ['2^19 + 2^4 - 1', half + 15n],
      ['2^19 + 2^5 - 1', half + 31n],
      ['2^20 - 1 (worst case)', 2n ** 20n - 1n],
    ];
    for (const [label, index] of cases) {
      await slot0(index, 1000n);
      const r = await send(user, p3, Pool.encode('deposit', [freshId(), 1000n * UNIT]));
      assert.equal(depositedLogs(r, p3)[0].leafIndex, index);
      const hashes = trailingOnes(Number(index));
      gas[`deposit, 2^20 tree, index ${label}: ${hashes} node hashes`] = r.gas;
      if (hashes <= 4) assert.ok(r.gas <= GAS_BAR_DEPOSIT, `deposit at index ${index}: ${r.gas} gas`);
    }
    const commits = [
      ['2^19 + 1', half + 1n],
      ['with 10 bits set (the mean in [2^19, 2^20))', 0b10110100101011011000n],
      ['2^20 - 1 (worst case)', 2n ** 20n - 1n],
      ['2^20', 2n ** 20n],
    ];
    for (const [label, size] of commits) {
      await slot0(size, 1000n);
      const { r, log } = await commit(p3);
      assert.equal(log.size, size);
      gas[`commitRoot, 2^20 tree, size ${label}: ${popcount(Number(size)) - 1} node hashes`] = r.gas;
    }
    await slot0(half + 2n ** 18n + 5n, 1000n);
    const ids = Array.from({ length: 10 }, freshId);
    const r = await send(user, p3, Pool.encode('depositMany', [ids, ids.map(() => 1000n * UNIT)]));
    assert.equal(committedLogs(r, p3).length, 1);
    gas['depositMany of 10, 2^20 tree, index 2^19+2^18+5 (with its commit)'] = r.gas;
    gas['depositMany of 10, 2^20 tree, index 2^19+2^18+5, per note'] = Math.round(r.gas / 10);
    await slot0(2n ** 20n, 1000n);
    await expectRevert(user, p3, Pool.encode('deposit', [freshId(), 1000n * UNIT]), Pool, 'TreeFull');
  });

  // Last: it moves the clock 30 days on.
  it('a revoked server key serves closes until its notice ends', async () => {
    const p4 = await deployPool({});
    const usable = async (key) => BigInt((await call(p4, Pool.encode('serverKeyUsable', key)))[0]) === 1n;
    await expectRevert(user, p4, Pool.encode('revokeServerKey', SERVER_KEY), Pool, 'NotProvider');
    await expectRevert(provider, p4, Pool.encode('revokeServerKey', OTHER_KEY), Pool, 'UnknownServerKey');
    const r = await send(provider, p4, Pool.encode('revokeServerKey', SERVER_KEY));
    assert.ok(r.logs.some((l) => l.topics[0] === Pool.eventTopic('ServerKeyRevoked')));
    assert.ok(await usable(SERVER_KEY), 'usable during the notice');
    const notice = BigInt((await call(p4, Pool.encode('KEY_REVOCATION_NOTICE', [])))[0]);
    assert.equal(notice, 30n * 86400n);
    await rpc(url, 'evm_increaseTime', [Number(notice)]);
    await rpc(url, 'evm_mine');
    assert.ok(!(await usable(SERVER_KEY)), 'retired after the notice');
    // Accepting it again cancels the revocation.
    await send(provider, p4, Pool.encode('acceptServerKey', SERVER_KEY));
    assert.ok(await usable(SERVER_KEY));
  });
});

function keccakBig(s) {
  return BigInt(keccakHex(Buffer.from(s)));
}
