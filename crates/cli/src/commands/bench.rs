//! `zkcredits bench ...`: measurements on this machine, from a release build. Each
//! benchmark prints what it did and, as its last line, one JSON object.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use zkcredits_circuits::keys;
use zkcredits_circuits::prover::{CloseProver, RequestProver};
use zkcredits_circuits::sample::SampleNote;
use zkcredits_circuits::verifier::Verifier;
use zkcredits_protocol::Fr;
use zkcredits_protocol::credits::Credits;

/// Arguments of `zkcredits bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    what: BenchTarget,
}

#[derive(Debug, Subcommand)]
enum BenchTarget {
    /// Constraints, proving (plain, with the note precomputed, finished from a
    /// precomputed ticket), key loading, verification and batch verification.
    Circuits {
        /// Key directory (generated if missing) [default: $ZKCREDITS_HOME/keys].
        #[arg(long, env = "ZKCREDITS_KEYS")]
        keys: Option<PathBuf>,
        /// Proofs to time for the median.
        #[arg(long, default_value_t = 15)]
        proofs: usize,
    },
    /// Gas of deposit, deposit of 10, slash, recordViolations of 10 and commitRoot, from
    /// real receipts on a fresh anvil chain.
    Chain,
    /// A fresh client syncing the whole note tree of a pool of 100,000 notes from anvil
    /// (the deposits, by `depositMany`, are made first and not timed).
    Sync {
        /// Notes in the pool.
        #[arg(long, default_value_t = zkcredits_chain::bench::SYNC_NOTES)]
        notes: u64,
        /// Notes per `depositMany` while filling the pool.
        #[arg(long, default_value_t = zkcredits_chain::bench::SYNC_BATCH)]
        batch: u64,
    },
    /// Paid requests per second and latency of the gateway (SQLite, then PostgreSQL),
    /// trivial loopback upstream, load from a separate process.
    Gateway {
        /// Key directory (generated if missing) [default: $ZKCREDITS_HOME/keys].
        #[arg(long, env = "ZKCREDITS_KEYS")]
        keys: Option<PathBuf>,
        /// Paid requests per run (each needs its own proof, made once and cached).
        #[arg(long, default_value_t = 3000)]
        requests: usize,
        /// Requests in flight at once. The load is closed-loop, so latency is
        /// concurrency over throughput (Little's law): at 32 in flight even 1,500
        /// requests/s means 21 ms on average. 16 shows throughput and tail latency
        /// together; raise it to find the ceiling.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// PostgreSQL URL (a schema of its own is made and dropped).
        #[arg(long, env = "ZKCREDITS_BENCH_POSTGRES")]
        postgres: Option<String>,
        /// Verifier threads (as `admission.verify_threads`; 0: the gateway's default).
        #[arg(long, default_value_t = 0)]
        verify_threads: usize,
        /// Wait to fill a verification batch, microseconds (as
        /// `admission.verify_batch_wait_us`).
        #[arg(long)]
        verify_batch_wait_us: Option<u64>,
    },
    /// What the local proxy and the gateway add to a request: SDK-to-upstream latency
    /// through proxy, gateway and dev-llm against the same hops as plain
    /// pass-throughs, on a devnet, one request per note per second.
    Proxy {
        /// Notes in the wallet (one application per note).
        #[arg(long, default_value_t = 2)]
        notes: u64,
        /// Measured requests per path.
        #[arg(long, default_value_t = 100)]
        requests: usize,
        /// Requests per application before measuring (not counted).
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Each application sends one request per this many milliseconds.
        #[arg(long, default_value_t = 1000)]
        think_ms: u64,
        /// Keep the run's directory (every service's log) and say where it is.
        #[arg(long)]
        keep_logs: bool,
        /// The proxy's log filter (the count of proofs finished from a ticket needs
        /// `zkcredits_client::spender=debug`).
        #[arg(
            long,
            default_value = "warn,zkcredits_client::spender=debug",
            hide = true
        )]
        proxy_log: String,
    },
    /// The plain forwarder of `bench proxy` (run by it).
    #[command(hide = true)]
    PassThrough {
        /// Where to listen.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Where to forward, e.g. `http://127.0.0.1:8000`.
        #[arg(long)]
        upstream: String,
    },
    /// The load process of `bench gateway` (run by it).
    #[command(hide = true)]
    GatewayLoad {
        /// The gateway.
        #[arg(long)]
        url: String,
        /// The proofs file.
        #[arg(long)]
        file: PathBuf,
        /// Requests in flight at once.
        #[arg(long)]
        concurrency: usize,
    },
}

