//! Argon2 verifications on a few dedicated threads, strictly first come,
//! first served. Argon2 is deliberately slow and memory-hungry: it must not
//! run on the async workers, and after a restart thousands of tills queue
//! for it at once. A plain FIFO queue consumed by N threads keeps the order
//! in which requests arrived (a semaphore in front of the blocking pool did
//! not: a request could be answered after a thousand later ones).
//!
//! A job nobody waits for any more (every client that asked hung up) is
//! dropped when its turn comes instead of verified: send-and-hang-up
//! requests would otherwise buy seconds of argon2 each for nothing
//! (issue 28, item 3). How many queued jobs someone still waits for is
//! public, so that callers can refuse work once that is many; the dropped
//! ones cost microseconds each and are not counted.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Weak};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use parking_lot::Mutex;

use crate::metrics as m;

/// Called on the verifying thread with the verdict, or `None` when the job
/// was dropped unverified because nobody waited for it.
pub type Done = Box<dyn FnOnce(Option<bool>) + Send>;

/// Held by everyone waiting for a verdict; the job keeps only a weak
/// reference, so it knows when the last of them has gone.
pub type Interest = Arc<Waiting>;

/// Counts a queued job as awaited until it starts or its last waiter leaves.
pub struct Waiting {
    awaited: Arc<AtomicUsize>,
    counted: AtomicBool,
}

impl Waiting {
    fn uncount(&self) {
        if self.counted.swap(false, Ordering::Relaxed) {
            self.awaited.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.uncount();
    }
}

struct Job {
    hash: String,
    password: String,
    interest: Weak<Waiting>,
    /// Released when the job is done (the address's pending slot).
    hold: Box<dyn Send>,
    done: Done,
}

pub struct VerifierPool {
    queue: Sender<Job>,
    depth: Arc<AtomicUsize>,
    /// Queued jobs someone still waits for.
    awaited: Arc<AtomicUsize>,
    run: Arc<AtomicU64>,
}

impl VerifierPool {
    /// The threads end when the pool is dropped (their queue closes).
    pub fn start(threads: usize) -> std::io::Result<VerifierPool> {
        let (queue, jobs) = channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        let depth = Arc::new(AtomicUsize::new(0));
        let run = Arc::new(AtomicU64::new(0));
        for i in 0..threads.max(1) {
            let (jobs, depth, run) = (jobs.clone(), depth.clone(), run.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || work(&jobs, &depth, &run))?;
        }
        Ok(VerifierPool {
            queue,
            depth,
            awaited: Arc::default(),
            run,
        })
    }

    /// Verifications run since start (not those dropped unrun).
    pub fn run(&self) -> u64 {
        self.run.load(Ordering::Relaxed)
    }

    /// Verifications queued and not yet taken by a thread.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Of those, the ones someone still waits for.
    pub fn awaited(&self) -> usize {
        self.awaited.load(Ordering::Relaxed)
    }

    /// A new waiters' handle for a job about to be submitted: the job
    /// counts as awaited while it is held.
    pub fn interest(&self) -> Interest {
        self.awaited.fetch_add(1, Ordering::Relaxed);
        Arc::new(Waiting {
            awaited: self.awaited.clone(),
            counted: AtomicBool::new(true),
        })
    }

    /// Queues a verification behind every earlier one; it is verified only
    /// if someone still holds `interest` when its turn comes. `hold` is
    /// dropped when the job is over.
    pub fn submit(
        &self,
        hash: String,
        password: String,
        interest: &Interest,
        hold: Box<dyn Send>,
        done: Done,
    ) {
        let queued = self.depth.fetch_add(1, Ordering::Relaxed) + 1;
        m::auth_verification_queue(queued);
        if let Err(returned) = self.queue.send(Job {
            hash,
            password,
            interest: Arc::downgrade(interest),
            hold,
            done,
        }) {
            // No thread left (only while shutting down): refuse rather than hang.
            self.depth.fetch_sub(1, Ordering::Relaxed);
            (returned.0.done)(Some(false));
        }
    }
}

/// Niceness of the argon2 threads: during a storm the tills already
/// verified must keep their millisecond answers, so the HTTP workers come
/// first and argon2 takes the CPU they leave.
const ARGON2_NICE: libc::c_int = 10;

fn lower_priority() {
    // On Linux a nice value applies to the calling thread (its tid); an
    // unprivileged process may always lower its own priority.
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the current thread, no memory handed over.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, ARGON2_NICE);
    }
}

fn work(jobs: &Mutex<Receiver<Job>>, depth: &AtomicUsize, run: &AtomicU64) {
    lower_priority();
    loop {
        // The lock is held only while taking the next job, in queue order.
        let job = jobs.lock().recv();
        let Ok(job) = job else { return };
        let left = depth.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
        m::auth_verification_queue(left);
        match job.interest.upgrade() {
            // Started: no longer waiting in the queue.
            Some(waiting) => waiting.uncount(),
            None => {
                m::auth_verification("abandoned");
                drop(job.hold);
                (job.done)(None);
                continue;
            }
        }
        run.fetch_add(1, Ordering::Relaxed);
        let ok = PasswordHash::new(&job.hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(job.password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        drop(job.hold);
        (job.done)(Some(ok));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::auth::hash_password;

    #[test]
    fn one_thread_answers_in_arrival_order() {
        let pool = VerifierPool::start(1).unwrap();
        let hash = hash_password("right").unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = channel();
        let interest = pool.interest();
        for i in 0..4 {
            let order = order.clone();
            let tx = tx.clone();
            let password = if i % 2 == 0 { "right" } else { "wrong" };
            pool.submit(
                hash.clone(),
                password.into(),
                &interest,
                Box::new(()),
                Box::new(move |ok| {
                    order.lock().push((i, ok.unwrap()));
                    let _ = tx.send(());
                }),
            );
        }
        for _ in 0..4 {
            rx.recv().unwrap();
        }
        assert_eq!(
            *order.lock(),
            vec![(0, true), (1, false), (2, true), (3, false)]
        );
    }

    #[test]
    fn a_job_nobody_waits_for_is_dropped_unverified() {
        let pool = VerifierPool::start(1).unwrap();
        let hash = hash_password("right").unwrap();
        let (tx, rx) = channel();
        let (go, wait) = channel::<()>();
        let (entered, first_running) = channel::<()>();
        let kept = pool.interest();
        // The only thread is held in the first job's callback until the
        // second job's waiter has left.
        let first = tx.clone();
        pool.submit(
            hash.clone(),
            "right".into(),
            &kept,
            Box::new(()),
            Box::new(move |ok| {
                let _ = entered.send(());
                let _ = wait.recv();
                let _ = first.send(("first", ok));
            }),
        );
        first_running.recv().unwrap();
        let gone = pool.interest();
        assert_eq!(pool.awaited(), 1);
        pool.submit(
            hash,
            "right".into(),
            &gone,
            Box::new(()),
            Box::new(move |ok| {
                let _ = tx.send(("second", ok));
            }),
        );
        drop(gone);
        assert_eq!(pool.awaited(), 0, "a job nobody waits for is not counted");
        go.send(()).unwrap();
        assert_eq!(rx.recv().unwrap(), ("first", Some(true)));
        assert_eq!(rx.recv().unwrap(), ("second", None));
    }
}
