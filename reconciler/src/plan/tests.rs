use std::collections::BTreeMap;

use super::*;
use crate::catalog::Sha256;
use crate::platform::{ObservedAssignment, ObservedObject, TrackingMarker};
use crate::testutil::{catalog_json, fleet, verified};

const BASE: &str = r#"
apiVersion: patchops.io/v1alpha1
kind: Platform
metadata: { name: intune }
spec: { type: intune, endpoint: embedded }
---
apiVersion: patchops.io/v1alpha1
kind: Rollout
metadata: { name: std }
spec:
  rings:
    - name: pilot
      groups: [{ platform: intune, group: { name: g-pilot } }]
    - name: broad
      groups: [{ platform: intune, group: { name: g-broad } }]
---
apiVersion: patchops.io/v1alpha1
kind: CatalogSource
metadata: { name: example }
spec:
  url: catalog.json
  trustedKeys: ["RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"]
"#;

fn product(name: &str, id: &str, version: &str, extra: &str) -> String {
    format!(
        "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata: {{ name: {name} }}\nspec:\n  product: {id}\n  version: \"{version}\"\n  targets:\n    - platform: intune\n{extra}"
    )
}

fn run(products: &[String], observed: Observed) -> Plan {
    let mut files = vec![("base.yaml", BASE)];
    for p in products {
        files.push(("p.yaml", p.as_str()));
    }
    // Each product in its own file so documents do not collide.
    let owned: Vec<(String, &str)> = files.iter().enumerate().map(|(i, (_, t))| (format!("f{i}.yaml"), *t)).collect();
    let refs: Vec<(&str, &str)> = owned.iter().map(|(p, t)| (p.as_str(), *t)).collect();
    let fleet = fleet(&refs);
    let catalog = verified(&catalog_json(7, &[("vendor.app", &["1.9", "1.10", "2.0"]), ("vendor.other", &["5.0"])]));
    let catalogs = BTreeMap::from([(catalog.source_name().clone(), catalog)]);
    let observed = BTreeMap::from([(ObjectName::new("intune").unwrap_or_else(|_| unreachable!()), observed)]);
    let provenance = Provenance::Directory { path: "x".into(), head: None };
    plan(PlanInput {
        fleet: &fleet,
        source: (&provenance, Sha256::digest(b"fleet")),
        catalogs: &catalogs,
        observed: &observed,
    })
}

fn managed(
    id: &str,
    product: &str,
    version: &str,
    groups: &[&str],
    fields: BTreeMap<String, String>,
) -> ObservedObject {
    ObservedObject {
        relationships: Vec::new(),
        incomplete: None,
        id: id.into(),
        display_name: format!("{product} {version}"),
        marker: Some(TrackingMarker {
            managed_by: "patchops".into(),
            product: crate::model::ProductId::new(product).unwrap_or_else(|_| unreachable!()),
            version: version.into(),
            commit: None,
            // The digest `catalog_json` gives the installer of `version`.
            content_digest: Sha256::parse(&format!("{:064x}", version.len())).unwrap_or_else(|_| unreachable!()),
        }),
        fields: fields.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        assignments: groups
            .iter()
            .map(|g| ObservedAssignment {
                since: None,
                group: (*g).into(),
                fields: [("intent".into(), "required".into()), ("restart".into(), "basedOnReturnCode".into())]
                    .into_iter()
                    .collect(),
            })
            .collect(),
    }
}

/// The fields the planner wants for vendor.app `version`, taken from a first plan.
fn desired_fields(version: &str) -> BTreeMap<String, String> {
    let p = run(&[product("app", "vendor.app", version, "")], Observed::default());
    p.actions[0]
        .changes
        .iter()
        .filter(|c| !c.field.starts_with("assignment."))
        .filter_map(|c| Some((c.field.to_string(), c.to.as_deref()?.to_string())))
        .collect()
}

fn kinds(p: &Plan) -> Vec<(ActionKind, Option<String>)> {
    p.actions.iter().map(|a| (a.action, a.ring.as_deref().map(str::to_string))).collect()
}

#[test]
fn empty_platform_gets_a_publish_per_ring_in_rollout_order() {
    let p = run(&[product("app", "vendor.app", "latest", "")], Observed::default());
    assert_eq!(
        kinds(&p),
        vec![(ActionKind::Publish, Some("pilot".into())), (ActionKind::Publish, Some("broad".into()))]
    );
    assert_eq!(p.actions[0].version.as_deref(), Some("2.0"));
    assert_eq!(&*p.actions[0].reason, "NotPublished");
    assert!(p.actions[0].changes.iter().any(|c| &*c.field == "version" && c.to.as_deref() == Some("2.0")));
    assert_eq!(p.summary.publish, 2);
    assert!(p.has_changes());
}

