//! `zkcredits bench gateway`: paid requests per second and latency of the gateway's
//! admission path (parse, verify, store, sign, store the receipt) with a trivial
//! loopback upstream, once with SQLite and once with PostgreSQL.
//!
//! Every admitted request needs its own ticket, so its own proof: the benchmark makes
//! them beforehand (notes of a fixed tree, each note's tickets in sequence with receipts
//! signed by the test key) and keeps them in `$ZKCREDITS_HOME/bench/`, so later runs
//! start at once. The roots come from that tree (no chain is involved on the request
//! path). The load comes from a separate process (`zkcredits bench gateway-load`, run by
//! this command) so that its HTTP work is not counted inside the gateway's runtime.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use zkcredits_circuits::keys;
use zkcredits_circuits::prover::{RequestProver, to_points};
use zkcredits_circuits::request::{RequestCircuit, RequestInputs};
use zkcredits_gateway::keys::ServerKeys;
use zkcredits_gateway::upstream::flat::{FlatConfig, FlatUpstream};
use zkcredits_gateway::{GatewayBuilder, RootsSource, Settings};
use zkcredits_protocol::Fr;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::merkle::{LeanImt, Root};
use zkcredits_protocol::note::{self, WalletSeed};
use zkcredits_protocol::state::{Limits, NoteState, Receipt, receipt_message};
use zkcredits_protocol::wire::{Credential, WireFormat};

const LIMITS: Limits = Limits {
    c_max: Credits::new(1_000),
    p_max: Credits::new(5_000),
};
const DEPOSIT: Credits = Credits::new(1_000_000_000);
const EXPIRY: u64 = 1_000;
const NOTES: u64 = 16;
const PATH: &str = "/api/bench";
const KEY_ID: u32 = 1;

/// What one load run measured (the load process's last line).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LoadFigures {
    ok: usize,
    errors: usize,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct GatewayFigures {
    sqlite_rps: f64,
    sqlite_p50_ms: f64,
    sqlite_p99_ms: f64,
    postgres_rps: Option<f64>,
    postgres_p50_ms: Option<f64>,
    postgres_p99_ms: Option<f64>,
}

