//! How the background ticket maker and the requests share the cores, so that the
//! pipeline never costs a request more than proving would have.
//!
//! A request that finds its ticket ready finishes its proof in a fraction of a
//! millisecond. One that does not has two ways on: wait for the ticket the maker has in
//! hand, or prove by itself. When the maker keeps up the first is always right; when it
//! falls behind (requests arrive faster than it makes tickets, or other work takes the
//! cores) a fixed wait followed by a proof costs more than the proof alone, and a proof
//! made beside the maker's work makes both slower. So:
//!
//! - **Join the ticket in the making, or do not wait at all.** A request waits for the
//!   maker's ticket only when the maker's running estimate of what is left of it is no
//!   more than the request's estimate of a proof, only one request waits for each
//!   ticket (the others would not get it), and never longer than a proof would take.
//! - **Requests that prove go first.** While any request proves by itself, the maker
//!   starts no new ticket; under a load it cannot keep up with, it only works in the
//!   gaps, and the proxy behaves as it did before the pipeline.
//! - **Prove with a note the maker is not working on**, so that its ticket is not
//!   wasted (`Spender::begin` ranks notes: ready, idle, in the making).
//!
//! The estimates are running averages of what was measured in this process; before the
//! first measurement both stand at [`FIRST_GUESS`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The estimate of a proof and of a ticket before either was measured: one proof with
/// the note precomputed on two cores is 250 to 400 ms.
pub(crate) const FIRST_GUESS: Duration = Duration::from_millis(400);

/// How often a maker held back by a proving request looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// A running average (the newest measurement weighs a quarter).
#[derive(Clone, Copy, Debug, Default)]
struct Estimate(Option<Duration>);

impl Estimate {
    fn record(&mut self, measured: Duration) {
        self.0 = Some(match self.0 {
            None => measured,
            Some(old) => (old * 3 + measured) / 4,
        });
    }

    fn get(self) -> Duration {
        self.0.unwrap_or(FIRST_GUESS)
    }
}

/// The ticket the maker has in hand.
#[derive(Clone, Copy, Debug)]
struct Job {
    note: u64,
    started: Instant,
}

#[derive(Debug, Default)]
struct State {
    job: Option<Job>,
    /// A request waits for `job`'s ticket.
    claimed: bool,
    /// Requests proving by themselves now.
    proving: usize,
    make: Estimate,
    prove: Estimate,
}

/// The shared pace of one spender's maker and requests.
#[derive(Debug, Default)]
pub(crate) struct Pace {
    state: Mutex<State>,
    /// Signalled when a job ends, a claim is given up or a proving request is done.
    changed: Condvar,
}

impl Pace {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // The maker's side.

    /// Called by the maker before it starts on note `note`'s ticket: waits while a
    /// request proves by itself, then marks the job as started. False when `stop` was
    /// raised meanwhile (nothing is started).
    pub(crate) fn start_job(&self, note: u64, stop: &AtomicBool) -> bool {
        let mut state = self.state();
        loop {
            if stop.load(Ordering::SeqCst) {
                return false;
            }
            if state.proving == 0 {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, STOP_POLL)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.job = Some(Job {
            note,
            started: Instant::now(),
        });
        true
    }

    /// Called by the maker when the job ends: `made` is true when it made a new ticket
    /// (its time then counts in the estimate; a skip or a ticket found ready does not).
    pub(crate) fn end_job(&self, made: bool) {
        let mut state = self.state();
        if let Some(job) = state.job.take()
            && made
        {
            state.make.record(job.started.elapsed());
        }
        state.claimed = false;
        drop(state);
        self.changed.notify_all();
    }

    // The requests' side.

    /// The note whose ticket is in the making, if any.
    pub(crate) fn in_the_making(&self) -> Option<u64> {
        self.state().job.map(|j| j.note)
    }

    /// Whether a request with no ticket ready should wait for the one in the making:
    /// `Some` (the right to wait, for at most a proof's time) when a ticket is in the
    /// making, no other request waits for it, and what is left of it is estimated at no
    /// more than a proof.
    pub(crate) fn claim(&self) -> Option<Claim<'_>> {
        let mut state = self.state();
        let job = state.job?;
        if state.claimed {
            return None;
        }
        let proof = state.prove.get();
        let left = state.make.get().saturating_sub(job.started.elapsed());
        if left > proof {
            return None;
        }
        state.claimed = true;
        Some(Claim {
            pace: self,
            job: job.started,
            limit: proof,
        })
    }

    /// Marks a request as proving by itself until the guard is dropped: the maker
    /// starts no new ticket meanwhile. Drop the guard with [`Proving::done`] to count
    /// the proof's time in the estimate.
    pub(crate) fn proving(&self) -> Proving<'_> {
        self.state().proving += 1;
        Proving {
            pace: self,
            started: Instant::now(),
            measured: false,
        }
    }

    /// The running estimates `(ticket, proof)`.
    pub(crate) fn estimates(&self) -> (Duration, Duration) {
        let state = self.state();
        (state.make.get(), state.prove.get())
    }
}

/// The right to wait for the ticket in the making (see [`Pace::claim`]).
#[derive(Debug)]
pub(crate) struct Claim<'a> {
    pace: &'a Pace,
    /// The start of the job claimed: the claim is its, and no later job's.
    job: Instant,
    limit: Duration,
}

