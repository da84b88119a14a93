// Test-vector generator: runs outside implementations (circomlibjs, @zk-kit/eddsa-poseidon,
// blake-hash) and writes their answers to circomlib.json, so the Rust Poseidon, BabyJubJub
// and EdDSA-Poseidon code can be checked against code nobody on the team wrote.
//
//   node generate.mjs          write circomlib.json
//   node generate.mjs --check  regenerate in memory, exit 1 if circomlib.json differs
//
// Deterministic: every "random-looking" input is SHA-256 of a fixed label and counter.
// Encoding: field elements and scalars are decimal strings, bytes are lowercase hex (no 0x).

import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

import { buildPoseidon, buildPoseidonReference, buildBabyjub, buildEddsa } from "circomlibjs";

const require = createRequire(import.meta.url);
// @zk-kit/eddsa-poseidon 1.1.0's ESM build does not load under Node 20 (it imports named
// exports from the CommonJS package blakejs, and its "./blake-1" ESM path points at a missing
// dist/esm/ folder), so load its CommonJS build. "/blake-1" is the circomlib-compatible
// variant (private key hashed with BLAKE-512); it is also what the package root exports.
const zk = require("@zk-kit/eddsa-poseidon/blake-1");
const createBlakeHash = require("blake-hash"); // native binding if it loads, else pure JS
const createBlakeHashJs = require("blake-hash/js"); // always the pure-JS one

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT = join(HERE, "circomlib.json");

// BN254 scalar field.
const P = 21888242871839275222246405745257275088548364400416034343698204186575808495617n;

// ---------------------------------------------------------------- helpers

function fail(msg) {
    throw new Error(`vector generation failed: ${msg}`);
}

function sha256(label) {
    return createHash("sha256").update(label, "utf8").digest();
}

// 32 deterministic bytes for (label, i).
function prfBytes(label, i) {
    return sha256(`zkcredits-vectors/${label}/${i}`);
}

function bytesToBigBE(buf) {
    return BigInt("0x" + Buffer.from(buf).toString("hex"));
}

// Deterministic field element in [0, p).
function prfField(label, i) {
    return bytesToBigBE(prfBytes(label, i)) % P;
}

// Deterministic scalar of exactly 253 bits (bit 252 set).
function prfScalar253(label, i) {
    const v = bytesToBigBE(prfBytes(label, i)) & ((1n << 253n) - 1n);
    return v | (1n << 252n);
}

const hex = (buf) => Buffer.from(buf).toString("hex");
const dec = (x) => BigInt(x).toString(10);

function pkgVersion(name) {
    return JSON.parse(readFileSync(join(HERE, "node_modules", name, "package.json"), "utf8")).version;
}

// ---------------------------------------------------------------- build libraries

const poseidon = await buildPoseidon();
const poseidonRef = await buildPoseidonReference();
const babyJub = await buildBabyjub();
const eddsa = await buildEddsa();
const F = babyJub.F;

const toPoint = (pt) => [F.toObject(pt[0]), F.toObject(pt[1])]; // circomlib point -> bigint pair
const fromPoint = (pt) => [F.e(pt[0]), F.e(pt[1])];
const decPoint = (pt) => [dec(pt[0]), dec(pt[1])];
const eqPoint = (a, b) => a[0] === b[0] && a[1] === b[1];

// ---------------------------------------------------------------- poseidon

function poseidonHash(inputs) {
    const out = F.toObject(poseidon(inputs));
    // circomlibjs ships two Poseidons: the optimized WASM one and a plain reference one.
    const ref = poseidonRef.F.toObject(poseidonRef(inputs));
    if (out !== ref) fail(`poseidon wasm and reference disagree on [${inputs}]`);
    return out;
}

function genPoseidon() {
    const cases = [];
    for (let n = 1; n <= 6; n++) {
        const inputsList = [];
        inputsList.push(Array(n).fill(0n)); // all zero
        inputsList.push(Array.from({ length: n }, (_, i) => BigInt(i + 1))); // [1, 2, ..., n]
        inputsList.push(Array(n).fill(P - 1n)); // all p-1
        if (n >= 2) {
            // domain-tag style: [tag, k, ...] for the protocol's tags 1..8
            for (let tag = 1n; tag <= 8n; tag++) {
                const rest = Array.from({ length: n - 1 }, (_, i) => prfField(`poseidon/tag${tag}/n${n}`, i));
                inputsList.push([tag, ...rest]);
            }
            // mixed small / p-1 / random
            inputsList.push(Array.from({ length: n }, (_, i) =>
                i % 3 === 0 ? P - 1n : i % 3 === 1 ? BigInt(i) : prfField(`poseidon/mixed/n${n}`, i)));
        } else {
            inputsList.push([1n]);
            inputsList.push([2n]);
            inputsList.push([(1n << 64n) - 1n]);
        }
        for (let c = 0; c < 3; c++) {
            inputsList.push(Array.from({ length: n }, (_, i) => prfField(`poseidon/random/n${n}/c${c}`, i)));
        }
        for (const inputs of inputsList) {
            cases.push({ inputs: inputs.map(dec), output: dec(poseidonHash(inputs)) });
        }
    }
    return cases;
}

