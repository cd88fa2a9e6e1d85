//! Wraps any store to time each operation and count its errors, so every
//! backend reports the same store metrics. Every method of every concern
//! is forwarded through `timed` under its own name (`forward.rs`): a cached
//! read is timed apart from the read (a hit is not a Redis round trip).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use super::{Store, StoreError};
use crate::metrics as m;

pub struct Instrumented(pub Arc<dyn Store>);

async fn timed<T>(
    operation: &'static str,
    f: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = f.await;
    let error = result.as_ref().err().map(|e| match e {
        StoreError::Unavailable(_) => "unavailable",
        StoreError::OutcomeUnknown(_) => "outcome_unknown",
        StoreError::Corrupt { .. } => "corrupt",
    });
    m::store_operation(operation, started.elapsed().as_secs_f64(), error);
    result
}

crate::forward_all!(Instrumented, |s| s.0, timed);
