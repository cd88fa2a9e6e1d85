//! Pure business rules: parsing newtypes, reference values, the card state
//! machine and the role × reason tables. Nothing here performs IO or reads
//! the clock; time is always passed in.

pub mod card;
pub mod compact;
pub mod contact;
pub mod error;
pub mod history;
pub mod hold;
pub mod ids;
pub mod ledger;
pub mod money;
pub mod policy;
pub mod purchase;
pub mod reference;

pub use card::{BindCheck, BlockInfo, Card};
pub use contact::{Contact, ContactField, ContactPatch};
pub use error::{ErrorKey, RuleError};
pub use history::{BonusMovement, HistoryEntry, Operation};
pub use hold::Hold;
pub use ids::{CardNumber, CardNumberFormat, ContactCode, MobileNumber};
pub use ledger::{Allocation, Bucket, Ledger, Lot};
pub use money::Amount;
pub use policy::{Actor, Method};
pub use reference::{
    BlockReason, BonusStatus, BonusType, CardStatus, CardType, Category, Role, UnblockReason,
};
