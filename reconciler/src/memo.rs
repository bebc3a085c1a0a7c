//! What a long-running process keeps between cycles (`patchops run`), so that a cycle redoes
//! only what changed: the fleet parsed once per content digest of its files, each catalog's
//! signature checked and its body parsed once per digest of its bytes (the time- and
//! history-dependent checks always run: [`crate::catalog::UnverifiedCatalog::verify_reusing`]),
//! and the plan made once per identical inputs (the fleet, the catalogs and what every platform
//! holds, compared whole). The platforms are observed every cycle; judging, gating and the
//! guards run every cycle too (they depend on the time, the ring history and suspensions).
//!
//! Each entry holds the latest value only: memory does not grow with the number of cycles.
//! One-shot commands run without a memo (nothing to reuse).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::catalog::VerifiedCatalog;
use crate::model::{Fleet, ObjectName};
use crate::plan::Plan;
use crate::platform::Observed;
use crate::vocab::Sha256;

/// The values a daemon reuses between cycles; see the module documentation.
#[derive(Debug, Default)]
pub struct Memo {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    fleet: Option<(Sha256, Arc<Fleet>)>,
    catalogs: BTreeMap<ObjectName, VerifiedCatalog>,
    plan: Option<MemoPlan>,
    hits: Hits,
}

#[derive(Debug)]
struct MemoPlan {
    fleet: Arc<Fleet>,
    /// Each catalog's digest and signer (the plan's fingerprints name both).
    catalogs: Vec<(ObjectName, Sha256, String)>,
    observed: Arc<BTreeMap<ObjectName, Observed>>,
    plan: Plan,
    /// Set when every ring these platforms show running a version had a record in the ring
    /// history (an apply's decision made sure of it): the number of records then. The next
    /// decision at the same inputs need not check again while the count is the same.
    rings_recorded: Option<u64>,
}

/// How often each memo was used instead of recomputing (for tests and the debug log).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Hits {
    /// Fleets reused.
    pub fleet: u64,
    /// Catalog signatures and parses reused.
    pub catalogs: u64,
    /// Plans reused.
    pub plans: u64,
}

impl Memo {
    /// An empty memo.
    pub fn new() -> Memo {
        Memo::default()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves at worst a stale entry, which is only ever used
        // after its key matched: the memo stays usable.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How often each memo was used.
    pub fn hits(&self) -> Hits {
        self.inner().hits
    }

    /// The fleet parsed from files with this content digest, if it is the last one parsed.
    pub(crate) fn fleet(&self, digest: Sha256) -> Option<Arc<Fleet>> {
        let mut inner = self.inner();
        let hit = inner.fleet.as_ref().filter(|(d, _)| *d == digest).map(|(_, f)| Arc::clone(f));
        if hit.is_some() {
            inner.hits.fleet += 1;
        }
        hit
    }

    /// Remembers the fleet parsed from files with this content digest.
    pub(crate) fn keep_fleet(&self, digest: Sha256, fleet: &Arc<Fleet>) {
        self.inner().fleet = Some((digest, Arc::clone(fleet)));
    }

    /// The catalog last verified for this source (its reuse is decided by
    /// [`crate::catalog::UnverifiedCatalog::verify_reusing`], never here).
    pub(crate) fn catalog(&self, source: &ObjectName) -> Option<VerifiedCatalog> {
        self.inner().catalogs.get(source).cloned()
    }

    /// Remembers the catalogs of this cycle (sources no longer in the fleet are forgotten),
    /// counting those whose verification reused the one remembered.
    pub(crate) fn keep_catalogs(&self, catalogs: &BTreeMap<ObjectName, VerifiedCatalog>) {
        let mut inner = self.inner();
        let reused =
            catalogs.iter().filter(|(n, c)| inner.catalogs.get(*n).is_some_and(|e| e.shares_verification(c))).count()
                as u64;
        inner.catalogs = catalogs.clone();
        inner.hits.catalogs += reused;
    }

    /// The plan made from exactly these inputs, if it is the last one made: the same parsed
    /// fleet (the memo's own), catalogs of the same digests, and platforms holding the same
    /// objects (compared whole, field by field).
    pub(crate) fn plan(
        &self,
        fleet: &Arc<Fleet>,
        catalogs: &BTreeMap<ObjectName, VerifiedCatalog>,
        observed: &Arc<BTreeMap<ObjectName, Observed>>,
    ) -> Option<(Plan, Option<u64>)> {
        let mut inner = self.inner();
        let m = inner.plan.as_ref()?;
        let same = Arc::ptr_eq(&m.fleet, fleet)
            && m.catalogs
                .iter()
                .map(|(n, d, k)| (n, *d, k.as_str()))
                .eq(catalogs.iter().map(|(n, c)| (n, c.digest(), c.key_id())))
            && (Arc::ptr_eq(&m.observed, observed) || *m.observed == **observed);
        if !same {
            return None;
        }
        let found = (m.plan.clone(), m.rings_recorded);
        inner.hits.plans += 1;
        Some(found)
    }

    /// Remembers the plan made from these inputs (before judging and gating).
    pub(crate) fn keep_plan(
        &self,
        fleet: &Arc<Fleet>,
        catalogs: &BTreeMap<ObjectName, VerifiedCatalog>,
        observed: &Arc<BTreeMap<ObjectName, Observed>>,
        plan: &Plan,
    ) {
        self.inner().plan = Some(MemoPlan {
            fleet: Arc::clone(fleet),
            catalogs: catalogs.iter().map(|(n, c)| (n.clone(), c.digest(), c.key_id().to_string())).collect(),
            observed: Arc::clone(observed),
            plan: plan.clone(),
            rings_recorded: None,
        });
    }

    /// Notes that every ring the remembered plan's platforms show has a record in the ring
    /// history, which then holds `count` records. Only an apply writes the history, and an
    /// apply changes the platforms (so the next cycle's inputs); a count that differs later
    /// (another process, a restored state.db) makes the next decision check again.
    pub(crate) fn mark_rings_recorded(&self, count: u64) {
        if let Some(m) = self.inner().plan.as_mut() {
            m.rings_recorded = Some(count);
        }
    }
}
