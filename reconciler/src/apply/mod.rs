//! The apply engine: permitted actions → platform changes, journaled and audited.
//!
//! Work is grouped in *units*, one per (product, platform): a unit's actions run in ring order,
//! one after the other (they share platform objects), while units run concurrently within each
//! platform's `concurrency`. One unit failing does not stop the others. Transient platform
//! errors are retried with exponential backoff, honouring `Retry-After`.
//!
//! Nothing reaches a platform without passing the trust chain: actions arrive as
//! [`PermittedAction`]s (policy), content as [`VerifiedContent`] (SHA-256 and size), from a
//! [`VerifiedCatalog`] (signature, expiry, rollback).
//!
//! Crash safety: every action is journaled before it starts and after each platform call, and
//! every platform call is idempotent in effect. After a crash, the next run re-observes the
//! platforms and re-plans; an object created before the crash carries patchops's marker, so it
//! is found and reused (assigned) rather than created twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::catalog::VerifiedCatalog;
use crate::content::{ContentCache, ContentError, Expected, VerifiedContent};
use crate::model::{Fleet, ObjectName};
use crate::plan::{ActionKind, PlannedAction};
use crate::platform::{
    DesiredAssignment, DesiredObject, FieldMap, Observed, ObservedObject, PlatformClient, PlatformError,
    TrackingMarker, MANAGED_BY,
};
use crate::policy::PermittedAction;
use crate::source::{Provenance, SourceSnapshot};
use crate::state::{AuditRecord, StateDb, StateError};

/// What the engine needs besides the actions.
pub struct Engine<'a> {
    /// The fleet.
    pub fleet: &'a Fleet,
    /// Where it came from.
    pub snapshot: &'a SourceSnapshot,
    /// Verified catalogs.
    pub catalogs: &'a BTreeMap<ObjectName, VerifiedCatalog>,
    /// What each platform held when the plan was made.
    pub observed: &'a BTreeMap<ObjectName, Observed>,
    /// A client per platform.
    pub platforms: &'a BTreeMap<ObjectName, Box<dyn PlatformClient>>,
    /// The content cache.
    pub content: ContentCache,
    /// The state database.
    pub db: Arc<Mutex<StateDb>>,
    /// This run's id.
    pub run: String,
    /// What audit records are time-stamped with.
    pub clock: crate::clock::SharedClock,
    /// Who or what approved this run ([`crate::ops::Approval`], as text).
    pub approval: String,
    /// The user and host it runs as, when known.
    pub actor: Option<crate::state::Actor>,
}

/// How one action ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done; the object it produced or changed.
    Succeeded {
        /// The platform object.
        object_id: Option<String>,
    },
    /// It failed; why.
    Failed(String),
    /// Not attempted because an earlier action of the same product and platform failed.
    Skipped(String),
}

/// One action and its outcome.
#[derive(Debug, Clone)]
pub struct ActionReport {
    /// The action.
    pub action: PlannedAction,
    /// How it ended.
    pub outcome: Outcome,
    /// What the policies' `warn` rules said about it (it was permitted).
    pub warnings: Vec<crate::policy::PolicyFinding>,
}

/// A unit of work failed at a step.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{0}")]
    Other(String),
}

