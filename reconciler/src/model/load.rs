//! From fleet files to a [`Fleet`]: parse every document strictly, then resolve references.
//!
//! Two layers, as in ripgrep's low/high arguments: [`parse`] checks each document on its own
//! (syntax, kind, unknown fields, types, inline secrets); [`resolve`] checks the documents
//! against each other (duplicate names, dangling references, settings that do not fit the
//! platform). Both collect every problem rather than stopping at the first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::diagnostic::{did_you_mean, Diagnostic, Diagnostics};
use super::fleet::{CatalogSource, Endpoint, Fleet, Origin, Platform, PolicySet, Product, Rollout, Target};
use super::kinds::{
    CatalogSourceSpec, Document, ExecutionPolicy, InstallIntent, Kind, PlatformSpec, PlatformType, PolicySetSpec,
    ProductSpec, RestartBehavior, RolloutSpec, API_VERSION,
};
use super::names::ObjectName;
use super::spans::{self, DocIndex, Pos};
use crate::catalog::TrustedKey;
use crate::source::is_fleet_file;
pub use crate::source::FleetFile;

/// A file's text, and the full index of its node positions, built only when a diagnostic
/// needs it (most loads have none, and indexing every node of a large fleet is not free).
#[derive(Debug)]
pub struct Positions {
    text: Arc<str>,
    full: OnceLock<Vec<DocIndex>>,
}

impl Positions {
    fn doc(&self, n: usize) -> DocIndex {
        let docs = self.full.get_or_init(|| spans::index(&self.text, true).unwrap_or_default());
        docs.get(n).cloned().unwrap_or_default()
    }
}

/// A document that parsed, with a way to find the positions of its nodes.
#[derive(Debug, Clone)]
pub struct Parsed<S> {
    /// The file it came from.
    pub file: String,
    /// Where the document starts.
    pub start: Pos,
    /// The typed document.
    pub doc: Document<S>,
    number: usize,
    positions: Arc<Positions>,
}

impl<S> Parsed<S> {
    fn origin(&self) -> Origin {
        Origin { file: self.file.clone(), line: self.start.line }
    }

    fn diag_value(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(&self.file, self.positions.doc(self.number).value(path), message)
    }

    fn name(&self) -> &ObjectName {
        &self.doc.metadata.name
    }
}

/// Every document of a fleet, parsed but not yet checked against each other.
#[derive(Debug, Default)]
pub struct FleetDocs {
    /// Product documents.
    pub products: Vec<Parsed<ProductSpec>>,
    /// Platform documents.
    pub platforms: Vec<Parsed<PlatformSpec>>,
    /// Rollout documents.
    pub rollouts: Vec<Parsed<RolloutSpec>>,
    /// CatalogSource documents.
    pub catalog_sources: Vec<Parsed<CatalogSourceSpec>>,
    /// PolicySet documents.
    pub policy_sets: Vec<Parsed<PolicySetSpec>>,
    /// Reconciler documents.
    pub reconcilers: Vec<Parsed<super::kinds::ReconcilerSpec>>,
    /// (kind, name) of documents that did not parse: their own error is reported, and what
    /// refers to them is not reported again as "not defined".
    pub broken: Vec<(Kind, String)>,
}

/// Parses and resolves a fleet, reporting every problem found.
pub fn load(files: &[FleetFile]) -> Result<Fleet, Diagnostics> {
    let (mut docs, mut diags) = parse(files);
    let broken = std::mem::take(&mut docs.broken);
    match resolve(docs) {
        Ok(fleet) if diags.is_empty() => Ok(fleet),
        Ok(_) => Err(finish(diags)),
        Err(Diagnostics(more)) => {
            // One cause, one error: a reference to a document that failed to parse is that
            // document's error, already reported, not a missing definition.
            let consequence = |d: &Diagnostic| {
                broken.iter().any(|(kind, name)| {
                    d.message == format!("{} `{name}` is not defined", kind.as_str())
                        || d.message.ends_with(&format!(" {}s", kind.as_str()))
                            && d.message.contains("is needed because the fleet defines")
                })
            };
            diags.extend(more.into_iter().filter(|d| !consequence(d)));
            Err(finish(diags))
        }
    }
}

fn finish(mut diags: Vec<Diagnostic>) -> Diagnostics {
    diags.sort();
    diags.dedup();
    Diagnostics(diags)
}

