//! The trusted setup with the ecosystem's own tools (`docs/CEREMONY.md`): our circuits
//! exported as `.r1cs`, a phase 2 with two contributors run by snarkjs (pinned in
//! `ceremony/package.json`) over a small locally made `.ptau`, the final keys imported
//! by `zkcredits setup import-zkey`; then real request and close proofs that our
//! verifier accepts, that `snarkjs groth16 verify` accepts with the verifying key it
//! exports, and that the regenerated `CloseVerifier.sol` accepts on anvil.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ark_bn254::{Bn254, Fq, Fr, G1Affine, G2Affine};
use ark_ff::{PrimeField, UniformRand};
use ark_groth16::{Proof, VerifyingKey};
use serde_json::{Value, json};
use zkcredits_chain::alloy::network::TransactionBuilder;
use zkcredits_chain::alloy::primitives::{Bytes, U256};
use zkcredits_chain::alloy::providers::Provider;
use zkcredits_chain::alloy::rpc::types::TransactionRequest;
use zkcredits_chain::anvil::{AnvilProcess, contracts_dir, dev_signer};
use zkcredits_chain::bindings::CloseVerifier;
use zkcredits_circuits::keys::{self, CircuitKeys};
use zkcredits_circuits::prover::{CloseProver, RequestProver};
use zkcredits_circuits::sample::SampleNote;
use zkcredits_circuits::solidity::proof_words;
use zkcredits_circuits::verifier::Verifier;
use zkcredits_protocol::credits::Credits;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn zkcredits(args: &[&str], keys: &Path) -> Output {
    common::run_echoed(
        Command::new(env!("CARGO_BIN_EXE_zkcredits"))
            .env("ZKCREDITS_KEYS", keys)
            .env("ZKCREDITS_HOME", keys.join("home")),
        args,
    )
}