// ---------------------------------------------------------------- babyjub

const SUB = babyJub.subOrder;
const B8 = babyJub.Base8;

function mulB8(k) {
    return toPoint(babyJub.mulPointEscalar(B8, k));
}

function packHex(pt) {
    return hex(babyJub.packPoint(fromPoint(pt)));
}

function genBabyjub() {
    const base8 = toPoint(B8);
    const generator = toPoint(babyJub.Generator);
    const identity = [0n, 1n];

    // sanity: 8 * Generator == Base8, subOrder * Base8 == identity, points on curve
    if (!eqPoint(toPoint(babyJub.mulPointEscalar(babyJub.Generator, 8n)), base8)) fail("8*G != Base8");
    if (!eqPoint(mulB8(SUB), identity)) fail("subOrder*Base8 != identity");
    if (babyJub.order !== SUB * 8n) fail("order != 8*subOrder");
    if (F.toObject(babyJub.A) !== 168700n || F.toObject(babyJub.D) !== 168696n) fail("curve a/d");

    // add: p = a*B8, q = b*B8, sum = p + q (also checked against (a+b)*B8)
    const addPairs = [
        [0n, 0n], // identity + identity
        [0n, 1n], // identity + B8
        [1n, 1n], // doubling
        [1n, 2n],
        [3n, 5n],
        [7n, SUB - 7n], // P + (-P) = identity
        [SUB - 1n, 1n], // (-B8) + B8
        [SUB - 1n, SUB - 1n],
    ];
    for (let i = 0; i < 6; i++) {
        addPairs.push([prfScalar253("babyjub/add/a", i) % SUB, prfScalar253("babyjub/add/b", i) % SUB]);
    }
    addPairs.push([prfScalar253("babyjub/add/same", 0) % SUB, prfScalar253("babyjub/add/same", 0) % SUB]);
    const add = addPairs.map(([a, b]) => {
        const p = mulB8(a);
        const q = mulB8(b);
        const sum = toPoint(babyJub.addPoint(fromPoint(p), fromPoint(q)));
        if (!eqPoint(sum, mulB8((a + b) % SUB))) fail(`add ${a}+${b} inconsistent with mul`);
        if (!babyJub.inCurve(fromPoint(sum))) fail("sum not on curve");
        return { p: decPoint(p), q: decPoint(q), sum: decPoint(sum) };
    });

    // mul: point = scalar * Base8 (scalars may exceed subOrder: no reduction by the caller)
    const scalars = [0n, 1n, 2n, 7n, 8n, 1n << 64n, SUB - 1n, SUB, SUB + 1n, babyJub.order - 1n];
    for (let i = 0; i < 8; i++) scalars.push(prfScalar253("babyjub/mul", i));
    const mul = scalars.map((s) => {
        const pt = mulB8(s);
        if (!eqPoint(pt, mulB8(s % SUB))) fail(`mul ${s} not periodic in subOrder`);
        return { scalar: dec(s), point: decPoint(pt) };
    });

    // pack: 32-byte little-endian y with the sign of x in the top bit.
    // P and -P share y and differ only in the sign bit, so both signs are covered.
    const packScalars = [0n, 1n, SUB - 1n, 2n, SUB - 2n, 5n];
    for (let i = 0; i < 6; i++) {
        const k = prfScalar253("babyjub/pack", i) % SUB;
        packScalars.push(k, SUB - k);
    }
    let signs = { set: 0, clear: 0 };
    const pack = packScalars.map((k) => {
        const pt = mulB8(k);
        const packed = packHex(pt);
        const unpackedRaw = babyJub.unpackPoint(Buffer.from(packed, "hex"));
        if (pt[0] === 0n) {
            // circomlibjs unpackPoint rejects x = 0 (its Euler-criterion test needs x^2 != 0),
            // so the identity packs but does not unpack there. Rust may well accept it.
            if (unpackedRaw !== null) fail("circomlibjs now unpacks the identity; update comment");
        } else if (unpackedRaw === null || !eqPoint(toPoint(unpackedRaw), pt)) {
            fail(`pack/unpack round trip for ${k}`);
        }
        if (parseInt(packed.slice(62, 64), 16) & 0x80) signs.set++;
        else signs.clear++;
        return { point: decPoint(pt), packed_hex: packed };
    });
    // the generator (not in the Base8 subgroup) too
    pack.push({ point: decPoint(generator), packed_hex: packHex(generator) });
    if (signs.set < 3 || signs.clear < 3) fail("pack vectors do not cover both signs of x");

    return {
        a: "168700",
        d: "168696",
        order: dec(babyJub.order),
        sub_order: dec(SUB),
        base8: decPoint(base8),
        generator: decPoint(generator),
        add,
        mul,
        pack,
    };
}

