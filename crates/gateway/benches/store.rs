//! Admission throughput of the stores: 64 tasks admitting fresh tickets at once, the
//! gateway's hot path (`docs/PROTOCOL.md §4` step 3). Criterion reports time per admit
//! (wall time of the whole run divided by the admits), so its throughput is admits per
//! second; a latency line (p50, p99 per admit under the same load) is printed first.
//!
//! `cargo bench -p zkcredits-gateway --bench store` (PostgreSQL at 127.0.0.1:5432,
//! database `test`; its part is skipped with a note when the server is not there).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::Rng;
use zkcredits_gateway::store::{PostgresOptions, PostgresStore, SqliteStore, Store, StoredShare};

const TASKS: u64 = 64;
const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn ticket() -> ([u8; 32], StoredShare) {
    let mut rng = rand::thread_rng();
    (
        rng.r#gen(),
        StoredShare {
            x: rng.r#gen(),
            y: rng.r#gen(),
        },
    )
}

/// Admits `total` fresh tickets from `TASKS` tasks; returns the wall time and every
/// admit's latency.
async fn run(store: &Arc<dyn Store>, total: u64) -> (Duration, Vec<Duration>) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = Arc::clone(store);
            let n = total / TASKS + u64::from(t < total % TASKS);
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let (nullifier, share) = ticket();
                    // A request's ticket keeps its T_next (for the refund of an
                    // abandoned ticket), as on the request path.
                    let next: [u8; 32] = rand::thread_rng().r#gen();
                    let t0 = Instant::now();
                    store.admit(nullifier, share, Some(next)).await.unwrap();
                    latencies.push(t0.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total as usize);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (start.elapsed(), all)
}

fn report(name: &str, rt: &tokio::runtime::Runtime, store: &Arc<dyn Store>) {
    let (wall, mut lat) = rt.block_on(run(store, 20_000));
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    eprintln!(
        "{name}: 20000 admits by {TASKS} tasks in {wall:.2?} = {:.0}/s; latency p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        20_000.0 / wall.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("store_admit_64_tasks");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);

    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("bench.db")).unwrap());
    report("sqlite", &rt, &sqlite);
    group.bench_function("sqlite", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let s = Arc::clone(&sqlite);
            async move { run(&s, iters).await.0 }
        });
    });

    let schema = format!("zkc_bench_{}", std::process::id());
    let options = PostgresOptions {
        schema: Some(schema.clone()),
        pool_size: 16,
    };
    match rt.block_on(PostgresStore::connect(PG_URL, options)) {
        Ok(pg) => {
            let pg: Arc<dyn Store> = Arc::new(pg);
            report("postgres", &rt, &pg);
            group.bench_function("postgres", |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let s = Arc::clone(&pg);
                    async move { run(&s, iters).await.0 }
                });
            });
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(PG_URL, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                let task = tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                    .await
                    .unwrap();
                drop(client);
                let _ = task.await;
            });
        }
        Err(e) => eprintln!("postgres skipped: {e}"),
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
