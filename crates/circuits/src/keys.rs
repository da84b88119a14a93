//! Groth16 keys: a seeded development setup, key files written once and loaded fast.
//!
//! The proving key is stored uncompressed. Setup writes it, reads it back with full
//! curve and subgroup checks, and pins its SHA-256 in `keys.json`; every later load
//! checks only that hash and then copies the points in without curve checks. That turns
//! a 1.5 s compressed, checked load into a few milliseconds, and a damaged or swapped
//! file is still refused (its hash no longer matches).
//!
//! **The development setup is not for production**: whoever knows the seed knows the
//! toxic waste and can forge proofs. A production deployment uses keys from a
//! multi-party ceremony, loaded the same way.

use std::path::{Path, PathBuf};

use ark_bn254::Bn254;
use ark_groth16::{Groth16, ProvingKey, VerifyingKey};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize, Compress, Validate};
use ark_std::rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ceremony::CeremonyRecord;
use crate::close::CloseCircuit;
use crate::error::CircuitError;
use crate::qap::SnarkjsReduction;
use crate::request::RequestCircuit;
use crate::statement::{Statement, StatementKind};

/// The circuit identifier written into the manifest; bump it whenever the statement
/// changes, so old keys are refused instead of producing proofs that never verify.
pub const REQUEST_CIRCUIT_ID: &str = StatementKind::Request.circuit_id();
/// The close circuit's identifier (`docs/PROTOCOL.md §6`).
pub const CLOSE_CIRCUIT_ID: &str = StatementKind::Close.circuit_id();

/// The request keys' manifest file name inside a key directory.
pub const MANIFEST: &str = StatementKind::Request.manifest();
/// The close keys' manifest file name inside the same directory.
pub const CLOSE_MANIFEST: &str = StatementKind::Close.manifest();

/// The seed of the close circuit's development setup, derived from the setup seed so that
/// one seed makes both key sets and the request keys stay what they were before the close
/// circuit existed.
pub fn close_seed(seed: [u8; 32]) -> [u8; 32] {
    Sha256::new_with_prefix(b"zkcredits/close-setup/v1")
        .chain_update(seed)
        .finalize()
        .into()
}

/// The seed of the development setup everybody can reproduce (and therefore forge with).
pub const DEV_SEED: [u8; 32] = *b"zkcredits dev setup: NOT SECURE!";

/// What `keys.json` records about a key set.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyManifest {
    /// Which circuit the keys are for.
    pub circuit: String,
    /// The circuit's constraint count at setup.
    pub constraints: usize,
    /// SHA-256 of the circuit's R1CS (`CircuitShape::digest_hex`).
    pub circuit_digest: String,
    /// The QAP reduction the proving key is for ([`QAP`]); keys for another are refused.
    #[serde(default)]
    pub qap: String,
    /// How the keys were made.
    pub setup: String,
    /// A warning for people reading the file.
    pub warning: String,
    /// The ceremony the keys came from; `None` for development keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceremony: Option<CeremonyRecord>,
    /// The proving key file and its SHA-256.
    pub proving_key: KeyFileEntry,
    /// The verifying key file and its SHA-256.
    pub verifying_key: KeyFileEntry,
}

/// The QAP reduction our prover and keys use: snarkjs' (`qap.rs`), so that keys from a
/// snarkjs ceremony and development keys prove alike.
pub const QAP: &str = "snarkjs";

impl KeyManifest {
    /// Whether these are development keys: made from a seed, or (whatever the manifest
    /// says) with the verifying key of the public development seed.
    pub fn is_development(&self, vk: &VerifyingKey<Bn254>) -> bool {
        self.ceremony.is_none() || is_development_key(vk)
    }
}

