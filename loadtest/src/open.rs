//! The open model: arrivals at a fixed rate (per step), whatever the server
//! does, each one a transaction of the scenario's mix picked by weight, and
//! every request timed from when it was *due* (wrk2's approach: a stall
//! counts against every request it held back, not only the one it hit).
//!
//! goose cannot do this: its users are closed loops (a user sends its next
//! request when the last one answered), `--throttle-requests` only caps
//! that loop, and its coordinated-omission backfill works per pass of a
//! user through all its weighted transactions. So the schedule runs here,
//! on tokio and reqwest, and shares the scenarios' transactions with goose.
//!
//! The schedule is kept by a thread of its own (a plain sleep until each
//! due time: tens of µs late, not the runtime timer's millisecond); it
//! hands each arrival to the runtime. At most `max_in_flight` transactions
//! run at once: past that the schedule waits for a slot, the sends are
//! late, and their latency still counts from the due time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::calls::Via;
use crate::scenarios::{Ctx, ScenarioName, Tx, UserState};

/// One constant-rate step: `warmup` unmeasured, then `measure` measured.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub rate: f64,
    pub warmup: Duration,
    pub measure: Duration,
}

/// What the schedule did in one step.
#[derive(Debug, Clone, Copy)]
pub struct StepRun {
    pub start: Instant,
    /// The measured window, by due time.
    pub window: (Instant, Instant),
    /// Arrivals the schedule had for the step, and those it sent.
    pub scheduled: u64,
    pub dispatched: u64,
    /// Arrivals that found every in-flight slot taken and waited.
    pub waited_for_slot: u64,
    /// When the last answer of the step came in.
    pub drained: Instant,
}

pub struct Open {
    ctx: Arc<Ctx>,
    /// (transaction, cumulative weight)
    mix: Vec<(Tx, usize)>,
    total_weight: usize,
    http: reqwest::Client,
    base: String,
    max_in_flight: usize,
    /// Idle users' states: an arrival borrows one (so that a refund names a
    /// purchase its state made, and a blocked card is unblocked by the
    /// state that blocked it).
    states: Mutex<Vec<UserState>>,
    next_id: AtomicUsize,
}

impl Open {
    pub fn new(
        ctx: Arc<Ctx>,
        scenario: ScenarioName,
        base: &str,
        max_in_flight: usize,
        timeout: Duration,
    ) -> anyhow::Result<Arc<Open>> {
        let mut total = 0;
        let mix = crate::scenarios::mix(scenario)
            .into_iter()
            .map(|(tx, _, w)| {
                total += w;
                (tx, total)
            })
            .collect();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(max_in_flight)
            .tcp_nodelay(true)
            .build()?;
        Ok(Arc::new(Open {
            ctx,
            mix,
            total_weight: total,
            http,
            base: base.trim_end_matches('/').to_owned(),
            max_in_flight,
            states: Mutex::new(Vec::new()),
            next_id: AtomicUsize::new(0),
        }))
    }

    fn pick(&self) -> Tx {
        let r = rand::random_range(0..self.total_weight);
        self.mix
            .iter()
            .find(|(_, cum)| r < *cum)
            .map_or(self.mix[0].0, |(tx, _)| *tx)
    }

    fn take_state(&self) -> UserState {
        let idle = self.states.lock().unwrap_or_else(|p| p.into_inner()).pop();
        idle.unwrap_or_else(|| UserState::new(self.next_id.fetch_add(1, Ordering::Relaxed)))
    }

    fn put_state(&self, st: UserState) {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(st);
    }

    /// Runs one step from `start` (a moment in the near future); returns
    /// once every arrival of the step has its answer. The recorder measures
    /// the requests due in the step's window.
    pub async fn run_step(self: &Arc<Self>, step: Step, start: Instant) -> StepRun {
        let window = (start + step.warmup, start + step.warmup + step.measure);
        self.ctx.rec.set_window(window.0, window.1);
        let total = step.warmup + step.measure;
        let scheduled = (step.rate * total.as_secs_f64()).floor() as u64;
        let slots = Arc::new(Semaphore::new(self.max_in_flight));
        let handle = tokio::runtime::Handle::current();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let me = self.clone();
        let sem = slots.clone();
        std::thread::Builder::new()
            .name("open-model-schedule".into())
            .spawn(move || {
                let (mut dispatched, mut waited) = (0u64, 0u64);
                for i in 0..scheduled {
                    if me.ctx.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let due = start + Duration::from_secs_f64(i as f64 / step.rate);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    let permit = match sem.clone().try_acquire_owned() {
                        Ok(p) => p,
                        Err(_) => {
                            waited += 1;
                            match handle.block_on(sem.clone().acquire_owned()) {
                                Ok(p) => p,
                                Err(_) => break,
                            }
                        }
                    };
                    let tx = me.pick();
                    let me2 = me.clone();
                    handle.spawn(async move {
                        let _slot = permit;
                        let mut st = me2.take_state();
                        let mut via = Via::Open {
                            http: &me2.http,
                            base: &me2.base,
                            due: Some(due),
                        };
                        // An error answer is recorded where it happened.
                        let _ = tx.run(&mut via, &me2.ctx, &mut st).await;
                        me2.put_state(st);
                    });
                    dispatched += 1;
                }
                let _ = done_tx.send((dispatched, waited));
            })
            .expect("a thread for the schedule");
        let (dispatched, waited_for_slot) = done_rx.await.unwrap_or((0, 0));
        // Every slot back: every arrival answered (or timed out).
        let all = u32::try_from(self.max_in_flight).unwrap_or(u32::MAX);
        let _ = slots.acquire_many(all).await;
        StepRun {
            start,
            window,
            scheduled,
            dispatched,
            waited_for_slot,
            drained: Instant::now(),
        }
    }
}
