//! Rollout pacing: which changes of a plan must wait, and until when.
//!
//! - A ring gets a new version only after the ring before it has run that version for its
//!   `soak` time (`RingSoaking`, with the time it opens), and never in the same run as the ring
//!   before it changes (`PreviousRingPending`).
//! - Outside every maintenance window of the rollout, changes wait for the next window
//!   (`MaintenanceWindow`).
//! - At most `maxChangesPerStep` changes per platform and rollout are applied in one run; the
//!   rest wait for the next run (`ChangeBudget`).
//!
//! Waiting is planned, never slept on: a later run (or the daemon) picks the change up.

use chrono::{DateTime, Datelike, Duration, NaiveTime, Utc};

use super::{ActionKind, Plan, Waiting};
use crate::model::kinds::{MaintenanceWindow, Weekday};
use crate::model::Fleet;

/// When a ring reached a version: (product, platform, ring, version) → time, if recorded.
pub trait RingHistory {
    /// The time, if patchops recorded it.
    fn reached_at(&self, product: &str, platform: &str, ring: &str, version: &str) -> Option<DateTime<Utc>>;
}

impl<F: Fn(&str, &str, &str, &str) -> Option<DateTime<Utc>>> RingHistory for F {
    fn reached_at(&self, product: &str, platform: &str, ring: &str, version: &str) -> Option<DateTime<Utc>> {
        self(product, platform, ring, version)
    }
}

/// What each ring runs, as the platforms show it: (fleet product, platform, ring, version, and
/// since when, where the platform records it) for every managed object assigned to a ring's
/// group. When the ring history has no record of one, `apply` records the platform's time, or
/// else the first time it sees it, so that a lost record delays the next ring by at most one
/// soak instead of releasing it at once.
pub fn observed_ring_versions(
    fleet: &Fleet,
    observed: &std::collections::BTreeMap<crate::model::ObjectName, crate::platform::Observed>,
) -> Vec<ObservedRing> {
    // Managed, whole objects by (platform, catalog product): one pass over what was observed,
    // so this stays linear in fleet and platform size (as the planner's index does).
    let mut index: crate::intern::FastMap<(&crate::model::ObjectName, &crate::model::ProductId), Vec<_>> =
        crate::intern::FastMap::default();
    for (platform, o) in observed {
        for obj in &o.objects {
            if let Some(m) = obj.managed_complete() {
                index.entry((platform, &m.product)).or_default().push(obj);
            }
        }
    }
    let mut out = Vec::new();
    for product in &fleet.products {
        for target in &product.targets {
            let Some(rollout) = fleet.rollouts.get(&target.rollout) else { continue };
            let Some(objects) = index.get(&(&target.spec.platform, &product.spec.product)) else { continue };
            for ring in &target.rings {
                let Some(group) = rollout.group(ring, &target.spec.platform) else { continue };
                let running = objects.iter().find_map(|obj| {
                    let m = obj.managed_complete()?;
                    let a = obj.assignments.iter().find(|x| x.group == group)?;
                    Some((m.version.clone(), a.since))
                });
                if let Some((version, since)) = running {
                    out.push(ObservedRing {
                        product: product.name().to_string(),
                        platform: target.spec.platform.to_string(),
                        ring: ring.to_string(),
                        version,
                        since,
                    });
                }
            }
        }
    }
    out
}

/// A ring running a version, as a platform shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedRing {
    /// The fleet Product.
    pub product: String,
    /// The Platform.
    pub platform: String,
    /// The ring.
    pub ring: String,
    /// The version it runs.
    pub version: String,
    /// Since when, where the platform records it.
    pub since: Option<DateTime<Utc>>,
}

