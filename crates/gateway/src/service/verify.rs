//! Proof verification off the async runtime, batched under load.
//!
//! A fixed set of threads (one per core by default) shares one queue. A thread that
//! wakes up takes the first proof waiting and then everything else already queued (up to
//! the batch size, optionally waiting a little to fill it), and checks them with one
//! multi-pairing ([`Verifier::verify_batch`]). So a lone request pays one single
//! verification, and under load the cost per proof drops to that of a batch. A batch that
//! fails says nothing about which proof is bad: its proofs are then checked one by one,
//! so a bad proof never fails the others.
//!
//! arkworks is built with rayon (the prover wants every core), so a multi-pairing or an
//! MSM would otherwise fan out to the global rayon pool from every verifier thread at
//! once: more threads than cores, and the Miller loop split into chunks that each repeat
//! the squarings. Each verifier thread therefore runs inside a rayon pool of its own with
//! one thread, where arkworks' parallel loops run in place.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ark_bn254::Bn254;
use ark_groth16::Proof;
use tokio::sync::oneshot;
use zkcredits_circuits::verifier::Verifier;
use zkcredits_protocol::Fr;

/// One proof waiting with its public inputs and where to send the verdict.
struct Job {
    proof: Proof<Bn254>,
    inputs: Vec<Fr>,
    reply: oneshot::Sender<bool>,
}

/// Why a proof could not be checked (not: why it is invalid).
#[derive(Debug, thiserror::Error)]
pub(crate) enum VerifyError {
    /// The queue is full: the gateway is overloaded.
    #[error("too many proofs are waiting for verification")]
    Overloaded,
    /// The verifier threads have stopped.
    #[error("the verifier has stopped")]
    Stopped,
}

/// The verifier threads and their queue. Dropping it stops the threads once the queue
/// is drained.
pub(crate) struct BatchVerifier {
    queue: Option<SyncSender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl BatchVerifier {
    /// Starts `threads` verifier threads (0: [`default_threads`]).
    pub(crate) fn start(
        verifier: Arc<Verifier>,
        threads: usize,
        batch_max: usize,
        batch_wait: Duration,
    ) -> Self {
        let threads = if threads == 0 {
            default_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        } else {
            threads
        };
        // Room for a few batches per thread; beyond it the gateway answers 503 at once
        // rather than letting latency grow without bound.
        let (tx, rx) = mpsc::sync_channel::<Job>(threads * batch_max.max(1) * 64);
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..threads)
            .map(|i| {
                let rx = Arc::clone(&rx);
                let verifier = Arc::clone(&verifier);
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .thread_name(move |_| format!("zkc-verify-{i}"))
                    .build()
                    .map_err(|e| tracing::error!(error = %e, "cannot start a verifier pool"))
                    .ok()?;
                std::thread::Builder::new()
                    .name(format!("zkc-verify-{i}-wait"))
                    .spawn(move || {
                        pool.install(|| run(&verifier, &rx, batch_max.max(1), batch_wait));
                    })
                    .map_err(|e| tracing::error!(error = %e, "cannot start a verifier thread"))
                    .ok()
            })
            .collect::<Vec<_>>()
            .into_iter()
            .flatten()
            .collect();
        Self {
            queue: Some(tx),
            threads: handles,
        }
    }

    /// Verifies one proof, batched with whatever else is waiting.
    pub(crate) async fn verify(
        &self,
        proof: Proof<Bn254>,
        inputs: Vec<Fr>,
    ) -> Result<bool, VerifyError> {
        let (reply, answer) = oneshot::channel();
        let queue = self.queue.as_ref().ok_or(VerifyError::Stopped)?;
        queue
            .try_send(Job {
                proof,
                inputs,
                reply,
            })
            .map_err(|e| match e {
                mpsc::TrySendError::Full(_) => VerifyError::Overloaded,
                mpsc::TrySendError::Disconnected(_) => VerifyError::Stopped,
            })?;
        answer.await.map_err(|_| VerifyError::Stopped)
    }
}

/// One verifier thread per two cores, at least one. Verification shares the cores with
/// the HTTP work and credential decoding; a thread per core would take every proof the
/// moment it arrives, so batches stay small and each pays its own final exponentiation
/// (on 2 cores, `bench gateway` measured 666 requests/s with one thread and 595 with two).
pub(crate) fn default_threads(cores: usize) -> usize {
    (cores / 2).max(1)
}

impl Drop for BatchVerifier {
    fn drop(&mut self) {
        self.queue = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn run(verifier: &Verifier, rx: &Mutex<Receiver<Job>>, batch_max: usize, wait: Duration) {
    let mut rng = rand::rngs::OsRng;
    loop {
        let batch = {
            // One thread at a time collects a batch; the others wait for the lock and
            // then collect theirs, so each batch holds what queued meanwhile.
            let rx = match rx.lock() {
                Ok(rx) => rx,
                Err(poisoned) => poisoned.into_inner(),
            };
            let Ok(first) = rx.recv() else {
                return;
            };
            let mut batch = vec![first];
            let deadline = Instant::now() + wait;
            while batch.len() < batch_max {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(TryRecvError::Empty) if !wait.is_zero() => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        match rx.recv_timeout(left) {
                            Ok(job) => batch.push(job),
                            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                                break;
                            }
                        }
                    }
                    Err(_) => break,
                }
            }
            batch
        };
        check(verifier, batch, &mut rng);
    }
}

fn check(verifier: &Verifier, batch: Vec<Job>, rng: &mut rand::rngs::OsRng) {
    metrics::histogram!("zkcredits_verify_batch_size").record(batch.len() as f64);
    if batch.len() > 1 {
        let items: Vec<(&Proof<Bn254>, &[Fr])> = batch
            .iter()
            .map(|j| (&j.proof, j.inputs.as_slice()))
            .collect();
        if verifier.verify_batch(&items, rng) {
            for job in batch {
                let _ = job.reply.send(true);
            }
            return;
        }
        metrics::counter!("zkcredits_verify_batch_fallbacks_total").increment(1);
    }
    for job in batch {
        let ok = verifier.verify(&job.proof, &job.inputs);
        let _ = job.reply.send(ok);
    }
}