#[test]
fn version_ranges_use_windows_ordering() {
    let p = run(&[product("app", "vendor.app", ">=1.9, <2", "")], Observed::default());
    assert_eq!(p.actions[0].version.as_deref(), Some("1.10"), "1.10 is higher than 1.9");
}

#[test]
fn matching_objects_plan_nothing() {
    let obj = managed("obj-1", "vendor.app", "2.0", &["g-pilot", "g-broad"], desired_fields("latest"));
    let p = run(&[product("app", "vendor.app", "latest", "")], Observed { objects: vec![obj], ..Default::default() });
    assert_eq!(kinds(&p), vec![(ActionKind::None, Some("pilot".into())), (ActionKind::None, Some("broad".into()))]);
    assert!(!p.has_changes());
    assert_eq!(p.summary.unchanged, 2);
}

#[test]
fn a_newer_catalog_version_is_an_update_with_a_version_diff() {
    let obj = managed("obj-1", "vendor.app", "1.10", &["g-pilot", "g-broad"], desired_fields("1.10"));
    let p = run(&[product("app", "vendor.app", "latest", "")], Observed { objects: vec![obj], ..Default::default() });
    assert_eq!(p.actions[0].action, ActionKind::Update);
    assert_eq!(&*p.actions[0].reason, "NewVersion");
    let v = p.actions[0].changes.iter().find(|c| &*c.field == "version");
    assert_eq!(v.map(|c| (c.from.as_deref(), c.to.as_deref())), Some((Some("1.10"), Some("2.0"))));
    assert_eq!(p.actions[0].object_id.as_deref(), Some("obj-1"));
}

#[test]
fn pinning_below_the_published_version_is_a_downgrade_update() {
    let obj = managed("obj-1", "vendor.app", "2.0", &["g-pilot", "g-broad"], desired_fields("2.0"));
    let p = run(&[product("app", "vendor.app", "1.9", "")], Observed { objects: vec![obj], ..Default::default() });
    assert_eq!(p.actions[0].action, ActionKind::Update);
    assert_eq!(&*p.actions[0].reason, "VersionPinnedLower");
    // Shown as a downgrade, each old value beside its new one.
    let text = render::text(&p, false, false);
    assert!(text.contains("~ update      intune / pilot [g-pilot]  1.9 (downgrade from 2.0)"), "{text}");
    assert!(text.contains("      ~ version: 2.0 → 1.9\n"), "{text}");
    let md = render::markdown(&p, render::MARKDOWN_LIMIT);
    assert!(md.contains("| 1.9 ⚠️ downgrade from 2.0 |"), "{md}");
    // An update to a higher version is no downgrade.
    let obj = managed("obj-1", "vendor.app", "1.9", &["g-pilot", "g-broad"], desired_fields("1.9"));
    let p = run(&[product("app", "vendor.app", "2.0", "")], Observed { objects: vec![obj], ..Default::default() });
    assert!(!render::text(&p, false, false).contains("downgrade"));
}

#[test]
fn changed_settings_are_a_reconfigure_with_field_diffs() {
    let obj = managed("obj-1", "vendor.app", "2.0", &["g-pilot", "g-broad"], desired_fields("latest"));
    let extra = "      install: { intent: available }\n";
    let p =
        run(&[product("app", "vendor.app", "latest", extra)], Observed { objects: vec![obj], ..Default::default() });
    assert_eq!(p.actions[0].action, ActionKind::Reconfigure);
    assert_eq!(
        p.actions[0].changes,
        vec![FieldChange {
            field: "assignment.intent".into(),
            from: Some("required".into()),
            to: Some("available".into())
        }]
    );
}

#[test]
fn a_removed_ring_retires_only_its_assignment() {
    let obj = managed("obj-1", "vendor.app", "2.0", &["g-pilot", "g-broad"], desired_fields("latest"));
    let extra = "      rings: [pilot]\n";
    let p =
        run(&[product("app", "vendor.app", "latest", extra)], Observed { objects: vec![obj], ..Default::default() });
    assert_eq!(kinds(&p), vec![(ActionKind::None, Some("pilot".into())), (ActionKind::Retire, Some("broad".into()))]);
    assert_eq!(&*p.actions[1].reason, "RingRemoved");
}