pub(crate) fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.what {
        BenchTarget::Circuits { keys, proofs } => circuits(
            keys.unwrap_or_else(crate::paths::default_keys),
            proofs.max(3),
        ),
        BenchTarget::Chain => chain(),
        BenchTarget::Sync { notes, batch } => sync(notes.max(1), batch.max(1)),
        BenchTarget::Gateway {
            keys,
            requests,
            concurrency,
            postgres,
            verify_threads,
            verify_batch_wait_us,
        } => {
            let mut settings = zkcredits_gateway::Settings {
                verify_threads,
                ..Default::default()
            };
            if let Some(us) = verify_batch_wait_us {
                settings.verify_batch_wait = std::time::Duration::from_micros(us);
            }
            super::bench_gateway::run(
                keys.unwrap_or_else(crate::paths::default_keys),
                requests.max(1),
                concurrency.max(1),
                postgres,
                settings,
            )
        }
        BenchTarget::Proxy {
            notes,
            requests,
            warmup,
            think_ms,
            keep_logs,
            proxy_log,
        } => super::bench_proxy::run(super::bench_proxy::ProxyBench {
            notes: notes.max(1),
            requests: requests.max(1),
            warmup,
            think: std::time::Duration::from_millis(think_ms),
            keep_logs,
            proxy_log,
        }),
        BenchTarget::PassThrough { listen, upstream } => {
            super::bench_proxy::pass_through(listen, upstream)
        }
        BenchTarget::GatewayLoad {
            url,
            file,
            concurrency,
        } => super::bench_gateway::load(url, file, concurrency),
    }
}