/// Runs snarkjs (from `npm ci` in ceremony/) and returns its output; fails the test
/// when it fails.
fn snarkjs(args: &[&str]) -> String {
    let bin = repo().join("ceremony/node_modules/snarkjs/cli.js");
    assert!(
        bin.exists(),
        "snarkjs is not installed: run `npm ci` in ceremony/ (scripts/test.sh does)"
    );
    let out = Command::new("node")
        .arg(&bin)
        .args(args)
        .output()
        .expect("node runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "snarkjs {} failed:\n{text}",
        args.join(" ")
    );
    text
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Our proof and public inputs in snarkjs' JSON.
fn snarkjs_proof(proof: &Proof<Bn254>) -> Value {
    let fq = |x: &Fq| x.into_bigint().to_string();
    json!({
        "pi_a": [fq(&proof.a.x), fq(&proof.a.y), "1"],
        "pi_b": [
            [fq(&proof.b.x.c0), fq(&proof.b.x.c1)],
            [fq(&proof.b.y.c0), fq(&proof.b.y.c1)],
            ["1", "0"]
        ],
        "pi_c": [fq(&proof.c.x), fq(&proof.c.y), "1"],
        "protocol": "groth16",
        "curve": "bn128"
    })
}

fn public_json(inputs: &[Fr]) -> Value {
    Value::Array(
        inputs
            .iter()
            .map(|x| Value::String(x.into_bigint().to_string()))
            .collect(),
    )
}

/// snarkjs' exported verifying key equals ours, point by point.
fn assert_same_vk(ours: &VerifyingKey<Bn254>, theirs: &Value) {
    let fq = |x: &Fq| x.into_bigint().to_string();
    let g1 = |p: &G1Affine| json!([fq(&p.x), fq(&p.y), "1"]);
    let g2 = |p: &G2Affine| {
        json!([
            [fq(&p.x.c0), fq(&p.x.c1)],
            [fq(&p.y.c0), fq(&p.y.c1)],
            ["1", "0"]
        ])
    };
    assert_eq!(theirs["vk_alpha_1"], g1(&ours.alpha_g1));
    assert_eq!(theirs["vk_beta_2"], g2(&ours.beta_g2));
    assert_eq!(theirs["vk_gamma_2"], g2(&ours.gamma_g2));
    assert_eq!(theirs["vk_delta_2"], g2(&ours.delta_g2));
    let ic: Vec<Value> = ours.gamma_abc_g1.iter().map(g1).collect();
    assert_eq!(theirs["IC"], Value::Array(ic));
}

/// snarkjs accepts our proof with the verifying key it exported from the zkey.
fn snarkjs_verifies(dir: &Path, name: &str, proof: &Proof<Bn254>, inputs: &[Fr]) -> bool {
    let proof_file = dir.join(format!("{name}_proof.json"));
    let public_file = dir.join(format!("{name}_public.json"));
    std::fs::write(&proof_file, snarkjs_proof(proof).to_string()).expect("write proof");
    std::fs::write(&public_file, public_json(inputs).to_string()).expect("write public");
    let out = Command::new("node")
        .arg(repo().join("ceremony/node_modules/snarkjs/cli.js"))
        .args(["groth16", "verify"])
        .arg(dir.join(format!("{name}_vk.json")))
        .arg(&public_file)
        .arg(&proof_file)
        .output()
        .expect("node runs");
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success() && text.contains("OK")
}

/// snarkjs' phase 2 of one circuit: setup, two contributions, the verifying key
/// exported. Returns the contribution hashes each `zkey contribute` printed (what a
/// contributor publishes).
///
/// `zkey verify` is not run here: it re-checks snarkjs' own transcript (about 70 s of
/// CPU per circuit on 2 cores), which the coordinator runs (docs/CEREMONY.md); what
/// this test is about is that our export is what snarkjs set up and that its keys,
/// imported, prove and verify here, in snarkjs and on chain.
fn phase2(dir: &Path, name: &str, ptau_file: &Path) -> Vec<String> {
    let r1cs = dir.join(format!("{name}.r1cs"));
    let zkey = |i: u32| dir.join(format!("{name}_{i:04}.zkey"));
    snarkjs(&[
        "groth16",
        "setup",
        path(&r1cs),
        path(ptau_file),
        path(&zkey(0)),
    ]);
    let alice = snarkjs(&[
        "zkey",
        "contribute",
        path(&zkey(0)),
        path(&zkey(1)),
        "--name=alice",
        "-e=alice's keyboard mashing",
    ]);
    let bob = snarkjs(&[
        "zkey",
        "contribute",
        path(&zkey(1)),
        path(&zkey(2)),
        "--name=bob",
        "-e=bob's dice rolls",
    ]);
    snarkjs(&[
        "zkey",
        "export",
        "verificationkey",
        path(&zkey(2)),
        path(&dir.join(format!("{name}_vk.json"))),
    ]);
    [alice, bob]
        .iter()
        .map(|out| printed_hash(out, "Contribution Hash:"))
        .collect()
}

/// The hash snarkjs prints under the line `title`, as four lines of four 8-digit hex
/// groups, joined.
fn printed_hash(output: &str, title: &str) -> String {
    let plain: String = {
        // Drop the terminal colour codes.
        let mut out = String::new();
        let mut chars = output.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for d in chars.by_ref() {
                    if d == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    };
    let lines: Vec<&str> = plain.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(title))
        .unwrap_or_else(|| panic!("snarkjs printed no {title:?}:\n{plain}"));
    let hash: String = lines[at + 1..at + 5]
        .iter()
        .flat_map(|l| l.split_whitespace())
        .collect();
    assert_eq!(hash.len(), 128, "a 64-byte hash: {hash}");
    hash
}

#[test]
fn a_two_contributor_snarkjs_ceremony_gives_keys_that_prove_verify_and_close_on_chain() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let key_dir = dir.join("keys");

    // The circuits go out as .r1cs, and snarkjs reads them as we wrote them.
    let out = zkcredits(&["setup", "export-r1cs", "--out", path(dir)], &key_dir);
    assert!(out.status.success());
    for name in ["request", "close"] {
        let shape = match name {
            "request" => zkcredits_circuits::statement::CircuitShape::extract(),
            _ => zkcredits_circuits::statement::CircuitShape::extract_for::<
                zkcredits_circuits::close::CloseCircuit,
            >(),
        }
        .expect("shape");
        let info = snarkjs(&["r1cs", "info", path(&dir.join(format!("{name}.r1cs")))]);
        assert!(
            info.contains(&format!("# of Constraints: {}", shape.num_constraints)),
            "{info}"
        );
        assert!(
            info.contains(&format!("# of Public Inputs: {}", shape.num_instance - 1)),
            "{info}"
        );
    }

    // Phase 1 (a known tau; see ptau.rs), then phase 2 by snarkjs with two contributors.
    let mut rng = rand::thread_rng();
    let ptau_file = dir.join("pot14.ptau");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&ptau_file).expect("ptau"));
    zkcredits_circuits::testing::ptau::write_prepared_ptau(
        &mut file,
        14,
        Fr::rand(&mut rng),
        Fr::rand(&mut rng),
        Fr::rand(&mut rng),
    )
    .expect("write ptau");
    drop(file);
    // The two circuits' ceremonies run side by side (snarkjs is mostly single-threaded).
    let printed: Vec<Vec<String>> = std::thread::scope(|scope| {
        let ptau_file = &ptau_file;
        let handles: Vec<_> = ["request", "close"]
            .map(|name| scope.spawn(move || phase2(dir, name, ptau_file)))
            .into_iter()
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("phase 2"))
            .collect()
    });

    // The import checks the keys against the circuits and pins the transcript.
    let out = zkcredits(
        &[
            "setup",
            "import-zkey",
            "--request",
            path(&dir.join("request_0002.zkey")),
            "--close",
            path(&dir.join("close_0002.zkey")),
        ],
        &key_dir,
    );
    assert!(out.status.success());
    let request_keys: CircuitKeys = keys::load_proving_key(&key_dir).expect("request keys");
    let close_keys: CircuitKeys = keys::load_close_proving_key(&key_dir).expect("close keys");
    let pairs = [(&request_keys, "request"), (&close_keys, "close")];
    for ((k, name), printed) in pairs.into_iter().zip(&printed) {
        assert!(
            !k.is_development(),
            "ceremony keys are not development keys"
        );
        let ceremony = k
            .manifest
            .ceremony
            .as_ref()
            .expect("the transcript is pinned");
        let names: Vec<_> = ceremony
            .contributions
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["alice", "bob"]);
        // The hashes pinned are the ones snarkjs prints, which contributors publish.
        let pinned: Vec<_> = ceremony
            .contributions
            .iter()
            .map(|c| c.hash.clone())
            .collect();
        assert_eq!(&pinned, printed, "{name}: contribution hashes");
        let vk_json: Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("{name}_vk.json"))).expect("vk json"),
        )
        .expect("vk parses");
        assert_same_vk(k.verifying_key(), &vk_json);
    }

    // A real request proof: our verifier (single and batch) and snarkjs accept it.
    let note = SampleNote::new(6, Credits::new(1_000_000), 4, Credits::new(250));
    let prover = RequestProver::new(request_keys.clone()).expect("request prover");
    let circuit = note.circuit().expect("circuit");
    let inputs = circuit.public.to_field_elements();
    let proof = prover.prove(circuit, &mut rng).expect("prove");
    let verifier = Verifier::new(request_keys.verifying_key());
    assert!(verifier.verify(&proof, &inputs));
    assert!(verifier.verify_batch(&[(&proof, inputs.as_slice())], &mut rng));
    assert!(snarkjs_verifies(dir, "request", &proof, &inputs));
    let mut wrong = inputs.clone();
    wrong[1] += Fr::from(1u64);
    assert!(!snarkjs_verifies(dir, "request", &proof, &wrong));

    // The per-ticket path finishes the same kind of proof with the ceremony's key.
    let ticket = prover
        .precompute_ticket(
            &prover
                .precompute(note.circuit().expect("circuit"))
                .expect("pre"),
            note.circuit().expect("circuit"),
            &mut rng,
        )
        .expect("ticket precomputation");
    let finished = prover
        .finish_ticket(ticket, note.inputs(&note.path()))
        .expect("finish");
    let finished_inputs = finished.public.to_field_elements();
    assert!(verifier.verify(&finished.proof, &finished_inputs));
    assert!(snarkjs_verifies(
        dir,
        "request",
        &finished.proof,
        &finished_inputs
    ));

    // A real close proof, and the regenerated CloseVerifier.sol accepts it on anvil.
    let close_prover = CloseProver::new(close_keys.clone()).expect("close prover");
    let close = note
        .close_circuit(false, Fr::from(0x5eed_u64))
        .expect("close circuit");
    let close_inputs = close.public.to_field_elements();
    let close_proof = close_prover.prove(close, &mut rng).expect("close proof");
    assert!(Verifier::new(close_keys.verifying_key()).verify(&close_proof, &close_inputs));
    assert!(snarkjs_verifies(dir, "close", &close_proof, &close_inputs));

    let compiled = Command::new("node")
        .arg(contracts_dir().join("verifier.mjs"))
        .arg(&key_dir)
        .output()
        .expect("node runs");
    assert!(
        compiled.status.success(),
        "{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let artifact: Value = serde_json::from_slice(
        &std::fs::read(key_dir.join("CloseVerifier.json")).expect("artifact"),
    )
    .expect("artifact parses");
    let dev_artifact: Value = serde_json::from_slice(
        &std::fs::read(contracts_dir().join("artifacts/CloseVerifier.json")).expect("dev"),
    )
    .expect("dev artifact parses");
    assert_ne!(
        artifact["deployedBytecode"], dev_artifact["deployedBytecode"],
        "the ceremony's verifier carries the ceremony's key"
    );
    let bytecode: Bytes = artifact["bytecode"]
        .as_str()
        .expect("bytecode")
        .parse()
        .expect("hex");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let anvil = AnvilProcess::start_free().await.expect("anvil");
        let provider =
            zkcredits_chain::rpc::wallet_provider(anvil.url(), dev_signer(0)).expect("provider");
        let receipt = provider
            .send_transaction(TransactionRequest::default().with_deploy_code(bytecode))
            .await
            .expect("deploy")
            .get_receipt()
            .await
            .expect("receipt");
        let address = receipt.contract_address.expect("contract address");
        let contract = CloseVerifier::new(address, provider);
        let words = proof_words(&close_proof).map(U256::from_be_bytes);
        let as_words = |inputs: &[Fr]| -> [U256; 14] {
            let v: Vec<U256> = inputs
                .iter()
                .map(|x| U256::from_limbs(x.into_bigint().0))
                .collect();
            v.try_into().expect("14 public inputs")
        };
        contract
            .verifyProof(words, as_words(&close_inputs))
            .call()
            .await
            .expect("the ceremony's CloseVerifier accepts the close proof");
        let mut tampered = close_inputs.clone();
        tampered[3] += Fr::from(1u64);
        assert!(
            contract
                .verifyProof(words, as_words(&tampered))
                .call()
                .await
                .is_err(),
            "a proof for another payout is refused on chain"
        );
    });
}

#[test]
fn development_keys_are_refused_without_dev_and_accepted_with_it() {
    let dev_keys = common::keys_dir();
    let home = tempfile::tempdir().expect("home");
    let run = |dev: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_zkcredits"));
        if dev {
            cmd.arg("--dev");
        }
        cmd.args([
            "proxy",
            "--gateway",
            "http://127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("ZKCREDITS_KEYS", &dev_keys)
        .env("ZKCREDITS_HOME", home.path())
        .env("ZKCREDITS_PASSPHRASE", "unused")
        .output()
        .expect("zkcredits runs")
    };
    let refused = run(false);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("refuses the development keys") && stderr.contains("--dev"),
        "{stderr}"
    );
    // With --dev the keys pass and the proxy fails later, for want of a deployment.
    let accepted = run(true);
    let stderr = String::from_utf8_lossy(&accepted.stderr);
    assert!(stderr.contains("WARNING: --dev"), "{stderr}");
    assert!(!stderr.contains("refuses the development keys"), "{stderr}");
}