/// Parses every document of every file; returns the documents that parsed and the problems of
/// those that did not.
///
/// Files are parsed on up to [`std::thread::available_parallelism`] threads; the result is the
/// same as parsing them in order (documents keep their file order, so "first definition" in a
/// duplicate-name error means the same thing every run).
pub fn parse(files: &[FleetFile]) -> (FleetDocs, Vec<Diagnostic>) {
    let files: Vec<&FleetFile> = files.iter().filter(|f| is_fleet_file(&f.path)).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let chunk = files.len().div_ceil(threads).max(16);
    let parse_chunk = |chunk: &[&FleetFile]| {
        let mut docs = FleetDocs::default();
        let mut diags = Vec::new();
        for file in chunk {
            parse_file(file, &mut docs, &mut diags);
        }
        (docs, diags)
    };
    let parts: Vec<(FleetDocs, Vec<Diagnostic>)> = if files.len() <= chunk {
        vec![parse_chunk(&files)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = files.chunks(chunk).map(|c| scope.spawn(move || parse_chunk(c))).collect();
            // A parser thread only panics on a bug; re-raise it rather than lose documents.
            handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
        })
    };
    let mut docs = FleetDocs::default();
    let mut diags = Vec::new();
    for (d, e) in parts {
        docs.products.extend(d.products);
        docs.platforms.extend(d.platforms);
        docs.rollouts.extend(d.rollouts);
        docs.catalog_sources.extend(d.catalog_sources);
        docs.policy_sets.extend(d.policy_sets);
        docs.reconcilers.extend(d.reconcilers);
        docs.broken.extend(d.broken);
        diags.extend(e);
    }
    (docs, diags)
}

fn parse_file(file: &FleetFile, docs: &mut FleetDocs, diags: &mut Vec<Diagnostic>) {
    let indexes = match spans::index(&file.text, false) {
        Ok(ix) => ix,
        Err(e) => {
            diags.push(
                Diagnostic::at(&file.path, e.pos, format!("YAML syntax error: {}", e.message))
                    .help("fix the YAML syntax; every other check of this file waits for it"),
            );
            return;
        }
    };
    // The index found no syntax error, so serde_yaml's stream yields exactly these documents
    // (it would yield a syntax error forever otherwise: never iterate it unbounded).
    let stream = serde_yaml::Deserializer::from_str(&file.text);
    let positions = Arc::new(Positions { text: Arc::clone(&file.text), full: OnceLock::new() });
    for (number, (index, de)) in indexes.into_iter().zip(stream).enumerate() {
        if index.is_empty {
            continue;
        }
        let at = Located { file, number, positions: &positions, start: index.start };
        let Some(kind_text) = index.kind.clone() else {
            diags.push(
                Diagnostic::at(&file.path, index.start, "document has no `kind`")
                    .help(format!("add `kind:` with one of {}", kind_list())),
            );
            continue;
        };
        let Some(kind) = Kind::parse(&kind_text) else {
            let mut d = Diagnostic::at(&file.path, at.value("kind"), format!("unknown kind `{kind_text}`"));
            d = match did_you_mean(&kind_text, Kind::ALL.iter().map(|k| k.as_str())) {
                Some(k) => d.help(format!("did you mean `{k}`? (kinds: {})", kind_list())),
                None => d.help(format!("kinds are {}", kind_list())),
            };
            diags.push(d);
            continue;
        };
        let parsed = match kind {
            Kind::Product => typed(&at, de, &mut docs.products, diags),
            Kind::Platform => typed(&at, de, &mut docs.platforms, diags),
            Kind::Rollout => typed(&at, de, &mut docs.rollouts, diags),
            Kind::CatalogSource => typed(&at, de, &mut docs.catalog_sources, diags),
            Kind::PolicySet => typed(&at, de, &mut docs.policy_sets, diags),
            Kind::Reconciler => typed(&at, de, &mut docs.reconcilers, diags),
        };
        if !parsed {
            if let Some(name) = loose_name(&file.text, number) {
                docs.broken.push((kind, name));
            }
        }
    }
}

fn kind_list() -> String {
    Kind::ALL.iter().map(|k| format!("`{}`", k.as_str())).collect::<Vec<_>>().join(", ")
}

/// A document's place: its file, its number in the file, and the file's positions.
struct Located<'a> {
    file: &'a FleetFile,
    number: usize,
    positions: &'a Arc<Positions>,
    start: Pos,
}

impl Located<'_> {
    fn value(&self, path: &str) -> Pos {
        self.positions.doc(self.number).value(path)
    }
}

/// The `metadata.name` of document `number` of `text`, read loosely (every other field
/// ignored): what a document that failed to parse was called.
fn loose_name(text: &str, number: usize) -> Option<String> {
    #[derive(Deserialize)]
    struct Loose {
        metadata: LooseMeta,
    }
    #[derive(Deserialize)]
    struct LooseMeta {
        name: String,
    }
    let de = serde_yaml::Deserializer::from_str(text).nth(number)?;
    Loose::deserialize(de).ok().map(|l| l.metadata.name)
}

/// Parses one document into `out`; whether it parsed.
fn typed<S: DeserializeOwned>(
    at: &Located<'_>,
    de: serde_yaml::Deserializer<'_>,
    out: &mut Vec<Parsed<S>>,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    let file = at.file;
    match Document::<S>::deserialize(de) {
        Ok(doc) => {
            if doc.api_version != API_VERSION {
                diags.push(
                    Diagnostic::at(
                        &file.path,
                        at.value("apiVersion"),
                        format!("unsupported apiVersion `{}`", doc.api_version),
                    )
                    .help(format!("this release reads `apiVersion: {API_VERSION}`")),
                );
                return false;
            }
            out.push(Parsed {
                file: file.path.clone(),
                start: at.start,
                doc,
                number: at.number,
                positions: Arc::clone(at.positions),
            });
            true
        }
        Err(e) => {
            diags.push(serde_diagnostic(at, &e));
            false
        }
    }
}

