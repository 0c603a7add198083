//! The sync facade: the only place the model touches a threading runtime.
//!
//! The model is written against `Mutex`, `Condvar`, `thread::spawn` and `thread::yield_now`
//! only (no `wait_while`, no timeouts, no statics), so the same code runs under shuttle
//! (deterministic schedules chosen by the runner; the default) and under loom (exhaustive
//! interleavings; feature `loom`). Shared state is always held through `std::sync::Arc`: a
//! loom `Arc` held by a deadlocked thread aborts the test binary (loom #291).

#[cfg(feature = "loom")]
pub use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(feature = "loom")]
pub use loom::thread;

#[cfg(all(feature = "shuttle", not(feature = "loom")))]
pub use shuttle::sync::{Condvar, Mutex, MutexGuard};
#[cfg(all(feature = "shuttle", not(feature = "loom")))]
pub use shuttle::thread;

#[cfg(not(any(feature = "shuttle", feature = "loom")))]
compile_error!("md-model needs a runtime: enable feature `shuttle` (default) or `loom`");

pub use std::sync::Arc;