#[test]
fn a_product_removed_from_the_fleet_is_retired_everywhere() {
    let obj = managed("obj-9", "vendor.other", "5.0", &["g-pilot", "g-broad"], BTreeMap::new());
    let p = run(&[product("app", "vendor.app", "latest", "")], Observed { objects: vec![obj], ..Default::default() });
    let retires: Vec<_> = p.actions.iter().filter(|a| a.action == ActionKind::Retire).collect();
    assert_eq!(retires.len(), 2);
    assert!(retires.iter().all(|a| &*a.reason == "RemovedFromFleet" && a.object_id.as_deref() == Some("obj-9")));
}

#[test]
fn retire_true_retires_the_product() {
    let obj = managed("obj-1", "vendor.app", "2.0", &["g-pilot"], desired_fields("latest"));
    let extra = "  retire: true\n";
    let text = product("app", "vendor.app", "latest", "").replace("  targets:", &format!("{extra}  targets:"));
    let p = run(&[text], Observed { objects: vec![obj], ..Default::default() });
    assert_eq!(kinds(&p), vec![(ActionKind::Retire, Some("pilot".into()))]);
    assert_eq!(&*p.actions[0].reason, "RetireRequested");
}

#[test]
fn unmanaged_objects_are_never_touched() {
    let mut obj = managed("foreign", "vendor.other", "5.0", &["g-pilot"], BTreeMap::new());
    obj.marker = None;
    let mut other_tool = managed("other-tool", "vendor.other", "5.0", &["g-pilot"], BTreeMap::new());
    if let Some(m) = other_tool.marker.as_mut() {
        m.managed_by = "someone-else".into();
    }
    let p = run(
        &[product("app", "vendor.app", "latest", "")],
        Observed { objects: vec![obj, other_tool], ..Default::default() },
    );
    assert!(p.actions.iter().all(|a| a.action != ActionKind::Retire));
    assert_eq!(p.unmanaged.get("intune"), Some(&2));
}

#[test]
fn a_product_missing_from_the_catalog_is_an_error_and_does_not_retire_it() {
    let obj = managed("obj-1", "vendor.app", "2.0", &["g-pilot", "g-broad"], desired_fields("latest"));
    let p = run(&[product("app", "vendor.app", "9.9", "")], Observed { objects: vec![obj], ..Default::default() });
    assert_eq!(p.errors.len(), 1);
    assert_eq!(&*p.errors[0].reason, "NoMatchingVersion");
    assert!(p.errors[0].message.contains("offers 1.9, 1.10, 2.0"), "{}", p.errors[0].message);
    assert!(p.actions.is_empty(), "nothing may be retired because of a catalog problem: {:?}", p.actions);
    let q = run(&[product("app", "vendor.ap", "latest", "")], Observed::default());
    assert_eq!(&*q.errors[0].reason, "ProductNotInCatalog");
    assert!(q.errors[0].message.contains("did you mean `vendor.app`?"), "{}", q.errors[0].message);
}

#[test]
fn plans_record_their_inputs_and_are_deterministic() {
    let a = run(&[product("app", "vendor.app", "latest", "")], Observed::default());
    let b = run(&[product("app", "vendor.app", "latest", "")], Observed::default());
    assert_eq!(a.actions, b.actions);
    assert_eq!(a.fingerprints.catalogs[0].serial, 7);
    assert_eq!(a.fingerprints.observed.len(), 1);
    assert_eq!(a.fingerprints.source_digest, Sha256::digest(b"fleet"));
}

#[test]
fn renderers_show_actions_diffs_and_stay_under_the_markdown_cap() {
    let obj = managed("obj-1", "vendor.app", "1.10", &["g-pilot", "g-broad"], desired_fields("1.10"));
    let p = run(&[product("app", "vendor.app", "latest", "")], Observed { objects: vec![obj], ..Default::default() });
    let text = render::text(&p, false, false);
    assert!(!text.contains('\u{1b}'), "no escape codes without colour");
    assert!(render::text(&p, false, true).contains("\u{1b}["), "styled with colour");
    assert!(text.contains("update"), "{text}");
    assert!(text.contains("~ version: 1.10 → 2.0"), "{text}");
    assert!(text.contains("Plan: 0 to publish, 2 to update"), "{text}");
    let md = render::markdown(&p, render::MARKDOWN_LIMIT);
    assert!(md.contains("| 🟡 update | `app` | `intune` | pilot | 2.0 | NewVersion |"), "{md}");
    assert!(md.contains("```diff\n") && md.contains("\n- version: 1.10\n+ version: 2.0\n"), "{md}");
    let small = render::markdown(&p, 400);
    assert!(small.len() <= 400, "{}", small.len());
    assert!(small.contains("more action(s) not shown"), "{small}");
    let json: Plan = serde_json::from_str(&render::json(&p)).unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(json, p, "the JSON plan round-trips");
}