/// Turns a serde_yaml error into a diagnostic with a position and, where it helps, advice.
fn serde_diagnostic(at: &Located<'_>, e: &serde_yaml::Error) -> Diagnostic {
    let file = at.file.path.as_str();
    let text = e.to_string();
    // serde_yaml appends " at line L column C"; the position goes in front instead.
    let message = match text.rfind(" at line ") {
        Some(i) if e.location().is_some() => text[..i].to_string(),
        _ => text.clone(),
    };
    let (path, detail) = match message.split_once(": ") {
        Some((p, d)) if !p.contains(' ') => (p.to_string(), d.to_string()),
        _ => (String::new(), message.clone()),
    };
    let pos = match e.location() {
        Some(l) => Pos { line: l.line(), column: l.column() },
        None if !path.is_empty() => at.value(&path),
        None => at.start,
    };
    let mut d = Diagnostic::at(file, pos, message);
    if detail.starts_with("unknown field") {
        d = d.help("remove the field or correct its spelling; the JSON Schemas in schemas/ list every field");
    } else if detail.starts_with("invalid type") {
        d = d.help("the value has the wrong type; see the field's description in schemas/");
    } else if detail.starts_with("missing field") {
        d = d.help("add the required field");
    }
    d
}

/// Checks the documents against each other and builds the fleet.
pub fn resolve(docs: FleetDocs) -> Result<Fleet, Diagnostics> {
    let mut diags = Vec::new();
    let platforms = unique("Platform", docs.platforms, &mut diags);
    let rollouts = unique("Rollout", docs.rollouts, &mut diags);
    let catalogs = unique("CatalogSource", docs.catalog_sources, &mut diags);
    let policy_sets = unique("PolicySet", docs.policy_sets, &mut diags);
    let reconcilers = unique("Reconciler", docs.reconcilers, &mut diags);
    let products = unique("Product", docs.products, &mut diags);

    let mut fleet = Fleet::default();
    for p in platforms.values() {
        let endpoint = check_platform(p, &mut diags);
        check_software_update_point(p, &platforms, &mut diags);
        // A Platform whose endpoint is refused is reported, not loaded.
        if let Some(endpoint) = endpoint {
            fleet.platforms.insert(
                p.name().clone(),
                Platform { metadata: p.doc.metadata.clone(), origin: p.origin(), spec: p.doc.spec.clone(), endpoint },
            );
        }
    }
    for r in rollouts.values() {
        check_rollout(r, &platforms, &mut diags);
        fleet.rollouts.insert(
            r.name().clone(),
            Rollout { metadata: r.doc.metadata.clone(), origin: r.origin(), spec: r.doc.spec.clone() },
        );
    }
    for c in catalogs.values() {
        let trusted_keys = check_catalog_source(c, &mut diags);
        fleet.catalog_sources.insert(
            c.name().clone(),
            CatalogSource {
                metadata: c.doc.metadata.clone(),
                origin: c.origin(),
                spec: c.doc.spec.clone(),
                trusted_keys,
            },
        );
    }
    for ps in policy_sets.values() {
        check_policy_set(ps, &mut diags);
        fleet.policy_sets.insert(
            ps.name().clone(),
            PolicySet { metadata: ps.doc.metadata.clone(), origin: ps.origin(), spec: ps.doc.spec.clone() },
        );
    }
    let mut reconcilers = reconcilers.values();
    if let Some(first) = reconcilers.next() {
        for extra in reconcilers {
            diags.push(
                extra
                    .diag_value("metadata.name", format!("a second Reconciler: `{}` is already defined", first.name()))
                    .help(format!(
                        "a fleet has at most one Reconciler; merge this one into `{}` ({})",
                        first.name(),
                        first.origin()
                    )),
            );
        }
        fleet.reconciler = Some(first.doc.spec.clone());
    }
    // Two Products may not publish the same catalog product to the same platform: they would
    // fight over one platform object.
    let mut claimed: BTreeMap<(String, ObjectName), &Parsed<ProductSpec>> = BTreeMap::new();
    for p in products.values() {
        if let Some(product) = resolve_product(p, &platforms, &rollouts, &catalogs, &mut diags) {
            for t in &product.targets {
                let key = (product.spec.product.to_string(), t.spec.platform.clone());
                if let Some(first) = claimed.insert(key, p) {
                    diags.push(
                        p.diag_value(
                            "spec.product",
                            format!(
                                "catalog product `{}` is already published to platform `{}` by Product `{}` ({})",
                                product.spec.product,
                                t.spec.platform,
                                first.name(),
                                first.origin()
                            ),
                        )
                        .help("keep one Product per catalog product and platform"),
                    );
                }
            }
            fleet.products.push(product);
        }
    }
    if diags.is_empty() {
        Ok(fleet)
    } else {
        Err(Diagnostics(diags))
    }
}