/// Runs the benchmark.
pub(crate) fn run(
    keys_dir: PathBuf,
    requests: usize,
    concurrency: usize,
    postgres: Option<String>,
    settings: Settings,
) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build; run `cargo run --release -- bench gateway` for real figures"
        );
    }
    super::setup::ensure_keys(&keys_dir, true)?;
    let keys = keys::load_proving_key(&keys_dir).context("loading the proving key")?;
    let vk = keys.verifying_key().clone();
    let prover = RequestProver::new(keys)?;
    let (file, root) = proofs(&prover, requests)?;
    println!(
        "{requests} paid requests, {concurrency} at a time, from a separate process; trivial loopback upstream"
    );

    let runtime = tokio::runtime::Runtime::new()?;
    let dir = tempfile::tempdir()?;
    let sqlite_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let sqlite = runtime.block_on(run_store(
        &sqlite_url,
        &vk,
        root,
        &file,
        concurrency,
        &settings,
    ))?;
    println!(
        "SQLite:     {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms ({} errors)",
        sqlite.rps, sqlite.p50_ms, sqlite.p99_ms, sqlite.errors
    );

    let pg_base = postgres.unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!(
        "zkc_bench_{}_{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    let pg_url = format!("{pg_base}?schema={schema}");
    let pg = runtime.block_on(async {
        let figures = run_store(&pg_url, &vk, root, &file, concurrency, &settings).await;
        drop_schema(&pg_base, &schema).await;
        figures
    });
    let pg = match pg {
        Ok(f) => {
            println!(
                "PostgreSQL: {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms ({} errors)",
                f.rps, f.p50_ms, f.p99_ms, f.errors
            );
            Some(f)
        }
        Err(e) => {
            println!("PostgreSQL: skipped ({e:#})");
            None
        }
    };
    let figures = GatewayFigures {
        sqlite_rps: round(sqlite.rps),
        sqlite_p50_ms: round(sqlite.p50_ms),
        sqlite_p99_ms: round(sqlite.p99_ms),
        postgres_rps: pg.as_ref().map(|f| round(f.rps)),
        postgres_p50_ms: pg.as_ref().map(|f| round(f.p50_ms)),
        postgres_p99_ms: pg.as_ref().map(|f| round(f.p99_ms)),
    };
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The benchmark's proofs, one line each (`authorization \t body`), made once and cached.
fn proofs(prover: &RequestProver, requests: usize) -> anyhow::Result<(PathBuf, Root)> {
    let seed = WalletSeed::from_entropy(b"zkcredits gateway benchmark");
    let secrets: Vec<_> = (0..NOTES).map(|j| seed.note_secret(j)).collect();
    let mut tree = LeanImt::new();
    for s in &secrets {
        tree.push(note::leaf(s.id(), DEPOSIT, EXPIRY))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let root = tree.root();
    let dir = crate::paths::home().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join(format!(
        "gateway-proofs-{}-{requests}.txt",
        hex::encode(&prover.verifying_key_hash()[..8])
    ));
    if std::fs::read_to_string(&file).is_ok_and(|t| t.lines().count() == requests) {
        println!("proofs: {requests} cached in {}", file.display());
        return Ok((file, root));
    }
    println!(
        "proofs: making {requests} (once; cached in {})",
        file.display()
    );
    let server = zkcredits_chain::testing::test_server_key();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let mut lines = Vec::with_capacity(requests);
    let started = Instant::now();
    let per_note = requests.div_ceil(NOTES as usize);
    'notes: for (j, secret) in secrets.iter().enumerate() {
        let path = tree.path(j as u64).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut state = NoteState::fresh();
        let mut pre = None;
        for _ in 0..per_note {
            if lines.len() == requests {
                break 'notes;
            }
            let body = format!("{{\"n\":{}}}", lines.len());
            let x = zkcredits_protocol::request::request_x("POST", PATH, body.as_bytes());
            let rho_next = {
                use ark_ff::UniformRand;
                Fr::rand(&mut rng)
            };
            let circuit = RequestCircuit::new(RequestInputs {
                secret,
                deposit: DEPOSIT,
                expiry_epoch: EXPIRY,
                path: &path,
                root,
                state: &state,
                x,
                rho_next,
                limits: LIMITS,
                server_key: server.public_key(),
            })?;
            let public = circuit.public;
            if pre.is_none() {
                pre = Some(prover.precompute(circuit.clone())?);
            }
            let pre_ref = pre.as_ref().context("precomputed")?;
            let proof = prover.prove_precomputed(pre_ref, circuit, &mut rng)?;
            let credential = Credential {
                key_id: KEY_ID,
                root,
                nullifier: public.nullifier,
                y: public.y,
                next_commitment: public.next_commitment,
                proof: to_points(&proof),
            };
            lines.push(format!(
                "{} {}\t{body}",
                zkcredits_api::AUTH_SCHEME,
                credential.to_base64url()
            ));
            // The gateway's answer, simulated: a full refund keeps the note solvent.
            let k = secret.expose();
            let refund = LIMITS.c_max;
            let receipt = Receipt {
                refund,
                penalty: Credits::ZERO,
                signature: server.sign(receipt_message(
                    public.next_commitment,
                    refund,
                    Credits::ZERO,
                )),
            };
            state = state.advance(k, rho_next, receipt)?;
            if lines.len() % 100 == 0 {
                println!(
                    "  {} proofs, {:.0} ms each",
                    lines.len(),
                    started.elapsed().as_secs_f64() * 1e3 / lines.len() as f64
                );
            }
        }
    }
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, lines.join("\n") + "\n")?;
    std::fs::rename(&tmp, &file)?;
    Ok((file, root))
}

