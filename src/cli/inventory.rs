//! `patchops inventory record`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{out, print_error, report, ColorChoice, SourceArgs, EXIT_ERROR, EXIT_OK};

#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Observe the fleet's platforms (read-only) and write what each holds to a file.
    Record(RecordArgs),
}

#[derive(Debug, Args)]
#[command(after_long_help = "\
Writes <DIR>/<platform>.json for each Platform of the fleet (or each one named with
--platform): every object it holds, managed by patchops or not, as patchops observes it; and
<DIR>/<platform>.documents.json: the same objects as the platform's own documents (Graph's
mobileApps, the WSUS server's SDPs, the site's SDMPackageXML), from which `plan --emulate`
seeds its emulators. It changes nothing on the platforms. Run it where the platforms' credentials are (the runner that
applies); then plan anywhere else against the recording, with no credentials and no network:

  patchops inventory record --out inventory/          # on the applying runner
  patchops plan --inventory inventory/                # in a pull request's CI, even a fork's
  patchops plan --inventory inventory/ --emulate      # and a dry run on emulators seeded from it

Without --out the files go to <state-dir>/inventory/, where a Platform with
`endpoint: inventory` reads them. A recording is a snapshot: a plan made from it says what
would change as of when it was recorded, and a saved plan made from it is refused as stale by
apply if the platform changed since.")]
pub struct RecordArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Only this Platform (repeatable).
    #[arg(long, value_name = "NAME")]
    pub platform: Vec<String>,
    /// The directory to write to [default: the state directory's inventory/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub async fn run(cmd: InventoryCommand, color: ColorChoice) -> u8 {
    let InventoryCommand::Record(args) = cmd;
    let ctx = match args.source.context() {
        Ok(ctx) => ctx,
        Err(e) => {
            report(&e);
            return EXIT_ERROR;
        }
    };
    let recorded = match reconciler::ops::record_inventory(&ctx, &args.source.source(), &args.platform).await {
        Ok(r) => r,
        Err(e) => {
            report(&e);
            return EXIT_ERROR;
        }
    };
    let dir = args.out.clone().unwrap_or_else(|| args.source.state_dir().join("inventory"));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        print_error(&format!("cannot create {}: {e}", dir.display()));
        return EXIT_ERROR;
    }
    let mut s = String::new();
    for (name, observed, documents) in &recorded {
        let path = dir.join(format!("{name}.json"));
        if !documents.is_null() {
            let docs = reconciler::platform::inventory::documents_path(&dir, name);
            let written = serde_json::to_vec(documents)
                .map_err(|e| e.to_string())
                .and_then(|b| reconciler::state::write_atomic(&docs, &b).map_err(|e| e.to_string()));
            if let Err(e) = written {
                print_error(&format!("cannot write {}: {e}", docs.display()));
                return EXIT_ERROR;
            }
        }
        let bytes = match serde_json::to_vec_pretty(observed) {
            Ok(b) => b,
            Err(e) => {
                print_error(&format!("cannot write the inventory of {name}: {e}"));
                return EXIT_ERROR;
            }
        };
        if let Err(e) = reconciler::state::write_atomic(&path, &bytes) {
            print_error(&format!("cannot write {}: {e}", path.display()));
            return EXIT_ERROR;
        }
        let managed = observed.objects.iter().filter(|o| o.managed().is_some()).count();
        s += &format!(
            "recorded {name}: {} object(s), {managed} managed by patchops → {}\n",
            observed.objects.len(),
            path.display()
        );
    }
    out(color, &s);
    EXIT_OK
}
