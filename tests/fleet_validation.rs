//! Strict parsing and resolution of fleet files: every rejection names file:line:column and
//! what to do, and all errors of a fleet are reported in one run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

mod common;

use reconciler::model::{load, Diagnostics, FleetFile};

const PLATFORM: &str = "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-prod\nspec:\n  type: intune\n  endpoint: embedded\n";
const ROLLOUT: &str = "apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n    - name: pilot\n      groups:\n        - { platform: intune-prod, group: { name: sg-pilot } }\n";
const CATALOG: &str = "apiVersion: patchops.io/v1alpha1\nkind: CatalogSource\nmetadata:\n  name: vendor\nspec:\n  url: catalog.json\n  trustedKeys:\n    - RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3\n";

fn product(spec_body: &str) -> String {
    format!("apiVersion: patchops.io/v1alpha1\nkind: Product\nmetadata:\n  name: app\nspec:\n{spec_body}")
}

fn errors(extra: &[(&str, &str)]) -> Vec<String> {
    let mut files = vec![
        FleetFile { path: "platforms.yaml".into(), text: PLATFORM.into() },
        FleetFile { path: "rollout.yaml".into(), text: ROLLOUT.into() },
        FleetFile { path: "catalog.yaml".into(), text: CATALOG.into() },
    ];
    files.extend(extra.iter().map(|(p, t)| FleetFile { path: (*p).into(), text: (*t).into() }));
    match load(&files) {
        Ok(_) => vec![],
        Err(Diagnostics(d)) => d.iter().map(ToString::to_string).collect(),
    }
}

fn assert_one(errs: &[String], expected: &str) {
    assert_eq!(errs.len(), 1, "expected exactly one error, got {errs:#?}");
    assert!(errs[0].starts_with(expected), "expected an error starting with\n  {expected}\ngot\n  {}", errs[0]);
}

#[test]
fn a_valid_fleet_loads_with_defaults_resolved() {
    let p = product("  product: vendor.app\n  targets:\n    - platform: intune-prod\n");
    let fleet = load(&[FleetFile {
        path: "all.yaml".into(),
        text: format!("{PLATFORM}---\n{ROLLOUT}---\n{CATALOG}---\n{p}").into(),
    }])
    .expect("valid fleet");
    assert_eq!(fleet.products.len(), 1);
    let t = &fleet.products[0].targets[0];
    assert_eq!(t.rollout.as_str(), "standard", "the only rollout is the default");
    assert_eq!(t.rings.iter().map(|r| r.as_str()).collect::<Vec<_>>(), ["pilot"]);
    assert_eq!(fleet.products[0].catalog.as_str(), "vendor");
    assert_eq!(fleet.products[0].origin.to_string(), "all.yaml:28");
}

#[test]
fn unknown_field_is_refused_with_its_position_and_the_expected_fields() {
    let errs = errors(&[("products/app.yaml", &product("  product: vendor.app\n  verison: latest\n  targets: []\n"))]);
    assert_one(
        &errs,
        "products/app.yaml:7:3: spec: unknown field `verison`, expected one of `product`, `catalog`, `version`",
    );
    common::assert_contains(&errs[0], "help: remove the field or correct its spelling");
}

#[test]
fn wrong_type_is_refused_with_its_position() {
    let errs = errors(&[("app.yaml", &product("  product: vendor.app\n  retire: maybe\n  targets: []\n"))]);
    assert_one(&errs, "app.yaml:7:11: spec.retire: invalid type: string \"maybe\", expected a boolean");
}

#[test]
fn invalid_version_selector_is_refused() {
    let errs = errors(&[(
        "app.yaml",
        &product("  product: vendor.app\n  version: \"~>1.2\"\n  targets:\n    - platform: intune-prod\n"),
    )]);
    assert_one(&errs, "app.yaml:7:12: spec.version: invalid version range \"~>1.2\"");
}

#[test]
fn a_secret_written_inline_is_refused() {
    let platform = "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-cloud\nspec:\n  type: intune\n  endpoint: https://graph.microsoft.com\n  auth:\n    tenantId: t\n    clientId: c\n    clientSecret: Zx8Q~verysecretvalue\n";
    let errs = errors(&[("secret.yaml", platform)]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("secret.yaml:11:19: spec.auth.clientSecret: a secret is written inline"),
        "{}",
        errs[0]
    );
    common::assert_contains(&errs[0], "{ env: PATCHOPS_INTUNE_SECRET }");
    assert!(!errs[0].contains("verysecretvalue"), "the secret must never be echoed: {}", errs[0]);
}