// ---------------------------------------------------------------- eddsa

function genEddsa() {
    const privateKeys = [
        Buffer.alloc(32, 0x00),
        Buffer.from(Array.from({ length: 32 }, (_, i) => i)), // 00 01 .. 1f
        Buffer.alloc(32, 0xff),
    ];
    for (let i = 0; i < 7; i++) privateKeys.push(prfBytes("eddsa/private_key", i));

    const keys = [];
    const invalid = [];
    privateKeys.forEach((prv, ki) => {
        const A = eddsa.prv2pub(prv);
        const pub = toPoint(A);
        const zkPub = zk.derivePublicKey(Buffer.from(prv));
        if (!eqPoint(pub, zkPub)) fail(`public key differs for key ${hex(prv)}`);
        const secretScalar = zk.deriveSecretScalar(Buffer.from(prv));
        if (!eqPoint(mulB8(secretScalar), pub)) fail("secret scalar * Base8 != public key");

        const msgs = [0n, 1n, P - 1n, prfField("eddsa/msg", ki), BigInt(ki + 2)];
        const messages = msgs.map((m) => {
            const sig = eddsa.signPoseidon(prv, F.e(m));
            if (!eddsa.verifyPoseidon(F.e(m), sig, A)) fail("circomlibjs verifyPoseidon returned false");
            const r8 = toPoint(sig.R8);
            const s = BigInt(sig.S);
            const packed = hex(eddsa.packSignature(sig));

            const zkSig = zk.signMessage(Buffer.from(prv), m);
            if (!eqPoint(r8, zkSig.R8) || s !== zkSig.S) fail(`signature differs for key ${hex(prv)} msg ${m}`);
            if (!zk.verifySignature(m, zkSig, zkPub)) fail("zk-kit verifySignature returned false");
            if (!zk.verifySignature(m, { R8: r8, S: s }, pub)) fail("zk-kit rejects circomlibjs signature");
            if (hex(zk.packSignature(zkSig)) !== packed) fail("packed signatures differ");
            const un = eddsa.unpackSignature(Buffer.from(packed, "hex"));
            if (!eqPoint(toPoint(un.R8), r8) || BigInt(un.S) !== s) fail("unpackSignature round trip");

            return { msg: dec(m), signature: { r8: decPoint(r8), s: dec(s) }, packed_signature_hex: packed };
        });
        keys.push({
            private_key_hex: hex(prv),
            secret_scalar: dec(secretScalar),
            public_key: decPoint(pub),
            packed_public_key_hex: packHex(pub),
            messages,
        });

        // Signatures that must be rejected (first three keys only, to keep the file small).
        if (ki < 3) {
            const m = messages[3];
            const msg = BigInt(m.msg);
            const r8 = m.signature.r8.map(BigInt);
            const s = BigInt(m.signature.s);
            const other = toPoint(eddsa.prv2pub(privateKeys[ki + 1]));
            const bad = [
                ["wrong message", msg + 1n, r8, s, pub],
                ["s + 1", msg, r8, (s + 1n) % SUB, pub],
                // s + subOrder satisfies the verification equation; only the range check rejects it
                ["s + sub_order (non-canonical s)", msg, r8, s + SUB, pub],
                ["wrong public key", msg, r8, s, other],
                ["r8 negated", msg, [(P - r8[0]) % P, r8[1]], s, pub],
            ];
            for (const [reason, bm, br8, bs, bpub] of bad) {
                const okCirc = eddsa.verifyPoseidon(F.e(bm), { R8: fromPoint(br8), S: bs }, fromPoint(bpub));
                const okZk = zk.verifySignature(bm, { R8: br8, S: bs }, bpub);
                if (okCirc || okZk) fail(`invalid case "${reason}" was accepted`);
                invalid.push({
                    reason,
                    public_key: decPoint(bpub),
                    msg: dec(bm),
                    signature: { r8: decPoint(br8), s: dec(bs) },
                    valid: false,
                });
            }
        }
    });
    return { keys, invalid };
}