/// SHA-256 (hex) of the verifying keys the public [`DEV_SEED`] makes, request then close:
/// whoever knows the seed can forge proofs for them, so the gateway, the client and a
/// deployment refuse them unless started with `--dev`. A test regenerates them; a
/// circuit change changes them.
pub const DEV_VERIFYING_KEY_HASHES: [&str; 2] = [
    "cae6f15df097df515b60e231fbbe7182b78560d38d9ad14747fba8f98e0dda49",
    "4c5b9ab9e35ed935db9260b1bb028acf8557eb2d57fa23d711db814632531b84",
];

/// Whether `vk` is one of the development verifying keys ([`DEV_VERIFYING_KEY_HASHES`]).
pub fn is_development_key(vk: &VerifyingKey<Bn254>) -> bool {
    let hash = hex::encode(verifying_key_hash(vk));
    DEV_VERIFYING_KEY_HASHES.contains(&hash.as_str())
}

/// A key file and its pinned hash.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyFileEntry {
    /// File name relative to the key directory.
    pub file: String,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
}

/// The request circuit's keys.
pub type RequestKeys = CircuitKeys;
/// The close circuit's keys.
pub type CloseKeys = CircuitKeys;

/// A circuit's keys: the proving key and the manifest it was loaded with.
#[derive(Clone, Debug)]
pub struct CircuitKeys {
    /// The proving key.
    pub proving_key: ProvingKey<Bn254>,
    /// The manifest they were loaded with.
    pub manifest: KeyManifest,
}

impl CircuitKeys {
    /// The verifying key (inside the proving key).
    pub fn verifying_key(&self) -> &VerifyingKey<Bn254> {
        &self.proving_key.vk
    }

    /// Whether these are development keys ([`KeyManifest::is_development`]).
    pub fn is_development(&self) -> bool {
        self.manifest.is_development(&self.proving_key.vk)
    }
}

/// Steps of a setup, reported to a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupStep {
    /// Counting constraints.
    Synthesize,
    /// Generating the keys (the long part).
    Generate,
    /// Writing the files.
    Write,
    /// Reading the proving key back with full checks.
    Check,
}

/// Generates the request keys from `seed` and the close keys from [`close_seed`]`(seed)`
/// (development only), writes them to `dir`, and checks them once. Reports each step to
/// `progress`. Returns the request keys' manifest.
pub fn setup_dev(
    dir: &Path,
    seed: [u8; 32],
    mut progress: impl FnMut(SetupStep),
) -> Result<KeyManifest, CircuitError> {
    let manifest = setup_circuit(StatementKind::Request, dir, seed, &mut progress)?;
    setup_circuit(StatementKind::Close, dir, close_seed(seed), &mut progress)?;
    Ok(manifest)
}

/// Generates the keys of statement `kind` from `seed` (development only), writes them
/// to `dir` under its file names, and checks them once.
pub fn setup_circuit(
    kind: StatementKind,
    dir: &Path,
    seed: [u8; 32],
    progress: &mut dyn FnMut(SetupStep),
) -> Result<KeyManifest, CircuitError> {
    progress(SetupStep::Synthesize);
    // Synthesising first reports a circuit that cannot be built before the long step.
    kind.shape()?;
    progress(SetupStep::Generate);
    let mut rng = ChaCha20Rng::from_seed(seed);
    let pk = match kind {
        StatementKind::Request => generate(RequestCircuit::blank(), &mut rng)?,
        StatementKind::Close => generate(CloseCircuit::blank(), &mut rng)?,
    };
    write_keys(kind, dir, &pk, KeyOrigin::development(seed), progress)
}

/// Groth16's setup for `blank`'s shape with snarkjs' QAP reduction.
fn generate<C: Statement>(
    blank: C,
    rng: &mut ChaCha20Rng,
) -> Result<ProvingKey<Bn254>, CircuitError> {
    Ok(Groth16::<Bn254, SnarkjsReduction>::generate_random_parameters_with_reduction(blank, rng)?)
}

