//! The shard: the owner of its cards' order of commands. Commands of one
//! card run strictly one after another, in arrival order; commands of
//! different cards run concurrently, so that store round trips overlap.
//!
//! A card with nothing queued is handed to the calling thread: its command
//! runs there, in a task of its own (so that a caller that goes away does
//! not cut a multi-step command short), without the two thread switches of
//! a trip to the actor and back — measured at ~30% of the balance path.
//! A command for a busy card takes its place in the card's queue at once
//! (that fixes its order) and is handed to the shard's actix actor, which
//! runs it on the shard's thread when its turn comes. This module is the
//! only place that knows about actix.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::context::Ops;
use super::error::EngineError;
use super::types::{Command, Reply};
use crate::metrics as m;

/// Decrements a shard's in-flight count when a command's answer is in (or
/// its caller went away). Carries when the command was admitted.
pub(crate) struct InFlight(Arc<AtomicUsize>, Instant);

impl InFlight {
    /// Counts a command admitted now (the caller has raised `count`).
    pub(crate) fn new(count: Arc<AtomicUsize>) -> InFlight {
        InFlight(count, Instant::now())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The shard's order book: the cards with a command running, each with the
/// gates of the commands waiting behind it. Shared by the callers' threads
/// and the actor.
#[derive(Default)]
pub struct Turns {
    busy: Mutex<HashMap<String, VecDeque<oneshot::Sender<()>>>>,
}

/// Where a command stands for its card.
pub enum Turn {
    /// The card was free: the command holds the card now.
    Now(Holding),
    /// The card is busy: the gate opens when the command's turn comes.
    Later(oneshot::Receiver<()>),
}

impl Turns {
    pub fn enter(self: &Arc<Self>, key: String) -> Turn {
        let mut busy = self.busy.lock();
        match busy.get_mut(&key) {
            Some(waiting) => {
                let (open, gate) = oneshot::channel();
                waiting.push_back(open);
                Turn::Later(gate)
            }
            None => {
                busy.insert(key.clone(), VecDeque::new());
                Turn::Now(Holding {
                    turns: self.clone(),
                    key,
                })
            }
        }
    }

    /// Passes the card to the next waiting command (skipping any whose
    /// caller is gone), or frees it.
    fn release(&self, key: &str) {
        let mut busy = self.busy.lock();
        if let Some(waiting) = busy.get_mut(key) {
            while let Some(gate) = waiting.pop_front() {
                if gate.send(()).is_ok() {
                    return;
                }
            }
            busy.remove(key);
        }
    }
}

/// A command's hold on its card: passed on when dropped, however the
/// command ended.
pub struct Holding {
    turns: Arc<Turns>,
    key: String,
}

impl Holding {
    fn after_gate(turns: Arc<Turns>, key: String) -> Holding {
        Holding { turns, key }
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.turns.release(&self.key);
    }
}

/// Runs a command that holds its card on the calling thread.
pub async fn run_here(
    ops: Arc<Ops>,
    metrics: Arc<m::ShardMetrics>,
    command: Command,
    holding: Holding,
    in_flight: InFlight,
) -> Result<Reply, EngineError> {
    let task = actix_rt::spawn(async move {
        metrics.popped(in_flight.1.elapsed());
        let result = ops.execute(command).await;
        drop(holding);
        drop(in_flight);
        result
    });
    task.await
        .unwrap_or_else(|e| Err(EngineError::Internal(format!("command task failed: {e}"))))
}

pub struct Shard {
    capacity: usize,
    ops: Arc<Ops>,
    turns: Arc<Turns>,
    metrics: Arc<m::ShardMetrics>,
}

impl Shard {
    pub fn new(
        capacity: usize,
        ops: Arc<Ops>,
        turns: Arc<Turns>,
        metrics: Arc<m::ShardMetrics>,
    ) -> Shard {
        Shard {
            capacity,
            ops,
            turns,
            metrics,
        }
    }
}

impl Actor for Shard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.capacity);
    }
}

/// A queued command: runs once `gate` opens.
#[derive(Message)]
#[rtype(result = "Result<Reply, EngineError>")]
pub struct Execute {
    pub command: Command,
    pub key: String,
    pub gate: oneshot::Receiver<()>,
    pub in_flight: InFlight,
}

impl Handler<Execute> for Shard {
    type Result = ResponseFuture<Result<Reply, EngineError>>;

    fn handle(&mut self, msg: Execute, _ctx: &mut Self::Context) -> Self::Result {
        let (ops, turns, metrics) = (self.ops.clone(), self.turns.clone(), self.metrics.clone());
        Box::pin(async move {
            // The sender lives in `Turns` until our turn; it is only
            // dropped unfired if the whole shard goes away.
            if msg.gate.await.is_err() {
                return Err(EngineError::Stopped);
            }
            let holding = Holding::after_gate(turns, msg.key);
            metrics.popped(msg.in_flight.1.elapsed());
            let result = ops.execute(msg.command).await;
            drop(holding);
            drop(msg.in_flight);
            result
        })
    }
}
