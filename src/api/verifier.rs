//! Argon2 verifications on a few dedicated threads, strictly first come,
//! first served. Argon2 is deliberately slow and memory-hungry: it must not
//! run on the async workers, and after a restart thousands of tills queue
//! for it at once. A plain FIFO queue consumed by N threads keeps the order
//! in which requests arrived (a semaphore in front of the blocking pool did
//! not: a request could be answered after a thousand later ones).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use parking_lot::Mutex;

use crate::metrics as m;

/// Called on the verifying thread with the verdict.
pub type Done = Box<dyn FnOnce(bool) + Send>;

struct Job {
    hash: String,
    password: String,
    done: Done,
}

pub struct VerifierPool {
    queue: Sender<Job>,
    depth: Arc<AtomicUsize>,
}

impl VerifierPool {
    /// The threads end when the pool is dropped (their queue closes).
    pub fn start(threads: usize) -> std::io::Result<VerifierPool> {
        let (queue, jobs) = channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        let depth = Arc::new(AtomicUsize::new(0));
        for i in 0..threads.max(1) {
            let jobs = jobs.clone();
            let depth = depth.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || work(&jobs, &depth))?;
        }
        Ok(VerifierPool { queue, depth })
    }

    /// Queues a verification behind every earlier one.
    pub fn submit(&self, hash: String, password: String, done: Done) {
        let queued = self.depth.fetch_add(1, Ordering::Relaxed) + 1;
        m::auth_verification_queue(queued);
        if let Err(returned) = self.queue.send(Job {
            hash,
            password,
            done,
        }) {
            // No thread left (only while shutting down): refuse rather than hang.
            self.depth.fetch_sub(1, Ordering::Relaxed);
            (returned.0.done)(false);
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

fn work(jobs: &Mutex<Receiver<Job>>, depth: &AtomicUsize) {
    lower_priority();
    loop {
        // The lock is held only while taking the next job, in queue order.
        let job = jobs.lock().recv();
        let Ok(job) = job else { return };
        let left = depth.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
        m::auth_verification_queue(left);
        let ok = PasswordHash::new(&job.hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(job.password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        (job.done)(ok);
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
        for i in 0..4 {
            let order = order.clone();
            let tx = tx.clone();
            let password = if i % 2 == 0 { "right" } else { "wrong" };
            pool.submit(
                hash.clone(),
                password.into(),
                Box::new(move |ok| {
                    order.lock().push((i, ok));
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
}
