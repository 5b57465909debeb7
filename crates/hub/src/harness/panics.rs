//! Telling the hub's panics from the simulated clients'.
//!
//! The hub catches panics (yrs's, and a document actor's as a last line of
//! defence), so a panic inside it can go unnoticed from outside. Every panic
//! counts here, except those raised while a simulated client works on its
//! own document (a yrs quirk on the client side says nothing about the hub).
//! Under libFuzzer the previous hook aborts the process, so a hub panic is a
//! crash there; in the property tests [`Rig::run`](super::Rig::run) reports
//! it as a violation.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Violation;

static HUB_PANICS: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();

thread_local! {
    static IN_CLIENT: Cell<bool> = const { Cell::new(false) };
}

/// Installs the counting hook in front of the current one (once per process).
pub(crate) fn install() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_CLIENT.get() {
                return;
            }
            HUB_PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// Panics counted so far (outside client code).
pub(crate) fn count() -> usize {
    HUB_PANICS.load(Ordering::SeqCst)
}

/// Runs client-side code; `None` if it panicked.
pub(crate) fn in_client<T>(f: impl FnOnce() -> T) -> Option<T> {
    IN_CLIENT.set(true);
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    IN_CLIENT.set(false);
    r.ok()
}

/// Runs a check, reporting a panic the code under test caught itself (yrs's
/// decode inside the content path, say) as [`Violation::Panicked`].
pub(crate) fn counted(check: impl FnOnce() -> Result<(), Violation>) -> Result<(), Violation> {
    install();
    let before = count();
    let result = check();
    match count() - before {
        0 => result,
        n => Err(Violation::Panicked(n)),
    }
}