/// Where a key set came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The seeded development setup: whoever knows the seed can forge proofs.
    Development {
        /// The seed.
        seed: [u8; 32],
    },
    /// A snarkjs phase 2 ceremony, with its transcript.
    Ceremony(CeremonyRecord),
}

impl KeyOrigin {
    fn development(seed: [u8; 32]) -> Self {
        Self::Development { seed }
    }
}

/// Writes statement `kind`'s proving and verifying key files and its manifest into
/// `dir`, after reading the proving key back with full curve and subgroup checks.
/// Reports the write and check steps to `progress`.
pub fn write_keys(
    kind: StatementKind,
    dir: &Path,
    pk: &ProvingKey<Bn254>,
    origin: KeyOrigin,
    progress: &mut dyn FnMut(SetupStep),
) -> Result<KeyManifest, CircuitError> {
    let (pk_file, vk_file, manifest_file) = (
        kind.proving_key_file(),
        kind.verifying_key_file(),
        kind.manifest(),
    );
    let shape = kind.shape()?;
    progress(SetupStep::Write);
    std::fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
    let pk_bytes = serialize(pk, Compress::No);
    let vk_bytes = serialize(&pk.vk, Compress::Yes);
    progress(SetupStep::Check);
    let checked =
        ProvingKey::<Bn254>::deserialize_with_mode(&pk_bytes[..], Compress::No, Validate::Yes)
            .map_err(|e| key_error(&dir.join(pk_file), format!("fails its curve checks: {e}")))?;
    if checked != *pk {
        return Err(key_error(
            &dir.join(pk_file),
            "does not read back identically".into(),
        ));
    }
    write_atomic(&dir.join(pk_file), &pk_bytes)?;
    write_atomic(&dir.join(vk_file), &vk_bytes)?;
    let (setup, warning, ceremony) = match origin {
        KeyOrigin::Development { seed } => (
            format!("development: seeded ChaCha20, seed {}", hex::encode(seed)),
            "NOT FOR PRODUCTION: anyone who knows the seed can forge proofs. Use keys from a multi-party ceremony (docs/CEREMONY.md).".to_string(),
            None,
        ),
        KeyOrigin::Ceremony(record) => (
            format!(
                "ceremony: {} with {} contributions",
                record.tool,
                record.contributions.len()
            ),
            "Sound only if one contributor destroyed their secret: check the transcript (docs/CEREMONY.md) before trusting these keys.".to_string(),
            Some(record),
        ),
    };
    let manifest = KeyManifest {
        circuit: kind.circuit_id().into(),
        constraints: shape.num_constraints,
        circuit_digest: shape.digest_hex(),
        qap: QAP.into(),
        setup,
        warning,
        ceremony,
        proving_key: KeyFileEntry {
            file: pk_file.into(),
            sha256: hex::encode(Sha256::digest(&pk_bytes)),
        },
        verifying_key: KeyFileEntry {
            file: vk_file.into(),
            sha256: hex::encode(Sha256::digest(&vk_bytes)),
        },
    };
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| key_error(&dir.join(manifest_file), e.to_string()))?;
    write_atomic(&dir.join(manifest_file), &json)?;
    Ok(manifest)
}

/// Reads a key directory's request manifest and checks it is for the request circuit.
pub fn read_manifest(dir: &Path) -> Result<KeyManifest, CircuitError> {
    read_manifest_for(StatementKind::Request, dir)
}

/// Reads the manifest of statement `kind`'s keys in `dir` and checks it is for `kind`.
pub fn read_manifest_for(kind: StatementKind, dir: &Path) -> Result<KeyManifest, CircuitError> {
    let path = dir.join(kind.manifest());
    let bytes = std::fs::read(&path).map_err(|source| io_error(&path, source))?;
    let manifest: KeyManifest = serde_json::from_slice(&bytes)
        .map_err(|e| key_error(&path, format!("is not a key manifest: {e}")))?;
    if manifest.circuit != kind.circuit_id() {
        return Err(key_error(
            &path,
            format!(
                "is for circuit {}, this software needs {}",
                manifest.circuit,
                kind.circuit_id()
            ),
        ));
    }
    Ok(manifest)
}

