//! Answers decided on a card's state as the master has it, held back until
//! the replicas have that state too (`store.min_replicas_acked`).
//!
//! A write whose replicas did not acknowledge it in time answers 503 with
//! the outcome unknown, and stays on the master. The till's retry then
//! finds it there — as a stored outcome to replay, a card already in the
//! asked-for status, a card already bound — and must not answer 200 (nor a
//! refusal that only that write explains) while a failover would still
//! lose it: the retry waits for the replicas first, and answers 503 again
//! if they still lag. Without `min_replicas_acked` this costs nothing
//! (`Store::replicated` answers at once).

use super::context::Ops;
use super::error::EngineError;
use crate::domain::CardNumber;

impl Ops {
    /// `answer`, once the replicas hold everything written to `number`'s
    /// node; `Unavailable` (503) if they do not within the timeout.
    pub(crate) async fn replicated<T>(
        &self,
        number: &CardNumber,
        answer: Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        self.store.replicated(number).await?;
        answer
    }
}
