//! One command, to the family that answers it.

use super::context::Ops;
use super::error::EngineError;
use super::types::{Command, Reply};

impl Ops {
    pub async fn execute(&self, command: Command) -> Result<Reply, EngineError> {
        // A status change first finishes a replacement its card takes part
        // in (purchases and reads do so where they load the card).
        // (Issue, activate, block and unblock check on the read their write
        // is decided on: `change_status`.)
        if let Command::BindTo { actor, number, .. } = &command {
            if let Some(card) = self.store.get_card(number).await? {
                self.finish_replacement(&card.value, actor).await?;
            }
        }
        match command {
            Command::Balance { number } => self.balance(&number).await.map(Reply::Balance),
            Command::Issue { actor, number } => {
                self.issue(&actor, &number).await.map(|_| Reply::Done)
            }
            Command::BindTo {
                actor,
                number,
                mobile,
            } => self
                .bind(&actor, &number, &mobile)
                .await
                .map(|_| Reply::Done),
            Command::Active { actor, number } => {
                self.activate(&actor, &number).await.map(|_| Reply::Done)
            }
            Command::Block {
                actor,
                number,
                mobile,
                reason_code,
                reason_name,
            } => self
                .block(&actor, &number, mobile.as_ref(), &reason_code, reason_name)
                .await
                .map(|_| Reply::Done),
            Command::Unblock {
                actor,
                number,
                mobile,
                reason_code,
                reason_name,
            } => self
                .unblock(&actor, &number, mobile.as_ref(), &reason_code, reason_name)
                .await
                .map(|_| Reply::Done),
            Command::UpsertContact { code, patch } => {
                self.upsert_contact(code, patch).await.map(Reply::Contact)
            }
            Command::History {
                number,
                before,
                limit,
            } => {
                self.load_card(&number).await?;
                Ok(Reply::History(
                    self.store
                        .card_history(&number, before, limit)
                        .await?
                        .into(),
                ))
            }
            Command::Transactions {
                number,
                before,
                limit,
            } => self
                .transactions(&number, before, limit)
                .await
                .map(Reply::History),
            Command::Calculate {
                number,
                amount,
                bonus_to_pay,
            } => self
                .calculate(&number, amount, bonus_to_pay)
                .await
                .map(Reply::Calculated),
            Command::Confirm(request) => self.confirm(&request).await.map(Reply::Confirmed),
            Command::Cancel {
                actor,
                number,
                purchase_id,
            } => self
                .cancel(&actor, &number, &purchase_id)
                .await
                .map(Reply::Reversed),
            Command::Refund {
                actor,
                number,
                purchase_id,
                refund_id,
                amount,
            } => self
                .refund(&actor, &number, &purchase_id, &refund_id, amount)
                .await
                .map(Reply::Reversed),
            Command::ManualBonus(request) => self.manual_bonus(&request).await.map(Reply::Accrued),
            Command::Hold(request) => self.hold(&request).await.map(Reply::Held),
            Command::Release {
                actor,
                number,
                purchase_id,
            } => self
                .release(&actor, &number, &purchase_id)
                .await
                .map(Reply::Released),
        }
    }
}