/// Keeps the first document of each name and reports the others as duplicates.
fn unique<S>(kind: &str, docs: Vec<Parsed<S>>, diags: &mut Vec<Diagnostic>) -> BTreeMap<ObjectName, Parsed<S>> {
    let mut out: BTreeMap<ObjectName, Parsed<S>> = BTreeMap::new();
    for d in docs {
        if let Some(first) = out.get(d.name()) {
            diags.push(d.diag_value("metadata.name", format!("duplicate {kind} name `{}`", d.name())).help(format!(
                "the first {kind} `{}` is at {}; rename or remove one",
                d.name(),
                first.origin()
            )));
            continue;
        }
        out.insert(d.name().clone(), d);
    }
    out
}

fn undefined<S>(
    at: &Parsed<S>,
    path: &str,
    kind: &str,
    name: &str,
    defined: impl Iterator<Item = String> + Clone,
) -> Diagnostic {
    let all: Vec<String> = defined.collect();
    let d = at.diag_value(path, format!("{kind} `{name}` is not defined"));
    match did_you_mean(name, all.iter().map(String::as_str)) {
        Some(s) => d.help(format!("did you mean `{s}`?")),
        None if all.is_empty() => d.help(format!("define a {kind} document in the fleet")),
        None => d.help(format!("defined: {}", all.join(", "))),
    }
}

/// Picks the named object, or the only one when no name is given.
fn pick<'a, S>(
    at: &Parsed<ProductSpec>,
    path: &str,
    kind: &str,
    wanted: Option<&ObjectName>,
    all: &'a BTreeMap<ObjectName, Parsed<S>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<&'a Parsed<S>> {
    match wanted {
        Some(name) => {
            let found = all.get(name);
            if found.is_none() {
                diags.push(undefined(at, path, kind, name.as_str(), all.keys().map(ToString::to_string)));
            }
            found
        }
        None if all.len() == 1 => all.values().next(),
        None => {
            let field = path.rsplit('.').next().unwrap_or(path);
            diags.push(
                at.diag_value(
                    path.rsplit_once('.').map_or(path, |p| p.0),
                    format!("`{field}` is needed because the fleet defines {} {kind}s", all.len()),
                )
                .help(format!(
                    "add `{field}:` naming one of: {}",
                    all.keys().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                )),
            );
            None
        }
    }
}

