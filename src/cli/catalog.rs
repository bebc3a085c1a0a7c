//! `patchops catalog …`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use reconciler::catalog::edit::{self, SigningKey};
use reconciler::catalog::{TrustedKey, UnverifiedCatalog};
use reconciler::model::ObjectName;
use reconciler::state::StateDir;

use super::{out, print_error, ColorChoice, EXIT_ERROR, EXIT_OK};

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Generate a minisign key pair for signing catalogs (NAME.key, NAME.pub).
    ///
    /// The secret key is written without a password, as `minisign -G -W` does, with mode 0600:
    /// keep it out of git and in a secret store. Put the printed public key line in the
    /// `trustedKeys` of your CatalogSource.
    Keygen {
        /// Directory to write the key files into.
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
        /// File name stem of the key files.
        #[arg(long, default_value = "catalog")]
        name: String,
        /// Overwrite existing key files.
        #[arg(long)]
        force: bool,
    },
    /// Sign a catalog: checks that it is a valid catalog, then writes CATALOG.minisig.
    ///
    /// The signature is a standard minisign signature: `minisign -Vm CATALOG -p NAME.pub`
    /// verifies it.
    Sign {
        /// The catalog JSON file.
        catalog: PathBuf,
        /// The minisign secret key file (from `patchops catalog keygen` or `minisign -G`).
        #[arg(long)]
        key: PathBuf,
        /// Environment variable holding the secret key's password, for encrypted keys.
        #[arg(long)]
        password_env: Option<String>,
        /// Where to write the signature [default: CATALOG.minisig].
        #[arg(long)]
        signature: Option<PathBuf>,
    },
    /// Verify a catalog file against public keys: signature, expiry and, with --source,
    /// rollback against the state directory (read only: nothing is recorded).
    Verify(VerifyArgs),
    /// Forget the highest serial seen for a catalog source, so its next valid catalog is
    /// accepted whatever its serial.
    ///
    /// CAUTION: this lifts rollback protection for that source until the next catalog is
    /// accepted. Use it only when the publisher deliberately restarted its serials.
    Forget {
        /// The CatalogSource's name.
        source: String,
        /// State directory [default: .patchops at the root of the git repository the current
        /// directory is in, else in the current directory].
        #[arg(long, value_name = "DIR", env = "PATCHOPS_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The catalog JSON file.
    catalog: PathBuf,
    /// The signature file [default: CATALOG.minisig].
    #[arg(long)]
    signature: Option<PathBuf>,
    /// A trusted public key: the `RW…` base64 line, or a path to a minisign .pub file. Repeatable.
    #[arg(long = "public-key", required = true)]
    public_keys: Vec<String>,
    /// Compare the serial with the history of this CatalogSource in the state directory.
    #[arg(long)]
    source: Option<String>,
    /// State directory [default: .patchops at the root of the git repository the current
    /// directory is in, else in the current directory].
    #[arg(long, value_name = "DIR", env = "PATCHOPS_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Output format: text, or JSON (schemas/catalog-verify-report.schema.json; a refusal is
    /// an error report with the refusal's reason).
    #[arg(long, value_enum, default_value_t = super::ReportFormat::Text)]
    format: super::ReportFormat,
}

fn sig_path(catalog: &Path, explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(|| {
        let mut s = catalog.as_os_str().to_owned();
        s.push(".minisig");
        PathBuf::from(s)
    })
}

fn fail(msg: String) -> u8 {
    print_error(&msg);
    EXIT_ERROR
}

pub async fn run(cmd: CatalogCommand, color: ColorChoice) -> u8 {
    match cmd {
        CatalogCommand::Keygen { out_dir, name, force } => keygen(&out_dir, &name, force, color),
        CatalogCommand::Sign { catalog, key, password_env, signature } => {
            let password = match password_env {
                None => None,
                Some(var) => match std::env::var(&var) {
                    Ok(p) => Some(p),
                    Err(_) => return fail(format!("--password-env {var}: the variable is not set")),
                },
            };
            let key_text = match std::fs::read_to_string(&key) {
                Ok(t) => t,
                Err(e) => return fail(format!("cannot read secret key {}: {e}", key.display())),
            };
            let signing = match SigningKey::from_text(&key_text, password) {
                Ok(k) => k,
                Err(e) => return fail(format!("secret key {}: {e}", key.display())),
            };
            let bytes = match std::fs::read(&catalog) {
                Ok(b) => b,
                Err(e) => return fail(format!("cannot read catalog {}: {e}", catalog.display())),
            };
            let signed = match edit::sign(bytes, &signing) {
                Ok(s) => s,
                Err(e) => return fail(format!("{}: {e}", catalog.display())),
            };
            let sig = sig_path(&catalog, signature);
            if let Err(e) = reconciler::state::write_atomic(&sig, signed.signature.as_bytes()) {
                return fail(format!("cannot write {}: {e}", sig.display()));
            }
            out(color, &format!("signed {} with key {}: {}\n", catalog.display(), signing.key_id(), sig.display()));
            EXIT_OK
        }
        CatalogCommand::Verify(args) => verify(args, color),
        CatalogCommand::Forget { source, state_dir } => {
            let state_dir = super::state_dir_or_default(state_dir.as_deref(), ".");
            let result = StateDir::new(&state_dir).catalogs().and_then(|mut h| h.forget(&source));
            match result {
                Ok(true) => {
                    out(color, &format!("forgot the catalog history of `{source}` in {}\n", state_dir.display()));
                    EXIT_OK
                }
                Ok(false) => fail(format!("no catalog history for `{source}` in {}", state_dir.display())),
                Err(e) => fail(e.to_string()),
            }
        }
    }
}