#[derive(Debug, Serialize)]
struct CircuitFigures {
    request_constraints: usize,
    prove_ms_p50: f64,
    key_load_ms: f64,
    verify_ms: f64,
    batch_verify_ms_per_proof: f64,
    prove_precomputed_ms_p50: f64,
    precompute_ms: f64,
    ticket_precompute_ms_p50: f64,
    finish_ms_p50: f64,
    close_constraints: usize,
    close_prove_ms_p50: f64,
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

fn circuits(dir: PathBuf, proofs: usize) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build; run `cargo run --release -- bench circuits` for real figures"
        );
    }
    println!(
        "threads: {} (rayon), proofs timed: {proofs}",
        rayon_threads()
    );
    super::setup::ensure_keys(&dir, true)?;

    // Key load: the first read warms the page cache, as a long-running client would be.
    let mut load_samples = Vec::new();
    let mut loaded = None;
    for _ in 0..6 {
        let start = Instant::now();
        let k = keys::load_proving_key(&dir).context("loading the proving key")?;
        load_samples.push(ms(start));
        loaded = Some(k);
    }
    load_samples.remove(0);
    let key_load_ms = median(load_samples);
    println!("proving key load (hash check + unchecked copy): {key_load_ms:.1} ms");
    let keys = loaded.context("keys loaded")?;
    let verifier = Verifier::new(keys.verifying_key());
    let prover = RequestProver::new(keys)?;
    let request_constraints = prover.num_constraints();
    println!("request circuit: {request_constraints} constraints");

    let mut rng = ChaCha20Rng::from_entropy();
    let mut note = SampleNote::new(1_000, Credits::new(1_000_000), 3, Credits::new(250));
    let mut prove_samples = Vec::new();
    let mut batch = Vec::new();
    for i in 0..proofs {
        note.x = Fr::from(i as u64 + 1);
        let circuit = note.circuit()?;
        let public = circuit.public.to_field_elements();
        let start = Instant::now();
        let proof = prover.prove(circuit, &mut rng)?;
        prove_samples.push(ms(start));
        batch.push((proof, public));
    }
    let prove_ms_p50 = median(prove_samples);
    println!("request proof, warm keys: p50 {prove_ms_p50:.1} ms");

    // The client's fast path: the note's fixed share computed once per root.
    let mut precompute_samples = Vec::new();
    let mut precomputation = None;
    for _ in 0..3 {
        let start = Instant::now();
        precomputation = Some(prover.precompute(note.circuit()?)?);
        precompute_samples.push(ms(start));
    }
    let precompute_ms = median(precompute_samples);
    let precomputation = precomputation.context("precomputed")?;
    let mut fast_samples = Vec::new();
    for i in 0..proofs {
        note.x = Fr::from(1_000 + i as u64);
        let circuit = note.circuit()?;
        let public = circuit.public.to_field_elements();
        let start = Instant::now();
        let proof = prover.prove_precomputed(&precomputation, circuit, &mut rng)?;
        fast_samples.push(ms(start));
        anyhow::ensure!(
            verifier.verify(&proof, &public),
            "a precomputed proof must verify"
        );
    }
    let prove_precomputed_ms_p50 = median(fast_samples);
    println!(
        "request proof with the note precomputed: p50 {prove_precomputed_ms_p50:.1} ms (precompute {precompute_ms:.1} ms once per root)"
    );

    // The pipelined path: the next ticket precomputed in the background (one blinding
    // each), its proof finished once the request's binding x is known.
    let path = note.path();
    let mut ticket_samples = Vec::new();
    let mut finish_samples = Vec::new();
    for i in 0..proofs {
        let start = Instant::now();
        let ticket = prover.precompute_ticket(&precomputation, note.circuit()?, &mut rng)?;
        ticket_samples.push(ms(start));
        note.x = Fr::from(2_000 + i as u64);
        let inputs = note.inputs(&path);
        let start = Instant::now();
        let finished = prover.finish_ticket(ticket, inputs)?;
        finish_samples.push(ms(start));
        anyhow::ensure!(
            verifier.verify(&finished.proof, &finished.public.to_field_elements()),
            "a finished ticket proof must verify"
        );
    }
    let ticket_precompute_ms_p50 = median(ticket_samples);
    let finish_ms_p50 = median(finish_samples);
    println!(
        "ticket precomputation: p50 {ticket_precompute_ms_p50:.1} ms; proof finished from it: p50 {finish_ms_p50:.3} ms"
    );

    let mut verify_samples = Vec::new();
    for _ in 0..5 {
        for (proof, public) in &batch {
            let start = Instant::now();
            anyhow::ensure!(verifier.verify(proof, public), "a fresh proof must verify");
            verify_samples.push(ms(start));
        }
    }
    let verify_ms = median(verify_samples);
    println!("verify: {verify_ms:.2} ms");

    let items: Vec<_> = batch
        .iter()
        .cycle()
        .take(64)
        .map(|(p, x)| (p, x.as_slice()))
        .collect();
    let mut batch_samples = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        anyhow::ensure!(
            verifier.verify_batch(&items, &mut rng),
            "the batch must verify"
        );
        batch_samples.push(ms(start) / items.len() as f64);
    }
    let batch_verify_ms_per_proof = median(batch_samples);
    println!("batch verify (64): {batch_verify_ms_per_proof:.3} ms per proof");

    // The close proof (once per note, so fewer samples).
    let close_keys = keys::load_close_proving_key(&dir).context("loading the close key")?;
    let close_verifier = Verifier::new(close_keys.verifying_key());
    let close_prover = CloseProver::new(close_keys)?;
    let close_constraints = close_prover.num_constraints();
    println!("close circuit: {close_constraints} constraints");
    let mut close_samples = Vec::new();
    for i in 0..proofs.div_ceil(2).max(3) {
        let circuit = note.close_circuit(i % 2 == 1, Fr::from(7_000 + i as u64))?;
        let public = circuit.public.to_field_elements();
        let start = Instant::now();
        let proof = close_prover.prove(circuit, &mut rng)?;
        close_samples.push(ms(start));
        anyhow::ensure!(
            close_verifier.verify(&proof, &public),
            "a close proof must verify"
        );
    }
    let close_prove_ms_p50 = median(close_samples);
    println!("close proof, warm keys: p50 {close_prove_ms_p50:.1} ms");

    let figures = CircuitFigures {
        request_constraints,
        prove_ms_p50: round(prove_ms_p50),
        key_load_ms: round(key_load_ms),
        verify_ms: round(verify_ms),
        batch_verify_ms_per_proof: round(batch_verify_ms_per_proof),
        prove_precomputed_ms_p50: round(prove_precomputed_ms_p50),
        precompute_ms: round(precompute_ms),
        ticket_precompute_ms_p50: round(ticket_precompute_ms_p50),
        finish_ms_p50: round(finish_ms_p50),
        close_constraints,
        close_prove_ms_p50: round(close_prove_ms_p50),
    };
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}

