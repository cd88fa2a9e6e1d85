//! The shard actor: the only place that knows about actix. It runs the
//! commands for its cards concurrently — so that store round trips of
//! different cards overlap and pipeline — but those of one card strictly one
//! after another, in arrival order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::commands::{Command, Reply};
use super::error::EngineError;
use super::ops::Ops;
use super::InFlight;
use crate::metrics as m;

pub struct Shard {
    id: usize,
    capacity: usize,
    ops: Arc<Ops>,
    /// Keys with a command running; each queue holds the gates of the
    /// commands waiting behind it.
    busy: HashMap<String, VecDeque<oneshot::Sender<()>>>,
}

impl Shard {
    pub fn new(id: usize, capacity: usize, ops: Arc<Ops>) -> Shard {
        Shard {
            id,
            capacity,
            ops,
            busy: HashMap::new(),
        }
    }

    fn release(&mut self, key: &str) {
        if let Some(waiting) = self.busy.get_mut(key) {
            match waiting.pop_front() {
                // The next command of this key may run now.
                Some(gate) => {
                    let _ = gate.send(());
                }
                None => {
                    self.busy.remove(key);
                }
            }
        }
    }
}

impl Actor for Shard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.capacity);
    }
}

#[derive(Message)]
#[rtype(result = "Result<Reply, EngineError>")]
pub struct Execute(pub Command, pub InFlight);

impl Handler<Execute> for Shard {
    type Result = ResponseActFuture<Self, Result<Reply, EngineError>>;

    fn handle(
        &mut self,
        Execute(command, in_flight): Execute,
        _ctx: &mut Self::Context,
    ) -> Self::Result {
        m::shard_popped(self.id);
        let key = command.ordering_key();
        let gate = match self.busy.get_mut(&key) {
            Some(waiting) => {
                let (open, gate) = oneshot::channel();
                waiting.push_back(open);
                Some(gate)
            }
            None => {
                self.busy.insert(key.clone(), VecDeque::new());
                None
            }
        };
        let ops = self.ops.clone();
        let work = async move {
            if let Some(gate) = gate {
                // The sender lives in `busy` until our turn; it is never
                // dropped without being fired.
                let _ = gate.await;
            }
            let result = ops.execute(command).await;
            drop(in_flight);
            result
        };
        Box::pin(work.into_actor(self).map(move |result, shard, _ctx| {
            shard.release(&key);
            result
        }))
    }
}