#[test]
fn an_unassigned_managed_object_no_product_wants_is_retired() {
    let obj = managed("orphan", "vendor.other", "5.0", &[], BTreeMap::new());
    let p = run(&[product("app", "vendor.app", "latest", "")], Observed { objects: vec![obj], ..Default::default() });
    let retire: Vec<_> = p.actions.iter().filter(|a| a.action == ActionKind::Retire).collect();
    assert_eq!(retire.len(), 1);
    assert_eq!(retire[0].object_id.as_deref(), Some("orphan"));
    assert_eq!(retire[0].ring, None);
    assert!(retire[0].message.contains("unassigned object orphan of vendor.other 5.0"), "{}", retire[0].message);
}

mod gating {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, 0, 0).single().unwrap_or_default()
    }

    fn gated(observed: Observed, windows: &str, reached: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Plan {
        // BASE, with a 48 h soak on pilot, a budget of one change per run, and `windows`.
        let rollout = BASE.replace("    - name: pilot\n", "    - name: pilot\n      soak: 48h\n").replace(
            "      groups: [{ platform: intune, group: { name: g-broad } }]\n",
            &format!(
                "      groups: [{{ platform: intune, group: {{ name: g-broad }} }}]\n  maxChangesPerStep: 1\n{windows}"
            ),
        );
        let app = product("app", "vendor.app", "2.0", "");
        let other = product("other", "vendor.other", "5.0", "");
        let fleet = fleet(&[("base.yaml", rollout.as_str()), ("a.yaml", app.as_str()), ("b.yaml", other.as_str())]);
        let catalog = verified(&catalog_json(7, &[("vendor.app", &["2.0"]), ("vendor.other", &["5.0"])]));
        let catalogs = BTreeMap::from([(catalog.source_name().clone(), catalog)]);
        let observed = BTreeMap::from([(ObjectName::new("intune").unwrap_or_else(|_| unreachable!()), observed)]);
        let provenance = Provenance::Directory { path: "x".into(), head: None };
        let mut p = plan(PlanInput {
            fleet: &fleet,
            source: (&provenance, Sha256::digest(b"fleet")),
            catalogs: &catalogs,
            observed: &observed,
        });
        let history = move |_: &str, _: &str, ring: &str, _: &str| if ring == "pilot" { reached } else { None };
        gate(&mut p, &fleet, &history, now);
        p
    }

    fn waits(p: &Plan) -> Vec<(String, String, String)> {
        p.actions
            .iter()
            .map(|a| {
                (
                    a.product.to_string(),
                    a.ring.as_deref().unwrap_or("-").to_string(),
                    a.waiting.as_ref().map_or("go".to_string(), |w| w.reason.clone()),
                )
            })
            .collect()
    }

    fn w(p: &str, r: &str, reason: &str) -> (String, String, String) {
        (p.into(), r.into(), reason.into())
    }

    #[test]
    fn a_ring_waits_for_the_previous_one_then_for_its_soak() {
        // Nothing published: pilot goes (within the change budget of 1 per run), broad waits.
        let p = gated(Observed::default(), "", None, at(10));
        assert_eq!(
            waits(&p),
            vec![
                w("app", "pilot", "go"),
                w("app", "broad", "PreviousRingPending"),
                w("other", "pilot", "ChangeBudget"),
                w("other", "broad", "PreviousRingPending"),
            ]
        );
        assert_eq!((p.summary.waiting, p.applicable().count()), (3, 1));

        // Pilot runs 2.0 since 09:00; broad opens 48 h later.
        let observed = Observed {
            objects: vec![
                managed("a", "vendor.app", "2.0", &["g-pilot"], BTreeMap::new()),
                managed("o", "vendor.other", "5.0", &["g-pilot", "g-broad"], BTreeMap::new()),
            ],
            ..Default::default()
        };
        let p = gated(observed.clone(), "", Some(at(9)), at(10));
        let broad = p.actions.iter().find(|a| &*a.product == "app" && a.ring.as_deref() == Some("broad")).unwrap();
        let waiting = broad.waiting.as_ref().unwrap();
        assert_eq!(waiting.reason, "RingSoaking");
        assert_eq!(waiting.until, Some(at(9) + chrono::Duration::hours(48)));
        // After the soak nothing waits for a ring any more; the budget of one change per run
        // still spreads the (settings) changes over runs.
        let later = gated(observed, "", Some(at(9)), at(9) + chrono::Duration::hours(48));
        assert_eq!(
            waits(&later),
            vec![
                w("app", "pilot", "go"),
                w("app", "broad", "ChangeBudget"),
                w("other", "pilot", "ChangeBudget"),
                w("other", "broad", "ChangeBudget"),
            ]
        );
    }

    #[test]
    fn outside_the_maintenance_windows_changes_wait_for_the_next_one() {
        // 2026-11-23 is a Monday; the window is Monday 20:00 for 6 h.
        let windows = "  maintenanceWindows:\n    - { days: [mon], start: \"20:00\", duration: 6h }\n";
        let p = gated(Observed::default(), windows, None, at(10));
        let pilot = &p.actions[0];
        assert_eq!(pilot.waiting.as_ref().map(|w| w.reason.as_str()), Some("MaintenanceWindow"));
        assert_eq!(pilot.waiting.as_ref().and_then(|w| w.until), Some(at(20)));
        let inside = gated(Observed::default(), windows, None, at(21));
        assert!(inside.actions[0].waiting.is_none());
        // 01:00 on Tuesday is still inside Monday's window; 03:00 is not, and waits a week.
        let late = gated(Observed::default(), windows, None, at(23) + chrono::Duration::hours(2));
        assert!(late.actions[0].waiting.is_none());
        let after = gated(Observed::default(), windows, None, at(23) + chrono::Duration::hours(4));
        assert_eq!(after.actions[0].waiting.as_ref().and_then(|w| w.until), Some(at(20) + chrono::Duration::days(7)));
    }

    #[test]
    fn a_window_in_a_time_zone_follows_its_daylight_saving() {
        let utc = |y, m, d, h, min| Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().unwrap_or_default();
        let windows =
            "  maintenanceWindows:\n    - { days: [sat], start: \"22:00\", duration: 2h, timeZone: Europe/Berlin }\n";
        // Winter (CET, UTC+1): Saturday 22:00 in Berlin is 21:00 UTC.
        let p = gated(Observed::default(), windows, None, utc(2026, 11, 23, 10, 0));
        assert_eq!(p.actions[0].waiting.as_ref().and_then(|w| w.until), Some(utc(2026, 11, 28, 21, 0)));
        // Summer (CEST, UTC+2): 20:00 UTC.
        let p = gated(Observed::default(), windows, None, utc(2026, 7, 1, 10, 0));
        assert_eq!(p.actions[0].waiting.as_ref().and_then(|w| w.until), Some(utc(2026, 7, 4, 20, 0)));
        // Inside the window in summer: 20:30 UTC is 22:30 in Berlin.
        assert!(gated(Observed::default(), windows, None, utc(2026, 7, 4, 20, 30)).actions[0].waiting.is_none());
        // The Saturday the clocks go back (2026-10-24 → 25 is Sat → Sun; 22:00 Saturday is still CEST).
        let p = gated(Observed::default(), windows, None, utc(2026, 10, 24, 10, 0));
        assert_eq!(p.actions[0].waiting.as_ref().and_then(|w| w.until), Some(utc(2026, 10, 24, 20, 0)));
        // A window at 02:30 on the night the clocks go forward (2026-03-29, 02:00 → 03:00) opens
        // when they do, at 03:00 CEST (01:00 UTC).
        let gap =
            "  maintenanceWindows:\n    - { days: [sun], start: \"02:30\", duration: 1h, timeZone: Europe/Berlin }\n";
        let p = gated(Observed::default(), gap, None, utc(2026, 3, 28, 12, 0));
        assert_eq!(p.actions[0].waiting.as_ref().and_then(|w| w.until), Some(utc(2026, 3, 29, 1, 0)));
    }
}

