//! `zkcredits bench proxy`: what the local proxy and the gateway add to a request.
//!
//! The real pieces, as `zkcredits demo` runs them: anvil with the pool (in this
//! process), `dev-llm` as the upstream, a gateway with its SQLite store, a wallet with
//! `--notes` deposited notes and `zkcredits proxy` in front of the gateway, each its own
//! process. An application (this process, one HTTP client per note, each sending one
//! chat completion and then waiting until a second has passed since it started: one
//! request per note per second) measures the time from sending to the last byte of the
//! answer:
//!
//! - through the zkcredits path: application -> proxy -> gateway -> dev-llm, each
//!   request paid (a proof finished from the note's precomputed ticket when it is
//!   ready, verified by the proxy and the gateway, the nullifier and the receipt
//!   stored, the receipt checked and the note advanced before the answer returns);
//! - through the same path with plain pass-throughs: application -> pass-through ->
//!   pass-through -> dev-llm (`zkcredits bench pass-through`, each its own process,
//!   forwarding the method, path and body and answering with the upstream's status
//!   and body).
//!
//! The difference of the percentiles is what zkcredits adds. The pass-through phase
//! runs first, then the zkcredits phase, each after warm-up requests that are not
//! counted (the proxy precomputes every note's first ticket when it starts, and the
//! connections are opened).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use zkcredits_chain::anvil::dev_signer;
use zkcredits_client::home::ClientHome;

use super::demo::{self, Services};

/// The proxy's log line for a proof finished from a precomputed ticket (debug level of
/// `zkcredits_client::spender`), counted to say how many requests found their ticket
/// ready.
const FINISHED_LINE: &str = "proof finished from the precomputed ticket";

/// What `bench proxy` prints last.
#[derive(Debug, Serialize)]
struct ProxyFigures {
    added_ms_p50: f64,
    added_ms_p99: f64,
    zkcredits_ms_p50: f64,
    zkcredits_ms_p99: f64,
    passthrough_ms_p50: f64,
    passthrough_ms_p99: f64,
    requests: usize,
    notes: u64,
    finished_from_ticket: usize,
    zkcredits_requests_total: usize,
}

/// What `bench proxy` runs.
#[derive(Debug)]
pub(crate) struct ProxyBench {
    /// Notes, and applications (one per note).
    pub(crate) notes: u64,
    /// Measured requests per path.
    pub(crate) requests: usize,
    /// Requests per application before measuring.
    pub(crate) warmup: usize,
    /// Each application sends one request per `think`.
    pub(crate) think: Duration,
    /// Keep the run's directory with its logs.
    pub(crate) keep_logs: bool,
    /// The proxy's log filter.
    pub(crate) proxy_log: String,
}

/// Runs the benchmark.
pub(crate) fn run(args: ProxyBench) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build; run `cargo run --release -- bench proxy` for real figures"
        );
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(bench(args))
}

async fn bench(args: ProxyBench) -> anyhow::Result<()> {
    let ProxyBench {
        notes,
        requests,
        warmup,
        think,
        keep_logs,
        proxy_log,
    } = args;
    let dir = tempfile::tempdir()?;
    let home = ClientHome::new(dir.path().to_path_buf());
    std::fs::create_dir_all(dir.path().join("logs"))?;
    let home_dir = dir.path().to_string_lossy().into_owned();
    let exe = std::env::current_exe().context("locating the zkcredits binary")?;
    let mut services = Services::default();
    let quiet_home = [
        ("ZKCREDITS_HOME", home_dir.as_str()),
        ("ZKCREDITS_LOG", "warn"),
    ];

    demo::run_step(&exe, &["setup", "dev"], &quiet_home)?;
    let deployment_path = home.devnet_deployment();
    let (anvil, deployment) = zkcredits_chain::devnet(&deployment_path, 0)
        .await
        .context("starting the devnet")?;

    let llm = demo::free_port()?;
    services.start_with(
        &exe,
        dir.path(),
        "dev-llm",
        &["dev-llm", "--listen", &llm.to_string()],
        &quiet_home,
    )?;
    demo::wait_for_port(llm, Duration::from_secs(30))?;
    let gateway = demo::free_port()?;
    let gateway_url = format!("http://{gateway}");
    let config =
        demo::write_gateway_config(dir.path(), gateway, llm, &deployment, &deployment_path)?;
    services.start_with(
        &exe,
        dir.path(),
        "gateway",
        &["gateway", "--config", &config.to_string_lossy()],
        &quiet_home,
    )?;
    demo::wait_for_http(
        &format!("{gateway_url}/.well-known/zkcredits"),
        Duration::from_secs(60),
    )
    .await?;

    let user_key = demo::hex_key(&dev_signer(demo::USER_ACCOUNT));
    let user_env = [
        ("ZKCREDITS_HOME", home_dir.as_str()),
        ("ZKCREDITS_ETH_KEY", user_key.as_str()),
        ("ZKCREDITS_LOG", "warn"),
    ];
    demo::run_step(&exe, &["wallet", "init"], &user_env)?;
    demo::run_step(
        &exe,
        &[
            "deposit",
            "--amount",
            "1000000",
            "--notes",
            &notes.to_string(),
        ],
        &user_env,
    )?;
    let proxy = demo::free_port()?;
    services.start_with(
        &exe,
        dir.path(),
        "proxy",
        &[
            "proxy",
            "--listen",
            &proxy.to_string(),
            "--gateway",
            &gateway_url,
        ],
        &[
            ("ZKCREDITS_HOME", home_dir.as_str()),
            ("ZKCREDITS_LOG", proxy_log.as_str()),
        ],
    )?;
    demo::wait_for_port(proxy, Duration::from_secs(60))?;

    // The plain path: two pass-throughs where the proxy and the gateway are.
    let outer = demo::free_port()?;
    let inner = demo::free_port()?;
    for (name, listen, upstream) in [
        ("pass-through-gateway", inner, format!("http://{llm}")),
        ("pass-through-proxy", outer, format!("http://{inner}")),
    ] {
        services.start_with(
            &exe,
            dir.path(),
            name,
            &[
                "bench",
                "pass-through",
                "--listen",
                &listen.to_string(),
                "--upstream",
                &upstream,
            ],
            &quiet_home,
        )?;
        demo::wait_for_port(listen, Duration::from_secs(30))?;
    }
    println!(
        "{notes} notes, {requests} measured requests per path after {warmup} warm-up requests per client, one request per client per {} ms; chat completions to dev-llm",
        think.as_millis()
    );

    let clients = usize::try_from(notes)?;
    let plain = measure(&format!("http://{outer}"), clients, requests, warmup, think).await?;
    let paid = measure(&format!("http://{proxy}"), clients, requests, warmup, think).await?;
    let log = std::fs::read_to_string(dir.path().join("logs/proxy.log")).unwrap_or_default();
    let finished = log.matches(FINISHED_LINE).count();
    services.stop_all();
    drop(anvil);

    let (p50, p99) = (percentile(&paid, 50.0), percentile(&paid, 99.0));
    let (b50, b99) = (percentile(&plain, 50.0), percentile(&plain, 99.0));
    let total = paid.len() + warmup * clients;
    println!("pass-through: p50 {b50:.2} ms, p99 {b99:.2} ms");
    println!("zkcredits:    p50 {p50:.2} ms, p99 {p99:.2} ms");
    println!(
        "added by zkcredits: p50 {:.2} ms, p99 {:.2} ms; {finished} of {total} paid requests (warm-up included) had their proof finished from a precomputed ticket",
        p50 - b50,
        p99 - b99
    );
    let figures = ProxyFigures {
        added_ms_p50: round(p50 - b50),
        added_ms_p99: round(p99 - b99),
        zkcredits_ms_p50: round(p50),
        zkcredits_ms_p99: round(p99),
        passthrough_ms_p50: round(b50),
        passthrough_ms_p99: round(b99),
        requests,
        notes,
        finished_from_ticket: finished,
        zkcredits_requests_total: total,
    };
    if keep_logs {
        println!("logs kept in {}", dir.keep().join("logs").display());
    }
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}