/// Loads the request proving key fast: hash check, then an unchecked copy of the points.
pub fn load_proving_key(dir: &Path) -> Result<RequestKeys, CircuitError> {
    load_keys(StatementKind::Request, dir)
}

/// Loads the close proving key fast (as [`load_proving_key`]).
pub fn load_close_proving_key(dir: &Path) -> Result<CloseKeys, CircuitError> {
    load_keys(StatementKind::Close, dir)
}

/// Loads the proving key of statement `kind` fast: hash check, then an unchecked copy.
pub fn load_keys(kind: StatementKind, dir: &Path) -> Result<CircuitKeys, CircuitError> {
    let manifest = read_manifest_for(kind, dir)?;
    let path = dir.join(&manifest.proving_key.file);
    let bytes = read_pinned(&path, &manifest.proving_key.sha256)?;
    // Unchecked is sound here: these exact bytes passed the full checks at setup.
    let proving_key =
        ProvingKey::<Bn254>::deserialize_with_mode(&bytes[..], Compress::No, Validate::No)
            .map_err(|e| key_error(&path, format!("cannot be decoded: {e}")))?;
    Ok(CircuitKeys {
        proving_key,
        manifest,
    })
}

/// Loads the request verifying key (small: compressed and fully checked).
pub fn load_verifying_key(dir: &Path) -> Result<VerifyingKey<Bn254>, CircuitError> {
    load_verifying_key_for(StatementKind::Request, dir)
}

/// Loads the close verifying key (as [`load_verifying_key`]).
pub fn load_close_verifying_key(dir: &Path) -> Result<VerifyingKey<Bn254>, CircuitError> {
    load_verifying_key_for(StatementKind::Close, dir)
}

/// Loads the verifying key of statement `kind`.
pub fn load_verifying_key_for(
    kind: StatementKind,
    dir: &Path,
) -> Result<VerifyingKey<Bn254>, CircuitError> {
    let manifest = read_manifest_for(kind, dir)?;
    let path = dir.join(&manifest.verifying_key.file);
    let bytes = read_pinned(&path, &manifest.verifying_key.sha256)?;
    VerifyingKey::<Bn254>::deserialize_with_mode(&bytes[..], Compress::Yes, Validate::Yes)
        .map_err(|e| key_error(&path, format!("cannot be decoded: {e}")))
}

/// SHA-256 of the verifying key's canonical compressed encoding: what the gateway
/// publishes so that clients can check they prove for the same key.
pub fn verifying_key_hash(vk: &VerifyingKey<Bn254>) -> [u8; 32] {
    Sha256::digest(serialize(vk, Compress::Yes)).into()
}

fn read_pinned(path: &Path, sha256: &str) -> Result<Vec<u8>, CircuitError> {
    let bytes = std::fs::read(path).map_err(|source| io_error(path, source))?;
    if hex::encode(Sha256::digest(&bytes)) != sha256 {
        return Err(key_error(
            path,
            "does not match the hash pinned in keys.json".into(),
        ));
    }
    Ok(bytes)
}

fn serialize<T: CanonicalSerialize>(value: &T, compress: Compress) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.serialized_size(compress));
    // Writing into a Vec cannot fail.
    value
        .serialize_with_mode(&mut out, compress)
        .expect("serialising into a Vec");
    out
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CircuitError> {
    let tmp: PathBuf = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|source| io_error(&tmp, source))?;
    std::fs::rename(&tmp, path).map_err(|source| io_error(path, source))
}

fn io_error(path: &Path, source: std::io::Error) -> CircuitError {
    CircuitError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn key_error(path: &Path, reason: String) -> CircuitError {
    CircuitError::KeyFile {
        path: path.display().to_string(),
        reason,
    }
}