/// Marks the changes of `plan` that must wait, then recounts its summary.
pub fn gate(plan: &mut Plan, fleet: &Fleet, history: &dyn RingHistory, now: DateTime<Utc>) {
    // Rings first: what ring i-1 does in this very plan decides ring i. Only a version change in
    // the previous ring holds this one back (a settings fix there does not).
    let changing: crate::intern::FastSet<(super::Text, super::Text, super::Text)> = plan
        .actions
        .iter()
        .filter(|a| matches!(a.action, ActionKind::Publish | ActionKind::Update))
        .filter_map(|a| Some((a.product.clone(), a.platform.clone(), a.ring.clone()?)))
        .collect();
    let mut budget: crate::intern::FastMap<(String, String), u32> = crate::intern::FastMap::default();
    for a in plan.actions.iter_mut() {
        if a.action == ActionKind::None || !a.denied.is_empty() {
            continue;
        }
        let Some(product) = fleet.product(&a.product) else { continue };
        let Some(target) = product.targets.iter().find(|t| t.spec.platform.as_str() == &*a.platform) else {
            continue;
        };
        let Some(rollout) = fleet.rollouts.get(&target.rollout) else { continue };
        if matches!(a.action, ActionKind::Publish | ActionKind::Update) {
            if let (Some(ring), Some(version)) = (a.ring.as_deref(), a.version.as_deref()) {
                if let Some(pos) = target.rings.iter().position(|r| r.as_str() == ring).filter(|p| *p > 0) {
                    let prev = &target.rings[pos - 1];
                    let prev_changes =
                        changing.contains(&(a.product.clone(), a.platform.clone(), prev.as_str().into()));
                    let soak = rollout
                        .spec
                        .rings
                        .iter()
                        .find(|r| &r.name == prev)
                        .and_then(|r| r.soak)
                        .and_then(|d| Duration::from_std(d.0).ok())
                        .unwrap_or_else(Duration::zero);
                    if prev_changes {
                        a.waiting = Some(Box::new(Waiting {
                            reason: "PreviousRingPending".into(),
                            message: format!(
                                "ring {prev} gets {version} first{}",
                                if soak > Duration::zero() {
                                    format!(
                                        ", then soaks for {}",
                                        crate::vocab::duration::readable(soak.to_std().unwrap_or_default())
                                    )
                                } else {
                                    String::new()
                                }
                            ),
                            until: None,
                        }));
                        continue;
                    }
                    // Fail closed: without a record of when the previous ring got this version
                    // (a crash before the history write, a lost or fresh state directory), the
                    // soak counts from now. `apply` records the first time it observes a ring
                    // running a version (`observed_ring_versions`), so the wait then ends.
                    let reached = history.reached_at(&a.product, &a.platform, prev.as_str(), version);
                    if soak > Duration::zero() {
                        let (opens, message) = match reached {
                            Some(reached) => (
                                reached.checked_add_signed(soak),
                                format!("ring {prev} has run {version} since {}", reached.format("%Y-%m-%d %H:%M UTC")),
                            ),
                            None => (
                                now.checked_add_signed(soak),
                                format!(
                                    "there is no record of when ring {prev} got {version}; its soak counts from now"
                                ),
                            ),
                        };
                        // A soak too long to be a date (validation bounds it) never opens.
                        if opens.is_none_or(|opens| opens > now) {
                            a.waiting = Some(Box::new(Waiting { reason: "RingSoaking".into(), message, until: opens }));
                            continue;
                        }
                    }
                }
            }
        }
        if let Some(opens) = next_window(&rollout.spec.maintenance_windows, now) {
            a.waiting = Some(Box::new(Waiting {
                reason: "MaintenanceWindow".into(),
                message: format!("outside the maintenance windows of rollout {}", rollout.metadata.name),
                until: Some(opens),
            }));
            continue;
        }
        if let Some(max) = rollout.spec.max_changes_per_step {
            let used = budget.entry((rollout.metadata.name.to_string(), a.platform.to_string())).or_default();
            if *used >= max {
                a.waiting = Some(Box::new(Waiting {
                    reason: "ChangeBudget".into(),
                    message: format!("rollout {} allows {max} changes per platform and run", rollout.metadata.name),
                    until: None,
                }));
                continue;
            }
            *used += 1;
        }
    }
    plan.recount();
}

/// `None` when `now` is inside a window (or there are none); otherwise when the next one opens.
pub fn next_window(windows: &[MaintenanceWindow], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if windows.is_empty() {
        return None;
    }
    let mut next: Option<DateTime<Utc>> = None;
    // A window may have opened up to a week ago (a long one) or open within a week. Days and
    // start times are the window's own time zone's: a window at 22:00 Europe/Berlin opens at
    // 21:00 UTC in winter and 20:00 UTC in summer.
    for w in windows {
        let tz = w.tz();
        let Ok(start_time) = NaiveTime::parse_from_str(&w.start, "%H:%M") else { continue };
        let local_now = now.with_timezone(&tz);
        for day in -7..=7i64 {
            let date = (local_now + Duration::days(day)).date_naive();
            if !w.days.is_empty() && !w.days.iter().any(|d| weekday(*d) == date.weekday()) {
                continue;
            }
            let Some(start) = local_start(&tz, date.and_time(start_time)) else { continue };
            let length = Duration::from_std(w.duration.0).unwrap_or_else(|_| Duration::zero());
            let end = start.checked_add_signed(length).unwrap_or(start);
            if start <= now && now < end {
                return None;
            }
            if start > now && next.is_none_or(|n| start < n) {
                next = Some(start);
            }
        }
    }
    next
}

/// When a local wall-clock time happens, in UTC: the first of two when the clocks go back; on
/// the day the clocks go forward past it, the moment they do (as a scheduler would run it).
fn local_start(tz: &chrono_tz::Tz, local: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
    use chrono::TimeZone;
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        chrono::LocalResult::None => {
            // In the gap: the first minute after it that exists.
            (1..=180)
                .find_map(|m| tz.from_local_datetime(&(local + Duration::minutes(m))).earliest())
                .map(|t| t.with_timezone(&Utc))
        }
    }
}

fn weekday(d: Weekday) -> chrono::Weekday {
    match d {
        Weekday::Mon => chrono::Weekday::Mon,
        Weekday::Tue => chrono::Weekday::Tue,
        Weekday::Wed => chrono::Weekday::Wed,
        Weekday::Thu => chrono::Weekday::Thu,
        Weekday::Fri => chrono::Weekday::Fri,
        Weekday::Sat => chrono::Weekday::Sat,
        Weekday::Sun => chrono::Weekday::Sun,
    }
}

/// Holds back every change `held` picks (it returns the message to show): the change waits with
/// `reason` (`Suspended`, `BackingOff`) and no opening time — it is planned and shown, never
/// applied, while it is held. Pure: what is held is an input.
pub fn hold(plan: &mut Plan, reason: &str, held: &dyn Fn(&str, &str) -> Option<String>) {
    for a in plan.actions.iter_mut().filter(|a| a.action != ActionKind::None) {
        if let Some(message) = held(&a.product, &a.platform) {
            a.waiting = Some(Box::new(super::Waiting { reason: reason.into(), message, until: None }));
        }
    }
    plan.recount();
}
