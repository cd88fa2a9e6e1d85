//! The loyalty server's load-test tool: goose scenarios as tills and the
//! contact centre produce them, a data set loaded through the public API,
//! the `/health` yardstick measured in the same run, and the server's own
//! view from `/metrics`. See `loadtest/README.md`.

pub mod calls;
pub mod client;
pub mod dataset;
pub mod prepare;
pub mod promtext;
pub mod redis_info;
pub mod report;
pub mod runner;
pub mod scenarios;
pub mod usersfile;
