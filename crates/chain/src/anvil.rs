//! A local anvil node: the binary the npm package `@foundry-rs/anvil` (pinned in
//! `contracts/package.json`) ships, started on a port the OS picks (or a given one),
//! killed when its handle is dropped.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider};
use alloy::signers::local::PrivateKeySigner;

use crate::{Error, Result, rpc};

/// Environment variable naming an anvil binary to use instead of the npm one.
pub const ANVIL_ENV: &str = "ZKCREDITS_ANVIL";

/// How long anvil may take to start listening and answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The private keys of anvil's first ten dev accounts (its default mnemonic "test test ...
/// junk"). Public knowledge: for local chains only.
const DEV_KEYS: [&str; 10] = [
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "dbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
];

/// Number of dev accounts with known keys.
pub const DEV_ACCOUNTS: usize = DEV_KEYS.len();

/// The signer of anvil's dev account `i` (0..10).
///
/// # Panics
/// If `i >= DEV_ACCOUNTS`.
pub fn dev_signer(i: usize) -> PrivateKeySigner {
    // Cannot fail for i < 10: the keys above are valid secp256k1 scalars.
    DEV_KEYS[i].parse().expect("anvil dev key parses")
}

/// The address of anvil's dev account `i`.
pub fn dev_address(i: usize) -> Address {
    dev_signer(i).address()
}

/// Where the anvil binary is: `$ZKCREDITS_ANVIL`, else the platform package that
/// `@foundry-rs/anvil` installs under `contracts/node_modules` (run `npm ci` in
/// `contracts/`), else `anvil` on the PATH.
pub fn anvil_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(ANVIL_ENV) {
        return Ok(PathBuf::from(p));
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let os = match std::env::consts::OS {
        "windows" => "win32",
        other => other,
    };
    let exe = if os == "win32" { "anvil.exe" } else { "anvil" };
    let npm = contracts_dir()
        .join("node_modules/@foundry-rs")
        .join(format!("anvil-{os}-{arch}"))
        .join("bin")
        .join(exe);
    if npm.is_file() {
        return Ok(npm);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(exe);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(Error::Anvil(format!(
        "no anvil binary: run `npm ci` in {} (it installs @foundry-rs/anvil), or set {ANVIL_ENV}",
        contracts_dir().display()
    )))
}

/// The repository's `contracts/` directory (as seen when this crate was built).
pub fn contracts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts")
}

/// A running anvil, killed when dropped.
#[derive(Debug)]
pub struct AnvilProcess {
    child: Child,
    port: u16,
    url: String,
    chain_id: u64,
}

impl AnvilProcess {
    /// Starts anvil on 127.0.0.1, on `port` or (with 0) a free port the OS picks, with
    /// `extra_args`, and waits until it answers JSON-RPC.
    pub async fn start(port: u16, extra_args: &[&str]) -> Result<Self> {
        let bin = anvil_binary()?;
        let mut child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::AnvilSpawn {
                bin: bin.clone(),
                source,
            })?;
        let (stdout, stderr) = match (child.stdout.take(), child.stderr.take()) {
            (Some(o), Some(e)) => (o, e),
            _ => return Err(Error::Anvil("no pipes to anvil".into())),
        };
        // anvil prints "Listening on 127.0.0.1:PORT" once it accepts connections; after
        // that its output (a line per transaction) is drained so the pipe never fills.
        let (tx, rx) = mpsc::channel::<u16>();
        let early = Arc::new(Mutex::new(String::new()));
        let early_out = Arc::clone(&early);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let mut sent = false;
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if !sent {
                    if let Some(p) = line
                        .trim()
                        .strip_prefix("Listening on ")
                        .and_then(|a| a.rsplit(':').next())
                        .and_then(|p| p.parse().ok())
                    {
                        sent = tx.send(p).is_ok();
                    } else if let Ok(mut s) = early_out.lock()
                        && s.len() < 16_384
                    {
                        s.push_str(&line);
                    }
                }
                line.clear();
            }
        });
        let errors = Arc::new(Mutex::new(String::new()));
        let errors_in = Arc::clone(&errors);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut stderr = stderr;
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = errors_in.lock()
                    && s.len() < 16_384
                {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        let describe = |what: &str| {
            let out = early.lock().map(|s| s.clone()).unwrap_or_default();
            let err = errors.lock().map(|s| s.clone()).unwrap_or_default();
            Error::Anvil(format!("{what}\nstderr: {err}\nstdout: {out}"))
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let port = loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(p) => break p,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(describe(&format!("exited with {status} before listening")));
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(describe("did not start listening in time"));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(describe("closed its output before listening"));
                }
            }
        };
        let url = format!("http://127.0.0.1:{port}");
        let mut me = Self {
            child,
            port,
            url,
            chain_id: 0,
        };
        let provider = rpc::read_provider(&me.url)?;
        me.chain_id = loop {
            match provider.get_chain_id().await {
                Ok(id) => break id,
                Err(source) if Instant::now() > deadline => {
                    return Err(Error::AnvilUnreachable {
                        url: me.url.clone(),
                        source,
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        tracing::debug!(url = %me.url, pid = me.child.id(), "anvil started");
        Ok(me)
    }

    /// Starts anvil on a free port with default settings.
    pub async fn start_free() -> Result<Self> {
        Self::start(0, &[]).await
    }

    /// The JSON-RPC URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port anvil listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The chain id anvil reports.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A read-only provider for this node.
    pub fn provider(&self) -> Result<DynProvider> {
        rpc::read_provider(&self.url)
    }

    /// Moves the chain's clock forward by `seconds` (`evm_increaseTime`); the next mined
    /// block carries the new time.
    pub async fn increase_time(&self, seconds: u64) -> Result<()> {
        let p = self.provider()?;
        let _: serde_json::Value = p.raw_request("evm_increaseTime".into(), (seconds,)).await?;
        Ok(())
    }

    /// Mines one empty block (`evm_mine`).
    pub async fn mine(&self) -> Result<()> {
        let p = self.provider()?;
        let _: serde_json::Value = p.raw_request("evm_mine".into(), ()).await?;
        Ok(())
    }

    /// Takes a snapshot of the chain (`evm_snapshot`); [`AnvilProcess::revert`] returns
    /// to it, which is how tests make a reorg: blocks after the snapshot are replaced by
    /// whatever is mined next.
    pub async fn snapshot(&self) -> Result<alloy::primitives::U256> {
        let p = self.provider()?;
        Ok(p.raw_request("evm_snapshot".into(), ()).await?)
    }

    /// Returns the chain to snapshot `id` (`evm_revert`).
    pub async fn revert(&self, id: alloy::primitives::U256) -> Result<()> {
        let p = self.provider()?;
        let reverted: bool = p.raw_request("evm_revert".into(), (id,)).await?;
        if reverted {
            Ok(())
        } else {
            Err(Error::Anvil(format!("anvil has no snapshot {id}")))
        }
    }

    /// Sets a storage slot of a contract (`anvil_setStorageAt`), for tests that poke state.
    pub async fn set_storage(
        &self,
        address: Address,
        slot: alloy::primitives::U256,
        value: alloy::primitives::B256,
    ) -> Result<()> {
        let p = self.provider()?;
        let _: serde_json::Value = p
            .raw_request("anvil_setStorageAt".into(), (address, slot, value))
            .await?;
        Ok(())
    }
}

impl Drop for AnvilProcess {
    fn drop(&mut self) {
        // Best effort: the process may have exited already.
        let _ = self.child.kill();
        let _ = self.child.wait();
        tracing::debug!(url = %self.url, "anvil stopped");
    }
}