#[test]
fn duplicate_names_point_at_both_definitions() {
    let p = product("  product: vendor.app\n  targets:\n    - platform: intune-prod\n");
    let q = p.replace("vendor.app", "vendor.tool");
    let errs = errors(&[("a.yaml", &p), ("b.yaml", &q)]);
    assert_one(&errs, "b.yaml:4:9: duplicate Product name `app`");
    common::assert_contains(&errs[0], "the first Product `app` is at a.yaml:1");
}

#[test]
fn dangling_platform_reference_suggests_the_closest_name() {
    let errs = errors(&[("app.yaml", &product("  product: vendor.app\n  targets:\n    - platform: intune-pord\n"))]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with("app.yaml:8:17: Platform `intune-pord` is not defined"), "{}", errs[0]);
    common::assert_contains(&errs[0], "did you mean `intune-prod`?");
}

#[test]
fn dangling_ring_and_rollout_references_are_refused() {
    let errs = errors(&[(
        "app.yaml",
        &product("  product: vendor.app\n  targets:\n    - platform: intune-prod\n      rings: [pilot, canary]\n"),
    )]);
    assert_one(&errs, "app.yaml:9:22: ring of Rollout `standard` `canary` is not defined");
    let errs = errors(&[(
        "app.yaml",
        &product("  product: vendor.app\n  targets:\n    - platform: intune-prod\n      rollout: fast\n"),
    )]);
    assert_one(&errs, "app.yaml:9:16: Rollout `fast` is not defined");
}

#[test]
fn settings_for_another_platform_type_are_refused() {
    let errs = errors(&[(
        "app.yaml",
        &product(
            "  product: vendor.app\n  targets:\n    - platform: intune-prod\n      wsus: { classification: updates }\n",
        ),
    )]);
    assert_one(&errs, "app.yaml:9:13: `wsus` settings do not apply to platform `intune-prod` of type `intune`");
}

#[test]
fn missing_and_unknown_kinds_are_refused() {
    let errs =
        errors(&[("x.yaml", "apiVersion: patchops.io/v1alpha1\nkind: Prodcut\nmetadata:\n  name: x\nspec: {}\n")]);
    assert_one(&errs, "x.yaml:2:7: unknown kind `Prodcut`");
    common::assert_contains(&errs[0], "did you mean `Product`?");
    let errs = errors(&[("y.yaml", "apiVersion: patchops.io/v1alpha1\nmetadata:\n  name: x\n")]);
    assert_one(&errs, "y.yaml:1:1: document has no `kind`");
}

#[test]
fn wrong_api_version_is_refused() {
    let text = product("  product: vendor.app\n  targets:\n    - platform: intune-prod\n").replace("v1alpha1", "v2");
    assert_one(&errors(&[("app.yaml", &text)]), "app.yaml:1:13: unsupported apiVersion `patchops.io/v2`");
}

#[test]
fn yaml_syntax_errors_name_the_position() {
    let errs = errors(&[("bad.yaml", "kind: Product\nspec:\n  targets: [a, b\n")]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with("bad.yaml:4:1: YAML syntax error"), "{}", errs[0]);
}

#[test]
fn every_error_of_the_fleet_is_reported_in_one_run() {
    let errs = errors(&[
        ("a.yaml", &product("  product: vendor.app\n  colour: blue\n  targets: []\n")),
        ("b.yaml", &product("  product: vendor.app\n  targets:\n    - platform: nowhere\n").replace("name: app", "name: b")),
        ("c.yaml", "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: Bad_Name\nspec:\n  type: intune\n  endpoint: embedded\n"),
    ]);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(errs[0].starts_with("a.yaml:7:3: spec: unknown field `colour`"));
    assert!(errs[1].starts_with("b.yaml:8:17: Platform `nowhere` is not defined"));
    assert!(errs[2].starts_with("c.yaml:4:9: metadata.name: invalid name \"Bad_Name\""), "{}", errs[2]);
}

#[test]
fn catalog_sources_need_valid_trusted_keys() {
    let bad = CATALOG
        .replace("name: vendor", "name: other")
        .replace("RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3", "not-a-key");
    let errs = errors(&[("c2.yaml", &bad)]);
    assert_one(&errs, "c2.yaml:8:7: not a minisign public key");
}

