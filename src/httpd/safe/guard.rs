//! Panics stop at the edge: a panic unwinding into httpd's C frames would
//! abort the whole server.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `body`, turning a panic into `fallback` (NULL from a map, an error
/// string from a directive, DECLINED from a hook). The panic message itself
/// reaches the error log through std's hook, which writes to stderr.
pub fn guard<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}