impl Claim<'_> {
    /// The longest this claim waits.
    #[cfg(test)]
    fn limit(&self) -> Duration {
        self.limit
    }

    /// Waits until the job ends or the limit passes; true when it ended.
    pub(crate) fn wait(self) -> bool {
        let state = self.pace.state();
        let (_state, timeout) = self
            .pace
            .changed
            .wait_timeout_while(state, self.limit, |s| s.job.is_some())
            .unwrap_or_else(PoisonError::into_inner);
        !timeout.timed_out()
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        // The job's end already freed its claim; a later job may have a waiter of its
        // own by now, whose claim this one must not free.
        let mut state = self.pace.state();
        if state.job.is_some_and(|j| j.started == self.job) {
            state.claimed = false;
        }
    }
}

/// A request proving by itself (see [`Pace::proving`]).
#[derive(Debug)]
pub(crate) struct Proving<'a> {
    pace: &'a Pace,
    started: Instant,
    measured: bool,
}

impl Proving<'_> {
    /// The proof is made: its time counts in the estimate.
    pub(crate) fn done(mut self) {
        self.measured = true;
    }
}

impl Drop for Proving<'_> {
    fn drop(&mut self) {
        let mut state = self.pace.state();
        state.proving -= 1;
        if self.measured {
            state.prove.record(self.started.elapsed());
        }
        drop(state);
        self.pace.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn estimates_start_at_the_first_guess_and_follow_measurements() {
        let mut e = Estimate::default();
        assert_eq!(e.get(), FIRST_GUESS);
        e.record(ms(100));
        assert_eq!(e.get(), ms(100));
        e.record(ms(500));
        assert_eq!(e.get(), ms(200));
    }

    #[test]
    fn nothing_in_the_making_means_no_wait() {
        let pace = Pace::default();
        assert!(pace.claim().is_none());
        assert_eq!(pace.in_the_making(), None);
    }

    #[test]
    fn one_request_waits_for_a_ticket_and_the_next_does_not() {
        let pace = Pace::default();
        assert!(pace.start_job(3, &AtomicBool::new(false)));
        assert_eq!(pace.in_the_making(), Some(3));
        let first = pace.claim().expect("the first request may wait");
        assert_eq!(first.limit(), FIRST_GUESS);
        assert!(pace.claim().is_none(), "the ticket has a taker already");
        drop(first);
        assert!(pace.claim().is_some(), "a claim given up is free again");
    }

    #[test]
    fn a_claim_dropped_after_its_job_ended_leaves_the_next_jobs_waiter_alone() {
        let pace = Pace::default();
        let stop = AtomicBool::new(false);
        assert!(pace.start_job(1, &stop));
        let first = pace.claim().expect("first job's waiter");
        pace.end_job(true);
        assert!(pace.start_job(2, &stop));
        let second = pace.claim().expect("second job's waiter");
        drop(first);
        assert!(
            pace.claim().is_none(),
            "the second job still has its one waiter"
        );
        drop(second);
        assert!(pace.claim().is_some());
    }

    #[test]
    fn a_ticket_estimated_to_need_more_than_a_proof_is_not_waited_for() {
        let pace = Pace::default();
        {
            let mut s = pace.state();
            s.make.record(Duration::from_secs(60));
            s.prove.record(ms(300));
        }
        assert!(pace.start_job(1, &AtomicBool::new(false)));
        assert!(
            pace.claim().is_none(),
            "a maker that fell behind is not waited for"
        );
        pace.end_job(false);
        {
            let mut s = pace.state();
            s.make = Estimate(Some(ms(250)));
        }
        assert!(pace.start_job(1, &AtomicBool::new(false)));
        let claim = pace
            .claim()
            .expect("a maker ahead of a proof is waited for");
        assert_eq!(claim.limit(), ms(300), "never longer than a proof");
    }

    #[test]
    fn a_claim_wakes_when_the_job_ends_and_times_out_otherwise() {
        let pace = Arc::new(Pace::default());
        assert!(pace.start_job(0, &AtomicBool::new(false)));
        let ender = {
            let pace = pace.clone();
            std::thread::spawn(move || {
                std::thread::sleep(ms(20));
                pace.end_job(true);
            })
        };
        assert!(pace.claim().expect("claim").wait());
        ender.join().expect("ender");
        assert_eq!(pace.in_the_making(), None);

        assert!(pace.start_job(0, &AtomicBool::new(false)));
        let mut claim = pace.claim().expect("claim");
        claim.limit = ms(10);
        assert!(!claim.wait(), "the job did not end within the limit");
    }

    #[test]
    fn the_maker_starts_nothing_while_a_request_proves() {
        let pace = Arc::new(Pace::default());
        let proving = pace.proving();
        let started = Arc::new(AtomicBool::new(false));
        let maker = {
            let (pace, started) = (pace.clone(), started.clone());
            std::thread::spawn(move || {
                assert!(pace.start_job(5, &AtomicBool::new(false)));
                started.store(true, Ordering::SeqCst);
            })
        };
        // The maker is parked until the proof is done: whatever the scheduling, it
        // cannot have started while `proving` is alive.
        std::thread::sleep(ms(30));
        assert!(!started.load(Ordering::SeqCst));
        assert_eq!(pace.in_the_making(), None);
        proving.done();
        maker.join().expect("maker");
        assert!(started.load(Ordering::SeqCst));
        assert_eq!(pace.in_the_making(), Some(5));
        let (_, proof) = pace.estimates();
        assert!(proof < FIRST_GUESS, "the measured proof replaced the guess");
    }

    #[test]
    fn a_held_back_maker_still_stops() {
        let pace = Pace::default();
        let _proving = pace.proving();
        assert!(!pace.start_job(1, &AtomicBool::new(true)));
        assert_eq!(pace.in_the_making(), None);
    }
}