fn resolve_product(
    p: &Parsed<ProductSpec>,
    platforms: &BTreeMap<ObjectName, Parsed<PlatformSpec>>,
    rollouts: &BTreeMap<ObjectName, Parsed<RolloutSpec>>,
    catalogs: &BTreeMap<ObjectName, Parsed<CatalogSourceSpec>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Product> {
    let before = diags.len();
    let spec = &p.doc.spec;
    let catalog = pick(p, "spec.catalog", "CatalogSource", spec.catalog.as_ref(), catalogs, diags);
    if spec.targets.is_empty() && !spec.retire {
        diags.push(
            p.diag_value("spec.targets", "the Product has no targets")
                .help("add a target, or set `retire: true` to remove it from every platform"),
        );
    }
    let mut targets = Vec::new();
    let mut seen_platforms = BTreeSet::new();
    for (i, t) in spec.targets.iter().enumerate() {
        let at = format!("spec.targets[{i}]");
        if !seen_platforms.insert(&t.platform) {
            diags.push(
                p.diag_value(&format!("{at}.platform"), format!("platform `{}` is targeted twice", t.platform))
                    .help("merge the two targets into one"),
            );
        }
        let platform = platforms.get(&t.platform);
        if platform.is_none() {
            diags.push(undefined(
                p,
                &format!("{at}.platform"),
                "Platform",
                t.platform.as_str(),
                platforms.keys().map(ToString::to_string),
            ));
        }
        if let Some(platform) = platform {
            check_target_settings(p, &at, t, platform.doc.spec.platform_type, diags);
            if t.configmgr.as_ref().is_some_and(|c| c.deliver_as == super::kinds::ConfigMgrDelivery::SoftwareUpdate) {
                let sup = platform.doc.spec.configmgr.as_ref().and_then(|c| c.software_update_point.as_ref());
                let help = match sup {
                    Some(sup) => format!("target the WSUS Platform `{sup}` (this site's software update point) with this product instead; the site syncs the update from there"),
                    None => "target the WSUS Platform that is this site's software update point with this product instead (and name it in the site's configmgr.softwareUpdatePoint)".to_string(),
                };
                diags.push(
                    p.diag_value(
                        &format!("{at}.configmgr.deliverAs"),
                        "third-party software updates reach Configuration Manager through WSUS, not through the AdminService",
                    )
                    .help(help),
                );
            }
        }
        let Some(rollout) = pick(p, &format!("{at}.rollout"), "Rollout", t.rollout.as_ref(), rollouts, diags) else {
            continue;
        };
        let ring_names: Vec<_> = rollout.doc.spec.rings.iter().map(|r| r.name.clone()).collect();
        let rings = match &t.rings {
            None => ring_names.clone(),
            Some(wanted) => {
                for (j, ring) in wanted.iter().enumerate() {
                    if !ring_names.contains(ring) {
                        diags.push(undefined(
                            p,
                            &format!("{at}.rings[{j}]"),
                            &format!("ring of Rollout `{}`", rollout.name()),
                            ring.as_str(),
                            ring_names.iter().map(ToString::to_string),
                        ));
                    }
                }
                ring_names.iter().filter(|r| wanted.contains(r)).cloned().collect()
            }
        };
        for ring in &rings {
            let has_group = rollout
                .doc
                .spec
                .rings
                .iter()
                .filter(|r| &r.name == ring)
                .any(|r| r.groups.iter().any(|g| g.platform == t.platform));
            if !has_group && platform.is_some() {
                diags.push(
                    p.diag_value(&format!("{at}.platform"), format!(
                        "ring `{ring}` of Rollout `{}` has no group on platform `{}`",
                        rollout.name(),
                        t.platform
                    ))
                    .help(format!(
                        "add `- {{ platform: {}, group: <group> }}` to that ring's groups ({}), or list only other rings in `rings:`",
                        t.platform,
                        rollout.origin()
                    )),
                );
            }
        }
        targets.push(Target { spec: t.clone(), rollout: rollout.name().clone(), rings });
    }
    match catalog {
        Some(c) if diags.len() == before => Some(Product {
            metadata: p.doc.metadata.clone(),
            origin: p.origin(),
            spec: spec.clone(),
            catalog: c.name().clone(),
            targets,
        }),
        _ => None,
    }
}

fn check_target_settings(
    p: &Parsed<ProductSpec>,
    at: &str,
    t: &super::kinds::ProductTarget,
    ty: PlatformType,
    diags: &mut Vec<Diagnostic>,
) {
    let present = [
        ("intune", t.intune.is_some(), PlatformType::Intune),
        ("configmgr", t.configmgr.is_some(), PlatformType::Configmgr),
        ("wsus", t.wsus.is_some(), PlatformType::Wsus),
    ];
    for (field, is_set, wants) in present {
        if is_set && wants != ty {
            diags.push(
                p.diag_value(
                    &format!("{at}.{field}"),
                    format!("`{field}` settings do not apply to platform `{}` of type `{}`", t.platform, ty.as_str()),
                )
                .help(format!("remove `{field}:` or use `{}:` settings", ty.as_str())),
            );
        }
    }
    if ty == PlatformType::Wsus && t.install.restart == RestartBehavior::Allow {
        diags.push(
            p.diag_value(&format!("{at}.install.restart"), "WSUS has no `allow` restart behaviour")
                .help("on WSUS targets use `basedOnReturnCode` (the update may ask for a restart), `suppress` (never) or `force` (always)"),
        );
    }
    if t.intune.as_ref().is_some_and(|i| i.auto_update_superseded_apps) && t.install.intent != InstallIntent::Available
    {
        diags.push(
            p.diag_value(&format!("{at}.intune.autoUpdateSupersededApps"), "auto-update applies to `available` assignments only")
                .help("set `install.intent: available`, or remove `autoUpdateSupersededApps` (a `required` assignment installs the new version anyway)"),
        );
    }
    if ty == PlatformType::Wsus && t.install.intent == InstallIntent::Available {
        diags.push(
            p.diag_value(&format!("{at}.install.intent"), "WSUS cannot offer updates as `available`")
                .help("use `intent: required` on WSUS targets (approval for install)"),
        );
    }
    if ty == PlatformType::Wsus && t.install.deadline.is_some_and(|d| d.0.as_secs() % 60 != 0 || d.0.as_secs() == 0) {
        diags.push(
            p.diag_value(&format!("{at}.install.deadline"), "a WSUS deadline is kept to the minute")
                .help("give whole minutes, such as `90m` or `3d`: the server's approval time and patchops's clock differ by seconds"),
        );
    }
}

/// Checks a Platform; returns its endpoint when that parses (the other checks report on).
fn check_platform(p: &Parsed<PlatformSpec>, diags: &mut Vec<Diagnostic>) -> Option<Endpoint> {
    let spec = &p.doc.spec;
    if spec.platform_type == PlatformType::Intune && spec.keep_versions() > super::kinds::MAX_INTUNE_KEEP_VERSIONS {
        diags.push(
            p.diag_value(
                "spec.retention.keepVersions",
                format!("Intune keeps at most {} superseded versions", super::kinds::MAX_INTUNE_KEEP_VERSIONS),
            )
            .help("a supersedence graph holds at most 10 apps in Intune: the version published and 9 it supersedes"),
        );
    }
    let parsed = Endpoint::parse(&spec.endpoint, spec.platform_type);
    if let Err(message) = &parsed {
        diags.push(p.diag_value("spec.endpoint", message.to_string()).help(
            if spec.platform_type == PlatformType::Wsus {
                "use `embedded` for the built-in emulator, or the WSUS server as ssh://wsus01.example.com"
            } else {
                "use `embedded` for the built-in emulator, or the service URL such as https://graph.microsoft.com"
            },
        ));
    }
    let endpoint = parsed.ok();
    let real = endpoint.as_ref().is_some_and(Endpoint::is_real);
    for (field, set, ty) in [
        ("wsus", spec.wsus.is_some(), PlatformType::Wsus),
        ("configmgr", spec.configmgr.is_some(), PlatformType::Configmgr),
        ("intune", spec.intune.is_some(), PlatformType::Intune),
    ] {
        if set && spec.platform_type != ty {
            diags.push(
                p.diag_value(
                    &format!("spec.{field}"),
                    format!("`{field}` settings do not apply to a platform of type `{}`", spec.platform_type.as_str()),
                )
                .help(format!("remove `{field}:` or change `type:` to `{field}`")),
            );
        }
    }
    if let Some(b) = spec.intune.as_ref().and_then(|i| i.write_budget.as_ref()) {
        if b.requests == 0 || b.per.0.is_zero() {
            diags.push(
                p.diag_value("spec.intune.writeBudget", "a write budget of no requests, or of no time, sends nothing")
                    .help("give at least one request per window, such as { requests: 80, per: 20s }"),
            );
        }
    }
    if spec.platform_type == PlatformType::Configmgr
        && real
        && spec.configmgr.as_ref().and_then(|c| c.content_share.as_ref()).is_none()
    {
        diags.push(
            p.diag_value("spec.endpoint", "a real Configuration Manager site needs `configmgr.contentShare`")
                .help("add `configmgr: { contentShare: { unc: '\\\\cm01\\sources\\patchops', localPath: /mnt/cm-sources/patchops } }`: applications reference their content on a share the site can read"),
        );
    }
    if matches!(endpoint, Some(Endpoint::Ssh(_))) && spec.auth.as_ref().is_none_or(|a| a.username.is_none()) {
        diags.push(
            p.diag_value("spec.auth", "the SSH transport to a WSUS server needs `auth.username`")
                .help("add `auth: { username: patchops, sshKey: { file: /etc/patchops/wsus-ssh.key } }`"),
        );
    }
    if spec.concurrency == 0 {
        diags.push(p.diag_value("spec.concurrency", "concurrency must be at least 1"));
    }
    if let Some(authority) = spec.auth.as_ref().and_then(|a| a.authority.as_ref()) {
        if !url::Url::parse(authority).is_ok_and(|u| matches!(u.scheme(), "https" | "http")) {
            diags.push(
                p.diag_value("spec.auth.authority", format!("authority `{authority}` is not an http(s) URL"))
                    .help("use the Entra ID host, such as https://login.microsoftonline.com/"),
            );
        }
    }
    if let Some(tsa) = &spec.trust.timestamp_url {
        if !url::Url::parse(tsa).is_ok_and(|u| matches!(u.scheme(), "https" | "http")) {
            diags.push(
                p.diag_value("spec.trust.timestampUrl", format!("timestampUrl `{tsa}` is not an http(s) URL"))
                    .help("use your CA's RFC 3161 time-stamping URL, such as http://timestamp.digicert.com"),
            );
        } else if spec.trust.script_signing_certificate.is_none() {
            diags.push(
                p.diag_value("spec.trust.timestampUrl", "a time-stamping URL is set, but nothing is signed")
                    .help("set `trust.scriptSigningCertificate` too, or remove `timestampUrl`"),
            );
        }
    }
    if spec.trust.execution_policy == ExecutionPolicy::AllSigned && spec.trust.script_signing_certificate.is_none() {
        diags.push(
            p.diag_value(
                "spec.trust.executionPolicy",
                "endpoints run PowerShell as AllSigned, but no script-signing certificate is set",
            )
            .help("set `trust.scriptSigningCertificate: { file: ... }` so generated scripts can run"),
        );
    }
    let Some(auth) = &spec.auth else {
        // A WSUS server reached over http(s) is a request runner with no sign-in of its own
        // (the transport sends no credentials): only the SSH transport needs `auth`.
        let wsus_over_http = spec.platform_type == PlatformType::Wsus && matches!(endpoint, Some(Endpoint::Http(_)));
        if real && !wsus_over_http {
            diags.push(
                p.diag_value("spec.endpoint", format!("platform `{}` has a real endpoint but no `auth`", p.name()))
                    .help("add `auth:` with references to its credentials"),
            );
        }
        return endpoint;
    };
    let fields = [
        ("tenantId", auth.tenant_id.is_some(), [PlatformType::Intune].as_slice()),
        ("authority", auth.authority.is_some(), &[PlatformType::Intune]),
        ("assertionAlgorithm", auth.assertion_algorithm.is_some(), &[PlatformType::Intune]),
        ("clientId", auth.client_id.is_some(), &[PlatformType::Intune]),
        ("clientSecret", auth.client_secret.is_some(), &[PlatformType::Intune]),
        ("certificate", auth.certificate.is_some(), &[PlatformType::Intune, PlatformType::Configmgr]),
        ("username", auth.username.is_some(), &[PlatformType::Configmgr, PlatformType::Wsus]),
        ("password", auth.password.is_some(), &[PlatformType::Configmgr]),
        ("sshKey", auth.ssh_key.is_some(), &[PlatformType::Wsus]),
    ];
    for (field, set, types) in fields {
        if set && !types.contains(&spec.platform_type) {
            diags.push(
                p.diag_value(
                    &format!("spec.auth.{field}"),
                    format!("`auth.{field}` does not apply to a platform of type `{}`", spec.platform_type.as_str()),
                )
                .help("remove it; see schemas/platform.schema.json for the fields of each type"),
            );
        }
    }
    if spec.platform_type == PlatformType::Intune {
        for (field, set) in [("tenantId", auth.tenant_id.is_some()), ("clientId", auth.client_id.is_some())] {
            if !set {
                diags.push(p.diag_value("spec.auth", format!("Intune authentication needs `auth.{field}`")));
            }
        }
        if auth.certificate.is_none() && auth.client_secret.is_none() {
            diags.push(p.diag_value(
                "spec.auth",
                "Intune authentication needs `auth.certificate` (recommended) or `auth.clientSecret`",
            ));
        }
    }
    endpoint
}

/// `configmgr.softwareUpdatePoint` names a Platform of type `wsus`.
fn check_software_update_point(
    p: &Parsed<PlatformSpec>,
    platforms: &BTreeMap<ObjectName, Parsed<PlatformSpec>>,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(sup) = p.doc.spec.configmgr.as_ref().and_then(|c| c.software_update_point.as_ref()) else { return };
    match platforms.iter().find(|(n, _)| n.as_str() == sup.as_str()) {
        Some((_, w)) if w.doc.spec.platform_type == PlatformType::Wsus => {}
        Some((_, w)) => diags.push(p.diag_value(
            "spec.configmgr.softwareUpdatePoint",
            format!("Platform `{sup}` is of type `{}`, not `wsus`", w.doc.spec.platform_type.as_str()),
        )),
        None => {
            let names: Vec<String> = platforms.keys().map(ToString::to_string).collect();
            let mut d = p.diag_value("spec.configmgr.softwareUpdatePoint", format!("Platform `{sup}` is not defined"));
            if let Some(s) = did_you_mean(sup.as_str(), names.iter().map(String::as_str)) {
                d = d.help(format!("did you mean `{s}`?"));
            }
            diags.push(d);
        }
    }
}

/// Longest group display name Entra ID accepts (256 characters).
const MAX_GROUP_NAME: usize = 256;

/// A ring's group: an id of the platform's form, or (Intune only) a display name.
fn check_group(
    r: &Parsed<RolloutSpec>,
    at: &str,
    group: &super::kinds::GroupRef,
    platform: &str,
    ty: Option<PlatformType>,
    diags: &mut Vec<Diagnostic>,
) {
    use super::kinds::GroupRef;
    match group {
        GroupRef::Id(id) if id.trim().is_empty() => diags.push(r.diag_value(at, "the group is empty")),
        GroupRef::Id(id) if ty == Some(PlatformType::Intune) && !is_object_id(id) => diags.push(
            r.diag_value(
                at,
                format!("`{id}` is not an Entra ID object id; Intune assigns apps to groups by id (a GUID)"),
            )
            .help(format!(
                "write the group's object id (Entra admin center > Groups > the group > Object ID), such as \
                     `group: 0f6c3b1e-8a5d-4c2f-9e7a-1b2c3d4e5f60`, or name it and let patchops look it up: \
                     `group: {{ name: {id} }}`"
            )),
        ),
        GroupRef::Id(_) => {}
        GroupRef::Named(n) if ty.is_some() && ty != Some(PlatformType::Intune) => diags.push(
            r.diag_value(
                at,
                format!("platform `{platform}` is not Intune; only an Entra ID group can be named by `{{ name: … }}`"),
            )
            .help(match ty {
                Some(PlatformType::Wsus) => {
                    format!("a WSUS computer target group is given by its name: `group: {}`", n.name)
                }
                _ => "give the ConfigMgr collection's id, such as `group: PO100012`".to_string(),
            }),
        ),
        GroupRef::Named(n) if n.name.trim().is_empty() => diags.push(r.diag_value(at, "the group's name is empty")),
        GroupRef::Named(n) if n.name.chars().count() > MAX_GROUP_NAME => diags.push(
            r.diag_value(at, format!("the group's name is longer than Entra ID allows ({MAX_GROUP_NAME} characters)")),
        ),
        GroupRef::Named(_) => {}
    }
}

/// An Entra ID object id: a GUID written 8-4-4-4-12 in hexadecimal.
pub fn is_object_id(id: &str) -> bool {
    id.len() == 36 && uuid::Uuid::try_parse(id).is_ok()
}

fn check_rollout(
    r: &Parsed<RolloutSpec>,
    platforms: &BTreeMap<ObjectName, Parsed<PlatformSpec>>,
    diags: &mut Vec<Diagnostic>,
) {
    if r.doc.spec.rings.is_empty() {
        diags.push(r.diag_value("spec.rings", "a Rollout needs at least one ring"));
    }
    let mut names = BTreeSet::new();
    for (i, ring) in r.doc.spec.rings.iter().enumerate() {
        if !names.insert(&ring.name) {
            diags.push(r.diag_value(&format!("spec.rings[{i}].name"), format!("duplicate ring name `{}`", ring.name)));
        }
        let mut on = BTreeSet::new();
        for (j, g) in ring.groups.iter().enumerate() {
            let at = format!("spec.rings[{i}].groups[{j}]");
            if !platforms.contains_key(&g.platform) {
                diags.push(undefined(
                    r,
                    &format!("{at}.platform"),
                    "Platform",
                    g.platform.as_str(),
                    platforms.keys().map(ToString::to_string),
                ));
            }
            if !on.insert(&g.platform) {
                diags.push(
                    r.diag_value(
                        &format!("{at}.platform"),
                        format!("ring `{}` has two groups on platform `{}`", ring.name, g.platform),
                    )
                    .help("a ring maps to one group per platform"),
                );
            }
            let ty = platforms.get(&g.platform).map(|p| p.doc.spec.platform_type);
            check_group(r, &format!("{at}.group"), &g.group, g.platform.as_str(), ty, diags);
        }
    }
    for (i, w) in r.doc.spec.maintenance_windows.iter().enumerate() {
        if chrono::NaiveTime::parse_from_str(&w.start, "%H:%M").is_err() {
            diags.push(
                r.diag_value(
                    &format!("spec.maintenanceWindows[{i}].start"),
                    format!("invalid start time `{}`", w.start),
                )
                .help("write it as HH:MM, such as 22:00 (in `timeZone`, UTC when it is left out)"),
            );
        }
        if let Some(zone) = &w.time_zone {
            if zone.parse::<chrono_tz::Tz>().is_err() {
                let near = chrono_tz::TZ_VARIANTS
                    .iter()
                    .map(|t| t.name())
                    .min_by_key(|n| strsim::levenshtein(&n.to_ascii_lowercase(), &zone.to_ascii_lowercase()))
                    .unwrap_or("Europe/Berlin");
                diags.push(
                    r.diag_value(
                        &format!("spec.maintenanceWindows[{i}].timeZone"),
                        format!("unknown time zone `{zone}`"),
                    )
                    .help(format!("use an IANA time zone name, such as {near}")),
                );
            }
        }
    }
}

fn check_catalog_source(c: &Parsed<CatalogSourceSpec>, diags: &mut Vec<Diagnostic>) -> Vec<TrustedKey> {
    let spec = &c.doc.spec;
    if spec.trusted_keys.is_empty() {
        diags.push(
            c.diag_value("spec.trustedKeys", "no trusted keys: no catalog could ever be accepted")
                .help("add the catalog publisher's minisign public key (the `RW…` line of its .pub file)"),
        );
    }
    let mut keys = Vec::new();
    for (i, k) in spec.trusted_keys.iter().enumerate() {
        match TrustedKey::parse(k) {
            Ok(key) => keys.push(key),
            Err(e) => diags.push(
                c.diag_value(&format!("spec.trustedKeys[{i}]"), format!("not a minisign public key: {e}"))
                    .help("paste the second line of the publisher's .pub file (base64, starting with `RW`)"),
            ),
        }
    }
    for (path, value) in [("spec.url", Some(&spec.url)), ("spec.signatureUrl", spec.signature_url.as_ref())] {
        if let Some(v) = value {
            if let Err(e) = crate::catalog::CatalogLocation::parse(v) {
                diags.push(c.diag_value(path, e.to_string()));
            }
        }
    }
    if let Some(interval) = spec.interval {
        let remote = matches!(
            crate::catalog::CatalogLocation::parse(&spec.url),
            Ok(crate::catalog::CatalogLocation::Url(u)) if matches!(u.scheme(), "https" | "http")
        );
        if !remote {
            diags.push(
                c.diag_value("spec.interval", "an interval applies to a catalog fetched from an https:// or http:// URL")
                    .help("a catalog in the repository or on disk changes with commits, which the daemon already watches; remove `interval`"),
            );
        } else if interval.0 < std::time::Duration::from_secs(1) {
            diags
                .push(c.diag_value("spec.interval", "the interval is shorter than one second").help("use `10m` or so"));
        }
    }
    keys
}

fn check_policy_set(ps: &Parsed<PolicySetSpec>, diags: &mut Vec<Diagnostic>) {
    let spec = &ps.doc.spec;
    let known = super::kinds::BuiltinPolicy::NAMES;
    for (i, name) in spec.builtin.iter().flatten().enumerate() {
        if let super::kinds::BuiltinName::Unknown(name) = name {
            let mut d = ps.diag_value(&format!("spec.builtin[{i}]"), format!("no built-in policy is called `{name}`"));
            d = match did_you_mean(name, known.iter().copied()) {
                Some(s) => d.help(format!("did you mean `{s}`? (`patchops policy list` shows them all)")),
                None => d.help(format!("built-in policies: {}", known.join(", "))),
            };
            diags.push(d);
        }
    }
    for (i, module) in spec.modules.iter().enumerate() {
        if !module.ends_with(".rego") || module.starts_with('/') || module.contains("://") {
            diags.push(
                ps.diag_value(&format!("spec.modules[{i}]"), format!("`{module}` is not a relative path to a .rego file"))
                    .help("give the module's path relative to this document, such as `policies/no-beta.rego`; it is read from the same commit as the fleet"),
            );
        }
    }
}