#[test]
fn new_bytes_under_the_same_version_are_an_update() {
    let mut object = managed("a", "vendor.app", "2.0", &["g-pilot"], BTreeMap::new());
    if let Some(m) = object.marker.as_mut() {
        m.content_digest = Sha256::digest(b"an earlier build of 2.0");
    }
    let p = run(
        &[product("app", "vendor.app", "2.0", "      rings: [pilot]\n")],
        Observed { objects: vec![object], ..Default::default() },
    );
    let a = &p.actions[0];
    assert_eq!((a.action, &*a.reason), (ActionKind::Update, "ContentChanged"));
    assert!(a.message.starts_with("the catalog's installer for vendor.app 2.0 is now "), "{}", a.message);
}

#[test]
fn a_group_left_with_two_versions_keeps_the_selected_one_and_withdraws_the_other() {
    // A run died between assigning 2.0 to the pilot group and withdrawing 1.10 from it.
    let new = managed("obj-new", "vendor.app", "2.0", &["g-pilot", "g-broad"], desired_fields("latest"));
    let old = managed("obj-old", "vendor.app", "1.10", &["g-pilot"], desired_fields("1.10"));
    let p =
        run(&[product("app", "vendor.app", "latest", "")], Observed { objects: vec![old, new], ..Default::default() });
    let changes: Vec<(ActionKind, &str, Option<&str>)> = p
        .actions
        .iter()
        .filter(|a| a.action != ActionKind::None)
        .map(|a| (a.action, &*a.reason, a.object_id.as_deref()))
        .collect();
    assert_eq!(changes, vec![(ActionKind::Retire, "AlsoAssigned", Some("obj-old"))]);
    let retire = p.actions.iter().find(|a| a.action == ActionKind::Retire).unwrap_or_else(|| unreachable!());
    assert_eq!(retire.group.as_deref(), Some("g-pilot"));
    assert!(p.actions.iter().any(|a| a.action == ActionKind::None && a.object_id.as_deref() == Some("obj-new")));
}