#[test]
fn validate_prints_every_error_and_exits_1() {
    let (repo, _key) = common::fleet_repo(1);
    repo.write(
        "fleet/products/app.yaml",
        product("  product: vendor.app\n  verison: latest\n  targets:\n    - platform: intune-pord\n"),
    );
    repo.write(
        "fleet/products/tool.yaml",
        product("  product: vendor.tool\n  targets:\n    - platform: nowhere\n").replace("name: app", "name: tool"),
    );
    repo.commit("break the fleet");
    let run = common::patchops(repo.path(), &["validate", "--path", "fleet"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    common::assert_contains(&run.stderr, "error: products/app.yaml:7:3: spec: unknown field `verison`");
    common::assert_contains(&run.stderr, "error: products/tool.yaml:8:17: Platform `nowhere` is not defined");
    common::assert_contains(&run.stderr, "the fleet has 2 errors; nothing was planned");
}

const ONPREM: &str = "---\napiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: cm01\nspec:\n  type: configmgr\n  endpoint: embedded\n  configmgr: { softwareUpdatePoint: wsus01 }\n---\napiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: wsus01\nspec:\n  type: wsus\n  endpoint: ssh://wsus01.example.invalid\n  auth: { username: patchops }\n---\napiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: onprem\nspec:\n  rings:\n    - name: pilot\n      groups:\n        - { platform: cm01, group: PO100012 }\n        - { platform: wsus01, group: Pilot }\n";

#[test]
fn a_configmgr_software_update_is_sent_to_the_wsus_platform_of_its_update_point() {
    let errs = errors(&[
        ("onprem.yaml", ONPREM),
        ("app.yaml", &product("  product: vendor.app\n  targets:\n    - platform: cm01\n      rollout: onprem\n      configmgr: { deliverAs: softwareUpdate }\n")),
    ]);
    assert_one(&errs, "app.yaml:10:31: third-party software updates reach Configuration Manager through WSUS, not through the AdminService");
    assert!(errs[0].contains("target the WSUS Platform `wsus01` (this site's software update point)"), "{}", errs[0]);
}

#[test]
fn on_premises_platforms_are_checked_for_their_own_settings() {
    let bad = ONPREM
        .replace("softwareUpdatePoint: wsus01", "softwareUpdatePoint: wsus02")
        .replace("  auth: { username: patchops }\n", "")
        .replace("ssh://wsus01.example.invalid", "ftp://wsus01");
    let mut errs = errors(&[("onprem.yaml", &bad)]);
    errs.sort();
    let all = errs.join("\n");
    for expected in [
        "onprem.yaml:9:37: Platform `wsus02` is not defined",
        "endpoint `ftp://wsus01` is not `embedded`, an ssh:// URL or an http(s) URL",
    ] {
        assert!(all.contains(expected), "{expected:?} not in\n{all}");
    }
    let no_user = ONPREM.replace("  auth: { username: patchops }\n", "  auth: { sshKey: { file: /etc/patchops/k } }\n");
    assert_one(&errors(&[("onprem.yaml", &no_user)]), "onprem.yaml:");
    assert!(
        errors(&[("onprem.yaml", &no_user)])[0].contains("the SSH transport to a WSUS server needs `auth.username`")
    );
}

// Issue 13, item 9: a WSUS platform over http(s) sends no credentials, so it needs no `auth`;
// one over SSH does.
#[test]
fn a_wsus_platform_over_http_needs_no_auth_block_and_one_over_ssh_does() {
    let wsus = |endpoint: &str| {
        format!("apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: wsus\nspec:\n  type: wsus\n  endpoint: {endpoint}\n")
    };
    assert_eq!(errors(&[("wsus.yaml", &wsus("http://127.0.0.1:8530"))]), Vec::<String>::new());
    assert_eq!(errors(&[("wsus.yaml", &wsus("https://wsus01.example.invalid"))]), Vec::<String>::new());
    let errs = errors(&[("wsus.yaml", &wsus("ssh://wsus01.example.invalid"))]);
    assert!(errs.iter().any(|e| e.contains("has a real endpoint but no `auth`")), "{errs:#?}");
}

#[test]
fn a_maintenance_window_takes_an_iana_time_zone_and_an_unknown_one_is_named() {
    let rollout = |zone: &str| {
        ROLLOUT.replace(
            "spec:\n",
            &format!("spec:\n  maintenanceWindows:\n    - {{ days: [sat], start: \"22:00\", duration: 4h, timeZone: {zone} }}\n"),
        )
    };
    let p = product("  product: vendor.app\n  targets:\n    - platform: intune-prod\n");
    let load_with = |zone: &str| {
        load(&[
            FleetFile { path: "platforms.yaml".into(), text: PLATFORM.into() },
            FleetFile { path: "rollout.yaml".into(), text: rollout(zone).into() },
            FleetFile { path: "catalog.yaml".into(), text: CATALOG.into() },
            FleetFile { path: "products/app.yaml".into(), text: p.clone().into() },
        ])
    };
    assert!(load_with("Europe/Berlin").is_ok());
    let Err(Diagnostics(d)) = load_with("Europe/Berln") else { panic!("an unknown zone must be refused") };
    let errs: Vec<String> = d.iter().map(ToString::to_string).collect();
    assert_one(&errs, "rollout.yaml:7:62: unknown time zone `Europe/Berln`");
    common::assert_contains(&errs[0], "help: use an IANA time zone name, such as Europe/Berlin");
}

// Issue 13, item 5: Intune assigns to Entra ID object ids; a name is written as a name.
#[test]
fn an_intune_group_is_an_object_id_or_a_name_and_nothing_else() {
    let rollout = |group: &str| {
        format!("apiVersion: patchops.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: standard\nspec:\n  rings:\n    - name: pilot\n      groups:\n        - {{ platform: intune-prod, group: {group} }}\n")
    };
    let load_with = |rollout: &str, platforms: &str| {
        let files = vec![
            FleetFile { path: "platforms.yaml".into(), text: platforms.to_string().into() },
            FleetFile { path: "rollout.yaml".into(), text: rollout.to_string().into() },
            FleetFile { path: "catalog.yaml".into(), text: CATALOG.into() },
        ];
        match load(&files) {
            Ok(_) => vec![],
            Err(Diagnostics(d)) => d.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }
    };
    // A display name where an id belongs: refused at its position, with both ways out.
    let errs = load_with(&rollout("sg-pilot"), PLATFORM);
    assert_one(&errs, "rollout.yaml:9:43: `sg-pilot` is not an Entra ID object id");
    common::assert_contains(&errs[0], "group: { name: sg-pilot }");
    common::assert_contains(&errs[0], "Object ID");
    // An object id, or a name, loads.
    assert_eq!(load_with(&rollout("0f6c3b1e-8a5d-4c2f-9e7a-1b2c3d4e5f60"), PLATFORM), Vec::<String>::new());
    assert_eq!(load_with(&rollout("{ name: \"O'Brien's devices\" }"), PLATFORM), Vec::<String>::new());
    // An empty name, or a name given to a platform whose groups are not Entra ID groups.
    assert_one(&load_with(&rollout("{ name: \"\" }"), PLATFORM), "rollout.yaml:9:43: the group's name is empty");
    let wsus = "apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: intune-prod\nspec:\n  type: wsus\n  endpoint: embedded\n";
    let errs = load_with(&rollout("{ name: Pilot }"), wsus);
    assert_one(&errs, "rollout.yaml:9:43: platform `intune-prod` is not Intune");
    common::assert_contains(&errs[0], "`group: Pilot`");
    // A WSUS group is a name already: no GUID is asked of it.
    assert_eq!(load_with(&rollout("Pilot"), wsus), Vec::<String>::new());
}

#[test]
fn a_time_stamping_url_is_http_and_comes_with_a_signing_certificate() {
    let platform = |trust: &str| {
        format!("apiVersion: patchops.io/v1alpha1\nkind: Platform\nmetadata:\n  name: cm\nspec:\n  type: configmgr\n  endpoint: embedded\n  trust:\n{trust}")
    };
    let signed = "    scriptSigningCertificate: { file: /etc/patchops/signing.pem }\n";
    let errs = errors(&[("cm.yaml", &platform(&format!("{signed}    timestampUrl: ftp://tsa.example.com\n")))]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    common::assert_contains(&errs[0], "timestampUrl `ftp://tsa.example.com` is not an http(s) URL");
    common::assert_contains(&errs[0], "cm.yaml:");
    let errs = errors(&[("cm.yaml", &platform("    timestampUrl: http://timestamp.digicert.com\n"))]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    common::assert_contains(&errs[0], "a time-stamping URL is set, but nothing is signed");
    assert!(errors(&[("cm.yaml", &platform(&format!("{signed}    timestampUrl: http://timestamp.digicert.com\n")))])
        .is_empty());
}
