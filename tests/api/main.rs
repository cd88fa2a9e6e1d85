//! The API integration suite: real HTTP against the real server (port 0).
//! The store backend is chosen by LOYALTY_TEST_BACKEND (memory by default).

mod abuse_support;
mod access_support;
mod bulk_support;
mod card_support;
mod documented;
mod documented_rules;
mod helpers;

mod active;
mod admin;
mod argon2_queue;
mod balance;
mod bindto;
mod block;
mod bulk;
mod bulk_cli;
mod bulk_transfer;
mod cache_coherence;
mod concurrency;
mod contacts;
mod exactly_once;
mod fencing;
mod fuzz;
mod history;
mod history_effects;
mod issue;
mod lockout;
mod messages;
mod ops;
mod process;
mod purchase_checks;
mod purchases;
mod redis_races;
mod reload;
mod replacement;
mod requests;
mod roles;
mod slowloris;
mod state_machine;
mod store_startup;
mod tls;
mod tls_flood;
mod transport;
mod unblock;