impl Engine<'_> {
    /// Runs permitted actions; returns every action's outcome, in the order given. A failure
    /// (the state database's included) is that action's outcome, never the end of the run.
    pub async fn run(&self, actions: Vec<PermittedAction>) -> Vec<ActionReport> {
        // Units: (product, platform) → actions in plan (ring) order.
        let mut units: BTreeMap<(String, String), Vec<PermittedAction>> = BTreeMap::new();
        let mut order = Vec::new();
        for a in actions {
            let key = (a.action().catalog_product.to_string(), a.action().platform.to_string());
            order.push((key.clone(), units.get(&key).map_or(0, Vec::len)));
            units.entry(key).or_default().push(a);
        }
        let semaphores: HashMap<String, Arc<tokio::sync::Semaphore>> = self
            .fleet
            .platforms
            .iter()
            .map(|(n, p)| {
                (n.to_string(), Arc::new(tokio::sync::Semaphore::new(usize::from(p.spec.concurrency.max(1)))))
            })
            .collect();
        let runs = units.into_iter().map(|(key, actions)| {
            let sem = semaphores.get(&key.1).cloned();
            async move {
                let _permit = match &sem {
                    Some(s) => s.clone().acquire_owned().await.ok(),
                    None => None,
                };
                let reports = self.run_unit(&key.1, actions).await;
                (key, reports)
            }
        });
        let done: HashMap<(String, String), Vec<ActionReport>> =
            futures::future::join_all(runs).await.into_iter().collect();
        let mut out = Vec::with_capacity(order.len());
        for (key, i) in order {
            if let Some(r) = done.get(&key).and_then(|v| v.get(i)) {
                out.push(r.clone());
            }
        }
        out
    }

    async fn run_unit(&self, platform: &str, actions: Vec<PermittedAction>) -> Vec<ActionReport> {
        let Some((name, client)) = self.platforms.iter().find(|(n, _)| n.as_str() == platform) else {
            return actions
                .into_iter()
                .map(|a| ActionReport {
                    action: a.action().clone(),
                    outcome: Outcome::Failed(format!("no client for platform `{platform}`")),
                    warnings: a.warnings().to_vec(),
                })
                .collect();
        };
        let catalog_product = actions.first().map(|a| a.action().catalog_product.to_string()).unwrap_or_default();
        // The managed objects of this product on this platform, kept current as the unit runs.
        let mut objects: Vec<ObservedObject> = self
            .observed
            .get(name)
            .map(|o| {
                o.objects
                    .iter()
                    .filter(|x| x.managed().is_some_and(|m| m.product.as_str() == catalog_product))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut reports = Vec::with_capacity(actions.len());
        let mut failed: Option<String> = None;
        for permitted in actions {
            let action = permitted.action().clone();
            if let Some(why) = &failed {
                let warnings = permitted.warnings().to_vec();
                reports.push(ActionReport { action, outcome: Outcome::Skipped(why.clone()), warnings });
                continue;
            }
            let (run, product, platform_name, ring, kind) = (
                self.run.clone(),
                action.product.to_string(),
                action.platform.to_string(),
                action.ring.as_deref().map(str::to_string),
                action.action.as_str(),
            );
            let journal = self.with_db(move |db| db.begin(&run, &product, &platform_name, ring.as_deref(), kind)).await;
            let (journal_id, outcome, content) = match journal {
                Err(e) => (None, Err(StepError::State(e)), None),
                Ok(id) => {
                    let mut content = None;
                    let r = self.run_action(client.as_ref(), &action, &mut objects, id, &mut content).await;
                    (Some(id), r, content)
                }
            };
            // A failed action is finished too (outcome `failed`): only a run that died leaves
            // a journal entry open, and only that is reported as interrupted next time.
            let outcome = match outcome {
                Ok(object_id) => Outcome::Succeeded { object_id },
                Err(e) => {
                    let message = e.to_string();
                    failed = Some(format!("an earlier action of {} on {platform} failed", action.product));
                    Outcome::Failed(message)
                }
            };
            crate::failpoint::hit("before-audit");
            let record = self.audit_record(&action, &outcome, content.as_ref(), &permitted);
            // The journal step that finishes the action, its audit record and (for a publish or
            // update that succeeded) the ring history are one transaction. Should it fail, the
            // next apply finds the ring running the version without a record and lets its soak
            // count from then (fail closed).
            if let Err(e) = self.with_db(move |db| db.finish(journal_id, &record)).await {
                tracing::error!(error = %e, "could not write the audit record");
            }
            reports.push(ActionReport { action, outcome, warnings: permitted.warnings().to_vec() });
        }
        reports
    }

    /// Runs `f` on the state database off the async threads (SQLite blocks).
    async fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut StateDb) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let db = self.db.clone();
        let poisoned = || StateError::new(std::path::Path::new("state.db"), "lock poisoned");
        tokio::task::spawn_blocking(move || {
            let mut db = db.lock().map_err(|_| poisoned())?;
            f(&mut db)
        })
        .await
        .map_err(|e| StateError::new(std::path::Path::new("state.db"), format!("the database task failed: {e}")))?
    }

    /// Records a journal step of an action (a crash test may stop the process right after).
    async fn step(&self, journal: i64, step: &str, detail: &str) -> Result<(), StateError> {
        let (step, detail) = (step.to_string(), detail.to_string());
        self.with_db(move |db| db.step(journal, &step, &detail)).await?;
        crate::failpoint::hit("step");
        Ok(())
    }

    async fn run_action(
        &self,
        client: &dyn PlatformClient,
        a: &PlannedAction,
        objects: &mut Vec<ObservedObject>,
        journal: i64,
        content_out: &mut Option<VerifiedContent>,
    ) -> Result<Option<String>, StepError> {
        match a.action {
            ActionKind::Publish | ActionKind::Update => {
                let version =
                    a.version.as_deref().ok_or_else(|| StepError::Other("the action has no version".into()))?;
                let group = a.group.as_deref().ok_or_else(|| StepError::Other("the action has no group".into()))?;
                let (desired, assignment, expected, location) = self.desired(a)?;
                // Reuse an object only when it holds exactly this content.
                let existing = objects.iter().position(|o| {
                    o.managed_complete().is_some_and(|m| m.version == version && m.content_digest == expected.sha256)
                });
                let index = match existing {
                    Some(i) => i,
                    None => {
                        let content = self.fetch(&location, expected).await?;
                        self.step(journal, "content-verified", &content.sha256().to_string()).await?;
                        crate::failpoint::hit("after-content");
                        let id = client.create(&desired, &content).await?;
                        *content_out = Some(content);
                        self.step(journal, "created", &id).await?;
                        crate::failpoint::hit("after-create");
                        // An update: the new object supersedes the one the ring runs now.
                        if let (ActionKind::Update, Some(old)) = (a.action, a.object_id.as_deref()) {
                            if old != id {
                                client.supersede(&id, old).await?;
                                self.step(journal, "superseded", old).await?;
                            }
                        }
                        objects.push(ObservedObject {
                            relationships: Vec::new(),
                            incomplete: None,
                            id,
                            display_name: desired.fields.get("displayName").unwrap_or_default().to_string(),
                            marker: Some(desired.marker.clone()),
                            fields: desired.fields.clone(),
                            assignments: Vec::new(),
                        });
                        objects.len() - 1
                    }
                };
                let target = &mut objects[index];
                let mut list = assignments_of(target);
                list.retain(|x| x.group != group);
                list.push(DesiredAssignment { group: group.to_string(), fields: assignment });
                let target_id = target.id.clone();
                client.set_assignments(&target_id, &list).await?;
                set_local(target, &list);
                self.step(journal, "assigned", &format!("{target_id} → {group}")).await?;
                crate::failpoint::hit("after-assign");
                // Every other version of the product leaves this group. An object left with no
                // assignment is kept, superseded, when the platform retains versions (the
                // planner retires what exceeds the retention, relationships first); otherwise,
                // or when it is another copy of this version, it is deleted.
                let keeps = self
                    .fleet
                    .platforms
                    .iter()
                    .find(|(n, _)| n.as_str() == &*a.platform)
                    .is_some_and(|(_, p)| p.spec.keep_versions() > 0);
                let others: Vec<usize> = (0..objects.len())
                    .filter(|&i| i != index && objects[i].assignments.iter().any(|x| x.group == group))
                    .collect();
                for i in others.into_iter().rev() {
                    let superseded = objects[i].managed().is_some_and(|m| m.version != version);
                    let keep = keeps && superseded && objects[i].incomplete.is_none();
                    self.withdraw(client, objects, i, Some(group), keep, journal).await?;
                }
                Ok(Some(target_id))
            }
            ActionKind::Reconfigure => {
                let id = a.object_id.as_deref().ok_or_else(|| StepError::Other("the action has no object".into()))?;
                let group = a.group.as_deref().unwrap_or_default();
                let (desired, assignment, _, _) = self.desired(a)?;
                let object = objects
                    .iter_mut()
                    .find(|o| o.id == id)
                    .ok_or_else(|| StepError::Other(format!("object {id} is no longer on the platform")))?;
                if a.changes.iter().any(|c| !c.field.starts_with("assignment.")) {
                    let mut desired = desired;
                    // Keep the object's own marker (its content did not change).
                    if let Some(m) = object.managed() {
                        desired.marker = m.clone();
                    }
                    client.reconfigure(id, &desired).await?;
                    self.step(journal, "reconfigured", id).await?;
                }
                if a.changes.iter().any(|c| c.field.starts_with("assignment.")) {
                    let mut list = assignments_of(object);
                    for x in list.iter_mut().filter(|x| x.group == group) {
                        x.fields = assignment.clone();
                    }
                    client.set_assignments(id, &list).await?;
                    set_local(object, &list);
                    self.step(journal, "assignment-updated", id).await?;
                }
                Ok(Some(id.to_string()))
            }
            ActionKind::Retire => {
                let id = a.object_id.as_deref().ok_or_else(|| StepError::Other("the action has no object".into()))?;
                let Some(i) = objects.iter().position(|o| o.id == id) else {
                    // Already gone (an earlier action of this unit deleted it): nothing to do.
                    return Ok(Some(id.to_string()));
                };
                self.withdraw(client, objects, i, a.group.as_deref(), false, journal).await?;
                Ok(Some(id.to_string()))
            }
            ActionKind::None => Ok(a.object_id.as_deref().map(str::to_string)),
        }
    }

    /// Takes `group` off object `i` (every group when `None`), and deletes the object once no
    /// assignment is left (a retired ring, or an old version whose last ring moved on) unless
    /// `keep` says to retain it, unassigned.
    async fn withdraw(
        &self,
        client: &dyn PlatformClient,
        objects: &mut Vec<ObservedObject>,
        i: usize,
        group: Option<&str>,
        keep: bool,
        journal: i64,
    ) -> Result<(), StepError> {
        let mut rest = assignments_of(&objects[i]);
        rest.retain(|x| group.is_some_and(|g| x.group != g));
        let id = objects[i].id.clone();
        if rest.is_empty() && keep {
            client.set_assignments(&id, &rest).await?;
            set_local(&mut objects[i], &rest);
            self.step(journal, "unassigned (kept)", &id).await?;
        } else if rest.is_empty() {
            client.delete(&id).await?;
            objects.remove(i);
            self.step(journal, "deleted", &id).await?;
        } else {
            client.set_assignments(&id, &rest).await?;
            set_local(&mut objects[i], &rest);
            self.step(journal, "unassigned", &id).await?;
        }
        Ok(())
    }

    /// The desired object and assignment of a publish/update/reconfigure, from the fleet and
    /// the verified catalog, with the content it needs and where to get it.
    fn desired(&self, a: &PlannedAction) -> Result<(DesiredObject, FieldMap, Expected, Location), StepError> {
        let product = self
            .fleet
            .product(&a.product)
            .ok_or_else(|| StepError::Other(format!("Product `{}` is not in the fleet", a.product)))?;
        let target = product
            .targets
            .iter()
            .find(|t| t.spec.platform.as_str() == &*a.platform)
            .ok_or_else(|| StepError::Other(format!("Product `{}` does not target `{}`", a.product, a.platform)))?;
        let platform = self
            .fleet
            .platforms
            .get(&target.spec.platform)
            .ok_or_else(|| StepError::Other(format!("no Platform `{}`", a.platform)))?;
        let catalog = self
            .catalogs
            .get(&product.catalog)
            .ok_or_else(|| StepError::Other(format!("catalog `{}` is not verified", product.catalog)))?;
        let selection = crate::plan::select_installer(product, catalog).map_err(|e| StepError::Other(e.to_string()))?;
        let (fields, assignment) =
            crate::plan::desired_fields(product, target, platform.spec.platform_type, &selection);
        let commit = match self.snapshot.provenance() {
            Provenance::Commit { commit, .. } => Some(commit.clone()),
            Provenance::Directory { .. } => None,
        };
        let marker = TrackingMarker {
            managed_by: MANAGED_BY.into(),
            product: product.spec.product.clone(),
            version: selection.version.to_string(),
            commit,
            content_digest: selection.installer.sha256,
        };
        let location = self.locate(product, &selection.installer.url)?;
        let expected = Expected { sha256: selection.installer.sha256, size: selection.installer.size };
        let object = DesiredObject {
            marker,
            fields,
            installer: selection.installer.clone(),
            description: selection.product.description.clone().unwrap_or_else(|| selection.product.name.clone()),
            product_name: selection.product.name.clone(),
            homepage: selection.product.homepage.clone(),
            origin: Some(match &location {
                Location::Url(u) => crate::platform::InstallerOrigin::Url(u.clone()),
                Location::Repo(path) => crate::platform::InstallerOrigin::Repository(path.clone()),
            }),
        };
        Ok((object, assignment, expected, location))
    }

    /// Where an installer is: an absolute URL, or a path relative to its catalog (which may
    /// itself be a file of the fleet's commit).
    fn locate(&self, product: &crate::model::Product, url: &str) -> Result<Location, StepError> {
        if let Ok(u) = url::Url::parse(url) {
            return Ok(Location::Url(u));
        }
        let source = self
            .fleet
            .catalog_sources
            .get(&product.catalog)
            .ok_or_else(|| StepError::Other(format!("no CatalogSource `{}`", product.catalog)))?;
        match url::Url::parse(&source.spec.url) {
            Ok(catalog_url) => catalog_url
                .join(url)
                .map(Location::Url)
                .map_err(|e| StepError::Other(format!("installer URL {url} relative to {catalog_url}: {e}"))),
            Err(_) => {
                let catalog_path = self.snapshot.resolve(&source.origin.file, &source.spec.url).ok_or_else(|| {
                    StepError::Other(format!("catalog path {} leaves the repository", source.spec.url))
                })?;
                crate::source::join_relative(&catalog_path, url)
                    .map(Location::Repo)
                    .ok_or_else(|| StepError::Other(format!("installer path {url} leaves the repository")))
            }
        }
    }

    async fn fetch(&self, location: &Location, expected: Expected) -> Result<VerifiedContent, StepError> {
        let content = match location {
            Location::Url(u) => self.content.fetch(u, expected).await?,
            // Already verified and cached: no need to read the blob out of git again. Reading git
            // and hashing run off the async threads.
            Location::Repo(path) => {
                let (cache, snapshot, path) = (self.content.clone(), self.snapshot.clone(), path.clone());
                tokio::task::spawn_blocking(move || -> Result<VerifiedContent, StepError> {
                    match cache.cached(expected) {
                        Ok(Some(cached)) => Ok(cached),
                        _ => {
                            let bytes = snapshot
                                .read_repo_file(&path, expected.size)
                                .map_err(|e| StepError::Other(e.to_string()))?
                                .ok_or_else(|| {
                                    StepError::Other(format!("installer {path} is not in the fleet's commit"))
                                })?;
                            Ok(cache.admit(&path, &bytes, expected)?)
                        }
                    }
                })
                .await
                .map_err(|e| StepError::Other(format!("reading the installer failed: {e}")))??
            }
        };
        let origin = match location {
            Location::Url(u) => crate::http::redact(u),
            Location::Repo(p) => p.clone(),
        };
        let (sha256, size) = (content.sha256().to_string(), content.size());
        self.with_db(move |db| db.content_verified(&sha256, size, &origin)).await?;
        Ok(content)
    }

    fn audit_record(
        &self,
        a: &PlannedAction,
        outcome: &Outcome,
        content: Option<&VerifiedContent>,
        permitted: &PermittedAction,
    ) -> AuditRecord {
        let product = self.fleet.product(&a.product);
        let catalog = product.and_then(|p| self.catalogs.get(&p.catalog));
        let (outcome_text, message, object_id) = match outcome {
            Outcome::Succeeded { object_id } => ("succeeded", a.message.to_string(), object_id.clone()),
            Outcome::Failed(m) => ("failed", m.clone(), a.object_id.as_deref().map(str::to_string)),
            Outcome::Skipped(m) => ("skipped", m.clone(), None),
        };
        let mut policy = format!(
            "permitted by {} polic{}",
            permitted.policies().len(),
            if permitted.policies().len() == 1 { "y" } else { "ies" }
        );
        if !permitted.policies().is_empty() {
            policy += &format!(" ({})", permitted.policies().join(", "));
        }
        // What the record names stays true later: a commit is not called `(HEAD)` once HEAD has
        // moved on, and a retire names the version it took away.
        let source = match self.snapshot.provenance() {
            Provenance::Commit { reference, commit, .. } if reference == "HEAD" => {
                format!("commit {}", commit.get(..12).unwrap_or(commit))
            }
            other => other.to_string(),
        };
        let version = a.version.as_deref().map(str::to_string).or_else(|| {
            (a.action == ActionKind::Retire)
                .then(|| a.changes.iter().find(|c| &*c.field == "version").and_then(|c| c.from.as_deref()))
                .flatten()
                .map(str::to_string)
        });
        AuditRecord {
            at: self.clock.now(),
            run: self.run.clone(),
            source,
            catalog: catalog.map(|c| c.source_name().to_string()),
            catalog_serial: catalog.map(VerifiedCatalog::serial),
            content_sha256: content.map(|c| c.sha256().to_string()),
            product: a.product.to_string(),
            catalog_product: a.catalog_product.to_string(),
            platform: a.platform.to_string(),
            ring: a.ring.as_deref().map(str::to_string),
            group: a.group.as_deref().map(str::to_string),
            action: a.action.as_str().to_string(),
            version,
            object_id,
            policy,
            outcome: outcome_text.into(),
            message,
            approval: Some(self.approval.clone()),
            user: self.actor.as_ref().map(|a| a.user.clone()),
            host: self.actor.as_ref().map(|a| a.host.clone()),
            commit_signer: match self.snapshot.verdict() {
                crate::source::signature::CommitVerdict::Verified { head, .. } => {
                    Some(format!("{} ({} key {})", head.signer, head.kind, head.key))
                }
                crate::source::signature::CommitVerdict::NotRequired => None,
            },
        }
    }
}

/// Where an installer's bytes come from.
#[derive(Debug, Clone)]
enum Location {
    Url(url::Url),
    /// A path in the fleet's repository, read from the same commit.
    Repo(String),
}

fn assignments_of(o: &ObservedObject) -> Vec<DesiredAssignment> {
    o.assignments.iter().map(|a| DesiredAssignment { group: a.group.clone(), fields: a.fields.clone() }).collect()
}

fn set_local(o: &mut ObservedObject, list: &[DesiredAssignment]) {
    o.assignments = list
        .iter()
        .map(|a| crate::platform::ObservedAssignment { group: a.group.clone(), fields: a.fields.clone(), since: None })
        .collect();
}