/// `clients` applications against `base`, each sending a chat completion and then
/// waiting until `think` has passed since it started; the first `warmup` of each are
/// not counted. Returns the `requests` latencies, in milliseconds.
async fn measure(
    base: &str,
    clients: usize,
    requests: usize,
    warmup: usize,
    think: Duration,
) -> anyhow::Result<Vec<f64>> {
    let http = reqwest::Client::new();
    let url = Arc::new(format!("{base}/v1/chat/completions"));
    let per_client = requests.div_ceil(clients);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let http = http.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            // Spread the clients over the period, as independent applications would be.
            let offset = think.mul_f64(c as f64 / clients as f64);
            tokio::time::sleep(offset).await;
            for n in 0..warmup + per_client {
                let started = Instant::now();
                // A different body each time: each paid request is its own ticket.
                let body = serde_json::json!({
                    "model": "dev-model",
                    "messages": [{"role": "user", "content": format!("client {c} request {n}: say hello")}],
                    "max_tokens": 16,
                });
                let answer = http.post(url.as_str()).json(&body).send().await?;
                let status = answer.status();
                let bytes = answer.bytes().await?;
                let took = started.elapsed();
                ensure!(
                    status.is_success(),
                    "{url} answered {status}: {}",
                    String::from_utf8_lossy(&bytes)
                );
                if n >= warmup {
                    latencies.push(took.as_secs_f64() * 1e3);
                }
                tokio::time::sleep(think.saturating_sub(took)).await;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.truncate(requests);
    Ok(all)
}

fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// `zkcredits bench pass-through`: a plain HTTP forwarder, the baseline of `bench
/// proxy`. Sends the method, path and body on to `upstream` (with the content type) and
/// answers with the upstream's status, content type and body: the hops of the
/// zkcredits path without anything zkcredits does.
pub(crate) fn pass_through(listen: SocketAddr, upstream: String) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let state = Arc::new((reqwest::Client::new(), upstream));
        let app = axum::Router::new().fallback(forward).with_state(state);
        println!(
            "pass-through listening on http://{}",
            listener.local_addr()?
        );
        axum::serve(listener, app).await?;
        Ok(())
    })
}

async fn forward(
    axum::extract::State(state): axum::extract::State<Arc<(reqwest::Client, String)>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (http, upstream) = &*state;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = http.request(method, format!("{upstream}{path}")).body(body);
    if let Some(kind) = headers.get(header::CONTENT_TYPE) {
        request = request.header(header::CONTENT_TYPE, kind);
    }
    let answer = match request.send().await {
        Ok(a) => a,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = answer.status();
    let kind = answer.headers().get(header::CONTENT_TYPE).cloned();
    match answer.bytes().await {
        Ok(bytes) => {
            let mut response = (status, bytes).into_response();
            if let Some(kind) = kind {
                response.headers_mut().insert(header::CONTENT_TYPE, kind);
            }
            response
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
