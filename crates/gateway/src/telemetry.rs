//! Prometheus metrics (`GET /metrics`): requests admitted, refusals by code, verification
//! batch sizes, admission and total latency.
//!
//! The `metrics` facade has one global recorder per process; the first gateway started
//! installs it, and later ones in the same process (tests) share it.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Paid requests admitted (fresh tickets).
pub const ADMITTED: &str = "zkcredits_admitted_total";
/// Refusals, labelled by `code`.
pub const REJECTED: &str = "zkcredits_rejected_total";
/// Seconds from the request's arrival to its ticket being durably stored.
pub const ADMISSION_SECONDS: &str = "zkcredits_admission_seconds";
/// Seconds from arrival to the answer (or to the start of a stream).
pub const REQUEST_SECONDS: &str = "zkcredits_request_seconds";
/// Closes the relay sent for users.
pub const CLOSES_RELAYED: &str = "zkcredits_closes_relayed_total";
/// Proofs per verification batch.
pub const VERIFY_BATCH: &str = "zkcredits_verify_batch_size";

const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];
const BATCH_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// The process's Prometheus handle, installing the recorder on first use.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(VERIFY_BATCH.into()), &BATCH_BUCKETS)
                });
            let builder = match builder {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "metric buckets refused; using summaries");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics will be empty");
            }
            handle
        })
        .clone()
}