fn keygen(dir: &Path, name: &str, force: bool, color: ColorChoice) -> u8 {
    let (sk_path, pk_path) = (dir.join(format!("{name}.key")), dir.join(format!("{name}.pub")));
    for p in [&sk_path, &pk_path] {
        if p.exists() && !force {
            return fail(format!("{} exists; pass --force to overwrite it", p.display()));
        }
    }
    let key = match edit::keygen() {
        Ok(k) => k,
        Err(e) => return fail(format!("cannot generate a key: {e}")),
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        return fail(format!("cannot create {}: {e}", dir.display()));
    }
    if let Err(e) = write_secret(&sk_path, key.secret_file.expose()) {
        return fail(format!("cannot write {}: {e}", sk_path.display()));
    }
    if let Err(e) = std::fs::write(&pk_path, &key.public_file) {
        return fail(format!("cannot write {}: {e}", pk_path.display()));
    }
    out(
        color,
        &format!(
            "key {} written: {} (secret, keep out of git) and {}\nadd to your CatalogSource:\n  trustedKeys:\n    - {}\n",
            key.key_id,
            sk_path.display(),
            pk_path.display(),
            key.public_base64
        ),
    );
    EXIT_OK
}

fn write_secret(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(text.as_bytes())
}

fn verify(args: VerifyArgs, color: ColorChoice) -> u8 {
    let json = args.format == super::ReportFormat::Json;
    let fail = |reason: &str, msg: String| -> u8 {
        print_error(&msg);
        if json {
            super::print_json(&reconciler::ops::report::ErrorReport::message(reason, msg));
        }
        EXIT_ERROR
    };
    let mut keys = Vec::new();
    for k in &args.public_keys {
        let text = if Path::new(k).is_file() { std::fs::read_to_string(k).unwrap_or_default() } else { k.clone() };
        match TrustedKey::parse(&text) {
            Ok(key) => keys.push(key),
            Err(e) => return fail("NotAKey", format!("--public-key {k}: not a minisign public key: {e}")),
        }
    }
    let name = args.source.clone().unwrap_or_else(|| "command-line".into());
    let Ok(source_name) = ObjectName::new(name.clone()) else {
        return fail("BadName", format!("--source {name}: not a valid CatalogSource name"));
    };
    let seen = match &args.source {
        None => None,
        Some(_) => match StateDir::new(super::state_dir_or_default(args.state_dir.as_deref(), ".")).catalogs() {
            Ok(h) => h.seen(&source_name),
            Err(e) => return fail(e.reason(), e.to_string()),
        },
    };
    let bytes = match std::fs::read(&args.catalog) {
        Ok(b) => b,
        Err(e) => return fail("Unreadable", format!("cannot read catalog {}: {e}", args.catalog.display())),
    };
    let sig = sig_path(&args.catalog, args.signature.clone());
    let signature = std::fs::read_to_string(&sig).ok();
    let unverified = UnverifiedCatalog::new(
        source_name,
        args.catalog.display().to_string(),
        bytes,
        sig.display().to_string(),
        signature,
    );
    match unverified.verify(&keys, None, seen, reconciler::clock::Clock::now(&reconciler::clock::SystemClock)) {
        Ok(c) if json => super::print_json(&reconciler::ops::report::CatalogEntry::of(&c)),
        Ok(c) => {
            out(
                color,
                &format!(
                    "catalog {} verified: serial {}, {} products, signed by key {}, expires {}, sha256 {}\n",
                    args.catalog.display(),
                    c.serial(),
                    c.catalog().products.len(),
                    c.key_id(),
                    c.catalog().expires,
                    c.digest()
                ),
            );
            EXIT_OK
        }
        Err(e) => fail(e.reason(), e.to_string()),
    }
}
