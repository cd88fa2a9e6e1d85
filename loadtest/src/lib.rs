//! The loyalty server's load-test tool: an open-model executor (arrivals
//! at a rate, latency from each request's due time) and goose's closed
//! model over the same scenarios, a capacity search, gates that set the
//! exit code, a data set loaded through the public API, the `/health`
//! yardstick, the server's own view from `/metrics` and its CPU, and
//! reports that stand alone. See `loadtest/README.md`.

pub mod calls;
pub mod capacity;
pub mod client;
pub mod compare;
pub mod cpu;
pub mod dataset;
pub mod gates;
pub mod html;
pub mod manifest;
pub mod open;
pub mod prepare;
pub mod promtext;
pub mod record;
pub mod redis_info;
pub mod report;
pub mod runner;
pub mod scenarios;
pub mod series;
pub mod usersfile;