// ---------------------------------------------------------------- blake512

function genBlake512() {
    const inputs = [
        Buffer.alloc(0),
        Buffer.from([0x00]),
        Buffer.from("abc", "utf8"),
        Buffer.alloc(32, 0x00),
        prfBytes("blake512/input", 0), // 32 bytes
        Buffer.concat([prfBytes("blake512/input", 1), prfBytes("blake512/input", 2)]), // 64 bytes
    ];
    // lengths around the 128-byte block and the 111/112-byte padding boundary
    for (const len of [111, 112, 127, 128, 129, 200]) {
        const b = Buffer.alloc(len);
        for (let i = 0; i < len; i++) b[i] = (i * 7 + len) & 0xff;
        inputs.push(b);
    }
    const out = inputs.map((inp) => {
        const d = hex(createBlakeHash("blake512").update(inp).digest());
        const dJs = hex(createBlakeHashJs("blake512").update(inp).digest());
        if (d !== dJs) fail(`blake-hash native and JS disagree on ${hex(inp)}`);
        return { input_hex: hex(inp), digest_hex: d };
    });
    // published BLAKE-512 test vector (one-block message 0x00, from the SHA-3 submission)
    const known = "97961587f6d970faba6d2478045de6d1fabd09b61ae50932054d52bc29d31be4ff9102b9f69e2bbdb83be13d4b9c06091e5fa0b48bd081b634058be0ec49beb3";
    if (out[1].digest_hex !== known) fail("blake512(0x00) differs from the published test vector");
    return out;
}

// ---------------------------------------------------------------- assemble

const { keys, invalid } = genEddsa();

const vectors = {
    meta: {
        description: "Reference vectors from outside implementations for zkcredits' Poseidon (circomlib parameters), BabyJubJub and EdDSA-Poseidon. Field elements and scalars are decimal strings; bytes are lowercase hex without 0x.",
        field_modulus: dec(P),
        packages: {
            "circomlibjs": pkgVersion("circomlibjs"),
            "@zk-kit/eddsa-poseidon": pkgVersion("@zk-kit/eddsa-poseidon"),
            "@zk-kit/baby-jubjub": pkgVersion("@zk-kit/baby-jubjub"),
            "poseidon-lite": pkgVersion("poseidon-lite"),
            "blake-hash": pkgVersion("blake-hash"),
            "ffjavascript": pkgVersion("ffjavascript"),
        },
        regenerate: "cd vectors && npm ci && npm run generate (npm run check verifies the committed file)",
    },
    poseidon: genPoseidon(),
    babyjub: genBabyjub(),
    eddsa: keys,
    eddsa_invalid: invalid,
    zk_kit_agrees: true, // genEddsa throws before this point on any disagreement
    blake512: genBlake512(),
};

const text = JSON.stringify(vectors, null, 2) + "\n";

if (process.argv.includes("--check")) {
    let committed;
    try {
        committed = readFileSync(OUT, "utf8");
    } catch (e) {
        console.error(`check FAILED: cannot read ${OUT} (${e.code}); run \`npm run generate\``);
        process.exit(1);
    }
    if (committed !== text) {
        const a = committed.split("\n");
        const b = text.split("\n");
        let i = 0;
        while (i < a.length && i < b.length && a[i] === b[i]) i++;
        console.error(`check FAILED: circomlib.json differs from freshly generated vectors at line ${i + 1}`);
        console.error(`  committed: ${a[i] === undefined ? "<end of file>" : a[i]}`);
        console.error(`  generated: ${b[i] === undefined ? "<end of file>" : b[i]}`);
        console.error("Run `npm run generate` and review the diff (did a package version change?).");
        process.exit(1);
    }
    console.log(`check ok: circomlib.json matches (${text.length} bytes)`);
} else {
    writeFileSync(OUT, text);
    console.log(`wrote ${OUT} (${text.length} bytes)`);
}
process.exit(0);
