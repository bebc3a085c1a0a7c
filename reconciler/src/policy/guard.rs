//! A memory bound on the fleet's own Rego modules.
//!
//! regorus bounds evaluation *time* itself ([`super::EVALUATION_TIME_LIMIT`]), but a single
//! built-in call (`numbers.range(1, 1e9)`) allocates before the timer can look; its own memory
//! limits need its counting allocator as the process's global allocator, which patchops does
//! not use (the content pipeline is tuned for mimalloc). So a watchdog thread samples the
//! process's resident memory every 10 ms while a guarded policy evaluates, and when it has
//! grown by more than [`EVALUATION_MEMORY_LIMIT`] since the last idle sample, it stops the
//! process with an error naming the policy: fail closed (nothing is applied by a process that
//! is about to be killed for memory anyway), and the machine is not taken down with it.
//! Linux only (`/proc/self/statm`); elsewhere the operating system's limits apply.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How much resident memory one evaluation of a fleet policy may add (1 GiB).
pub const EVALUATION_MEMORY_LIMIT: u64 = 1 << 30;

/// Guarded evaluations under way (judging runs on several threads).
static BUSY: AtomicUsize = AtomicUsize::new(0);
/// The policy evaluating most recently, for the message.
static CURRENT: Mutex<Option<Arc<str>>> = Mutex::new(None);
static WATCHDOG: OnceLock<()> = OnceLock::new();

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn watch() {
    let mut idle = resident_bytes().unwrap_or(0);
    loop {
        std::thread::sleep(Duration::from_millis(10));
        let Some(now) = resident_bytes() else { return };
        if BUSY.load(Ordering::SeqCst) == 0 {
            idle = now;
            continue;
        }
        if now > idle.saturating_add(EVALUATION_MEMORY_LIMIT) {
            let policy = CURRENT.lock().ok().and_then(|c| c.clone()).unwrap_or_else(|| "a fleet policy".into());
            // The one way to stop an evaluation that is allocating without end: the process.
            eprintln!(
                "error: policy `{policy}` used more than {} MiB of memory while evaluating, and patchops stopped; nothing more was applied\n  help: make it build less (a comprehension over a huge range, say)",
                EVALUATION_MEMORY_LIMIT >> 20
            );
            std::process::exit(1);
        }
    }
}

/// Marks an evaluation of `policy` under way for as long as it lives.
pub(super) struct Evaluating;

impl Evaluating {
    pub(super) fn start(policy: &Arc<str>) -> Evaluating {
        WATCHDOG.get_or_init(|| {
            let _ = std::thread::Builder::new().name("policy-memory".into()).spawn(watch);
        });
        if let Ok(mut c) = CURRENT.lock() {
            *c = Some(Arc::clone(policy));
        }
        BUSY.fetch_add(1, Ordering::SeqCst);
        Evaluating
    }
}

impl Drop for Evaluating {
    fn drop(&mut self) {
        BUSY.fetch_sub(1, Ordering::SeqCst);
    }
}