fn chain() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime
        .block_on(zkcredits_chain::bench_gas())
        .context("measuring gas on anvil (is `npm ci` done in contracts/?)")?;
    println!(
        "single deposit into a 1,000-leaf pool: {} gas",
        report.deposit_gas
    );
    println!(
        "depositMany of 10 notes (with its root commit): {} gas",
        report.deposit10_gas
    );
    println!("slash: {} gas", report.slash_gas);
    println!("recordViolations of 10: {} gas", report.record10_gas);
    println!("commitRoot: {} gas", report.commit_root_gas);
    println!(
        "closeCooperative: {} gas sent by the user, {} gas relayed (fee to the relay)",
        report.close_coop_gas, report.close_relayed_gas
    );
    println!(
        "closeUnilateral: {} gas, finalize {} gas, challenge {} gas",
        report.close_unilateral_gas, report.finalize_gas, report.challenge_gas
    );
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn sync(notes: u64, batch: u64) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build; run `cargo run --release -- bench sync` for real figures"
        );
    }
    println!("filling a pool with {notes} notes by depositMany of {batch} on anvil (not timed)...");
    let runtime = tokio::runtime::Runtime::new()?;
    let mut f = runtime
        .block_on(zkcredits_chain::bench_sync(notes, batch))
        .context("the tree sync benchmark on anvil (is `npm ci` done in contracts/?)")?;
    println!("pool filled in {:.1} s", f.setup_s);
    println!(
        "fresh sync: {} leaves, {} blocks, {} committed roots checked, root = the pool's root()",
        f.notes, f.blocks, f.commits
    );
    println!(
        "  {:.3} s in eth_getLogs ({} pages; the node's answer, transfer, JSON decoding)",
        f.fetch_s, f.log_pages
    );
    println!(
        "  (the same logs again as raw JSON: {:.3} s, {:.1} MB, the node and the transfer alone)",
        f.node_s,
        f.log_bytes as f64 / 1e6
    );
    println!("  {:.3} s decoding and checking the logs", f.decode_s);
    println!("  {:.3} s building the tree (Poseidon)", f.build_s);
    println!("  {:.3} s writing the state file", f.persist_s);
    println!(
        "  {} JSON-RPC requests in all, {} rayon threads",
        f.rpc_calls,
        rayon_threads()
    );
    println!("sync: {:.3} s (bar: 3 s)", f.sync_s);
    for x in [
        &mut f.sync_s,
        &mut f.fetch_s,
        &mut f.decode_s,
        &mut f.build_s,
        &mut f.persist_s,
        &mut f.node_s,
        &mut f.setup_s,
    ] {
        *x = round(*x);
    }
    println!("{}", serde_json::to_string(&f)?);
    Ok(())
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
