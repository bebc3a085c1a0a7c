//! `patchops package`: installer packages for platforms, on their own.

use std::path::PathBuf;

use clap::Subcommand;
use reconciler::platform::intune::intunewin;

use super::{out, print_error, ColorChoice, EXIT_ERROR, EXIT_OK};

#[derive(Debug, Subcommand)]
pub enum PackageCommand {
    /// Make a .intunewin (Intune Win32 app package) from an installer, on any system.
    ///
    /// The installer is zipped, encrypted with fresh AES-256-CBC and HMAC-SHA256 keys, and
    /// wrapped with its Detection.xml (and MsiInfo read from the MSI itself), in one streaming
    /// pass. The keys are printed only with --show-keys.
    Intunewin {
        /// The installer (MSI, EXE, …).
        source: PathBuf,
        /// The package to write [default: <source name without its extension>.intunewin, in the
        /// current directory, as Microsoft's IntuneWinAppUtil names it].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print Graph's fileEncryptionInfo (the package's keys) as JSON.
        #[arg(long)]
        show_keys: bool,
    },
    /// Open a .intunewin: check its MAC, decrypt it, check its digest, and write the installer.
    Unpack {
        /// The package.
        package: PathBuf,
        /// Directory to write the installer into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

pub fn run(cmd: PackageCommand, color: ColorChoice) -> u8 {
    match cmd {
        PackageCommand::Intunewin { source, out: dest, show_keys } => {
            // As Microsoft's IntuneWinAppUtil names it: setup.msi → setup.intunewin.
            let dest = dest.unwrap_or_else(|| {
                let mut name = source.file_stem().map(|n| n.to_os_string()).unwrap_or_default();
                name.push(".intunewin");
                PathBuf::from(name)
            });
            let is_msi = source.extension().is_some_and(|e| e.eq_ignore_ascii_case("msi"));
            let msi = if is_msi {
                match reconciler::msi::read(&source) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        print_error(&e.to_string());
                        return EXIT_ERROR;
                    }
                }
            } else {
                None
            };
            let setup = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            match intunewin::pack(&source, &setup, &dest, msi) {
                Ok(p) => {
                    let mut s = format!(
                        "wrote {} ({} bytes encrypted, {} bytes of content; setup file {})\n",
                        p.path.display(),
                        p.encrypted_size,
                        p.unencrypted_size,
                        p.setup_file
                    );
                    if let Some(m) = &p.msi {
                        s += &format!(
                            "MSI {} {} ({}), {}\n",
                            m.product_code,
                            m.product_version,
                            m.publisher.as_deref().unwrap_or("no publisher"),
                            m.execution_context.package_type()
                        );
                    }
                    if show_keys {
                        s += &format!(
                            "{}\n",
                            serde_json::to_string_pretty(&p.encryption.to_graph()).unwrap_or_default()
                        );
                    }
                    out(color, &s);
                    EXIT_OK
                }
                Err(e) => {
                    print_error(&e.to_string());
                    EXIT_ERROR
                }
            }
        }
        PackageCommand::Unpack { package, out: dir } => match intunewin::unpack(&package, &dir) {
            Ok(u) => {
                out(color, &format!("MAC and SHA-256 verified; wrote {} ({} bytes)\n", u.setup_file.display(), u.size));
                EXIT_OK
            }
            Err(e) => {
                print_error(&e.to_string());
                EXIT_ERROR
            }
        },
    }
}