/// Starts a gateway on `store_url`, runs the load process against it, stops it.
async fn run_store(
    store_url: &str,
    vk: &ark_groth16::VerifyingKey<ark_bn254::Bn254>,
    root: Root,
    file: &Path,
    concurrency: usize,
    settings: &Settings,
) -> anyhow::Result<LoadFigures> {
    let store = zkcredits_gateway::store::open_from_url(store_url)
        .await
        .with_context(|| format!("opening {}", store_url.split('?').next().unwrap_or("")))?;
    let upstream = start_upstream().await?;
    // A pool that exists only on paper: nothing on the request path reads a chain.
    let deployment = zkcredits_chain::testing::offline_deployment();
    anyhow::ensure!(
        (deployment.constants.c_max, deployment.constants.p_max) == (LIMITS.c_max, LIMITS.p_max),
        "the benchmark's limits are the offline deployment's"
    );
    let route = FlatUpstream::new(
        &FlatConfig {
            prefix: "/api".into(),
            base_url: format!("http://{upstream}"),
            price: 10,
            timeout_secs: None,
        },
        LIMITS.c_max.get(),
        Duration::from_secs(10),
    )?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let shutdown = CancellationToken::new();
    let running = GatewayBuilder::new(
        deployment,
        vk.clone(),
        ServerKeys::new(
            KEY_ID,
            zkcredits_chain::testing::test_server_key(),
            Vec::new(),
        ),
        store,
    )
    .settings(settings.clone())
    .roots(RootsSource::Fixed(vec![root]))
    .route("/api", Arc::new(route))
    .start(listener, shutdown.clone())
    .await
    .map_err(|e| {
        let code = e.code();
        crate::report::coded(e, code)
    })?;
    let url = format!("http://{}", running.addr);
    let exe = std::env::current_exe()?;
    let file = file.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args(["bench", "gateway-load", "--url", &url, "--concurrency"])
            .arg(concurrency.to_string())
            .arg("--file")
            .arg(&file)
            .stderr(std::process::Stdio::inherit())
            .output()
    })
    .await??;
    shutdown.cancel();
    running.wait().await.map_err(|e| {
        let code = e.code();
        crate::report::coded(e, code)
    })?;
    anyhow::ensure!(output.status.success(), "the load process failed");
    let text = String::from_utf8(output.stdout)?;
    let last = text
        .lines()
        .last()
        .context("the load process printed nothing")?;
    let figures: LoadFigures = serde_json::from_str(last)?;
    anyhow::ensure!(
        figures.errors == 0,
        "{} requests were not answered 200",
        figures.errors
    );
    Ok(figures)
}

async fn start_upstream() -> anyhow::Result<std::net::SocketAddr> {
    let app = axum::Router::new().fallback(|| async { "{}" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

async fn drop_schema(url: &str, schema: &str) {
    if let Ok((client, connection)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        let task = tokio::spawn(connection);
        if let Err(e) = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await
        {
            eprintln!("could not drop the benchmark schema {schema}: {e}");
        }
        drop(client);
        let _ = task.await;
    }
}

/// The load process: sends every line of `file` as a paid request, `concurrency` at a
/// time, and prints [`LoadFigures`] as its last line.
pub(crate) fn load(url: String, file: PathBuf, concurrency: usize) -> anyhow::Result<()> {
    let requests: Vec<(String, String)> = std::io::BufReader::new(std::fs::File::open(&file)?)
        .lines()
        .map(|l| {
            let l = l?;
            let (auth, body) = l.split_once('\t').context("a proof line")?;
            Ok((auth.to_owned(), body.to_owned()))
        })
        .collect::<anyhow::Result<_>>()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let figures = runtime.block_on(async move {
        let requests = Arc::new(requests);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .build()?;
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let workers: Vec<_> = (0..concurrency.max(1))
            .map(|_| {
                let (requests, client, next) =
                    (Arc::clone(&requests), client.clone(), Arc::clone(&next));
                let target = format!("{url}{PATH}");
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut errors = 0usize;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((auth, body)) = requests.get(i) else {
                            break;
                        };
                        let t = Instant::now();
                        let sent = client
                            .post(&target)
                            .header("authorization", auth)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await;
                        let ok = match sent {
                            Ok(r) => {
                                let ok = r.status().is_success()
                                    && r.headers().contains_key("zkcredit-receipt");
                                let _ = r.bytes().await;
                                ok
                            }
                            Err(_) => false,
                        };
                        if ok {
                            latencies.push(t.elapsed().as_secs_f64() * 1e3);
                        } else {
                            errors += 1;
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        let mut latencies = Vec::new();
        let mut errors = 0;
        for w in workers {
            let (l, e) = w.await?;
            latencies.extend(l);
            errors += e;
        }
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort_by(f64::total_cmp);
        let pick = |q: f64| {
            latencies
                .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or(f64::NAN)
        };
        anyhow::Ok(LoadFigures {
            ok: latencies.len(),
            errors,
            rps: latencies.len() as f64 / elapsed,
            p50_ms: pick(0.50),
            p99_ms: pick(0.99),
        })
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(&figures)?)?;
    Ok(())
}