#[test]
fn a_half_made_object_is_retired_and_its_ring_published_afresh() {
    let mut half = managed("obj-half", "vendor.app", "2.0", &[], desired_fields("latest"));
    half.incomplete = Some("its content was never committed".into());
    let p = run(&[product("app", "vendor.app", "latest", "")], Observed { objects: vec![half], ..Default::default() });
    let changes: Vec<(ActionKind, &str, Option<&str>)> =
        p.actions.iter().map(|a| (a.action, &*a.reason, a.object_id.as_deref())).collect();
    assert_eq!(
        changes,
        vec![
            (ActionKind::Publish, "NotPublished", None),
            (ActionKind::Publish, "NotPublished", None),
            (ActionKind::Retire, "Incomplete", Some("obj-half")),
        ],
        "never reused: published anew, and the half-made object goes"
    );
}

#[test]
fn a_version_wsus_cannot_write_is_a_plan_error_there_and_planned_elsewhere() {
    let files = [
        ("base.yaml", BASE),
        (
            "wsus.yaml",
            "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata: { name: wsus }\nspec: { type: wsus, endpoint: embedded }\n---\napiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata: { name: onprem }\nspec:\n  rings:\n    - name: pilot\n      groups: [{ platform: wsus, group: g-pilot }]\n",
        ),
        (
            "p.yaml",
            "apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata: { name: app }\nspec:\n  product: vendor.app\n  version: latest\n  targets:\n    - platform: intune\n      rollout: std\n    - platform: wsus\n      rollout: onprem\n",
        ),
    ];
    let fleet = fleet(&files);
    let catalog = verified(&catalog_json(7, &[("vendor.app", &["20241205.1"])]));
    let catalogs = BTreeMap::from([(catalog.source_name().clone(), catalog)]);
    let name = |n: &str| ObjectName::new(n).unwrap_or_else(|_| unreachable!());
    let observed = BTreeMap::from([(name("intune"), Observed::default()), (name("wsus"), Observed::default())]);
    let provenance = Provenance::Directory { path: "x".into(), head: None };
    let p = plan(PlanInput {
        fleet: &fleet,
        source: (&provenance, Sha256::digest(b"fleet")),
        catalogs: &catalogs,
        observed: &observed,
    });
    assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
    assert_eq!(p.errors[0].reason, "VersionNotFourPart");
    assert!(
        p.errors[0]
            .message
            .starts_with("on WSUS Platform `wsus`: version \"20241205.1\" cannot be written as the four-part n.n.n.n"),
        "{}",
        p.errors[0].message
    );
    let on: Vec<&str> = p.actions.iter().filter(|a| a.action != ActionKind::None).map(|a| &*a.platform).collect();
    assert_eq!(on, ["intune", "intune"], "Intune takes the version; WSUS gets nothing");
}
