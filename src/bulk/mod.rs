//! Bulk data: NDJSON framing, the answer of a bulk load, and the dump
//! format with its export and import (docs/api.md §8). Shared by the HTTP
//! handlers and the `loyalty export` / `loyalty import` commands.

pub mod cli;
pub mod export;
pub mod format;
pub mod import;
pub mod import_rules;
pub mod lines;
pub mod report;
