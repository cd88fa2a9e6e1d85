//! The API integration suite: real HTTP against the real server (port 0).
//! The store backend is chosen by LOYALTY_TEST_BACKEND (memory by default).

mod helpers;

mod ops;
mod redis_races;
mod requests;
