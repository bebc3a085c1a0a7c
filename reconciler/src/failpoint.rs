//! Named points where a test makes the process abort, as a crash or `kill -9` would, to prove
//! that the next run converges (no duplicate, no half-made object, no lost work).
//!
//! A point is armed once per process ([`arm`]; the command line reads `PATCHOPS_FAILPOINT`,
//! `NAME` or `NAME:N` for the N-th time the point is reached). Unarmed, [`hit`] costs one
//! atomic load. The points sit where a crash is most telling: between the steps of the apply
//! engine's journal and inside each platform client's multi-request writes.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// Every point, with where it is.
pub const POINTS: &[(&str, &str)] = &[
    ("after-content", "the installer was verified; nothing reached the platform"),
    ("after-create", "the platform object was created, before it was assigned"),
    ("after-assign", "the new assignment was made, before other versions left the group"),
    ("before-audit", "the platform changes were made, before the audit record"),
    ("step", "any journal step was recorded (with :N, the N-th step of the run)"),
    ("intune-before-commit", "an Intune app exists and its content was uploaded, not committed"),
    ("intune-before-content-version", "an Intune app's file was committed, not yet its content version"),
    ("configmgr-after-copy", "the content is on the ConfigMgr share, no application exists yet"),
    ("wsus-after-stage", "a WSUS request was staged on the server, before it ran"),
    ("wsus-server-signing", "the embedded WSUS server made a CAB, before it was signed"),
];

struct Armed {
    name: &'static str,
    nth: u32,
    count: AtomicU32,
}

static ARMED: OnceLock<Armed> = OnceLock::new();

/// A point where the process pauses instead (`PATCHOPS_PAUSEPOINT=NAME:MILLIS`, the first hit
/// only): a test then signals the process while work is in flight.
static PAUSE: OnceLock<(&'static str, u64, AtomicU32)> = OnceLock::new();

/// A `PATCHOPS_FAILPOINT` or `PATCHOPS_PAUSEPOINT` that names no point or is malformed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadSpec(String);

/// Arms a pause at `spec` (`NAME:MILLIS`) for this process.
pub fn arm_pause(spec: &str) -> Result<(), BadSpec> {
    let (name, ms) = spec.split_once(':').ok_or_else(|| BadSpec(format!("pause point `{spec}` is not NAME:MILLIS")))?;
    let ms = ms.parse::<u64>().map_err(|_| BadSpec(format!("`{ms}` in pause point `{spec}` is not milliseconds")))?;
    let Some((name, _)) = POINTS.iter().find(|(n, _)| *n == name) else {
        let known: Vec<&str> = POINTS.iter().map(|(n, _)| *n).collect();
        return Err(BadSpec(format!("unknown pause point `{name}`; the points are {}", known.join(", "))));
    };
    let _ = PAUSE.set((name, ms.min(60_000), AtomicU32::new(0)));
    Ok(())
}

/// Arms the point `spec` (`NAME` or `NAME:N`) for this process; an unknown name is an error
/// listing the known ones. Arming twice keeps the first.
pub fn arm(spec: &str) -> Result<(), BadSpec> {
    let (name, nth) = match spec.split_once(':') {
        Some((name, n)) => {
            (name, n.parse::<u32>().map_err(|_| BadSpec(format!("`{n}` in fail point `{spec}` is not a count")))?)
        }
        None => (spec, 1),
    };
    let Some((name, _)) = POINTS.iter().find(|(n, _)| *n == name) else {
        let known: Vec<&str> = POINTS.iter().map(|(n, _)| *n).collect();
        return Err(BadSpec(format!("unknown fail point `{name}`; the points are {}", known.join(", "))));
    };
    let _ = ARMED.set(Armed { name, nth: nth.max(1), count: AtomicU32::new(0) });
    Ok(())
}

/// Aborts the process if `name` is the armed point and this is its N-th hit.
pub fn hit(name: &str) {
    if let Some((pause, ms, count)) = PAUSE.get() {
        if *pause == name && count.fetch_add(1, Ordering::SeqCst) == 0 {
            eprintln!("patchops: pause point {name} reached; pausing {ms} ms (test hook)");
            std::thread::sleep(std::time::Duration::from_millis(*ms));
        }
    }
    let Some(armed) = ARMED.get() else { return };
    if armed.name == name && armed.count.fetch_add(1, Ordering::SeqCst) + 1 == armed.nth {
        eprintln!("patchops: fail point {name}:{} reached; aborting (test hook)", armed.nth);
        std::process::abort();
    }
}
