//! The API integration suite: real HTTP against the real server (port 0).
//! The store backend is chosen by LOYALTY_TEST_BACKEND (memory by default).

mod card_support;
mod helpers;

mod active;
mod balance;
mod bindto;
mod block;
mod history;
mod issue;
mod ops;
mod replacement;
mod requests;
mod state_machine;
mod unblock;
