//! PowerShell that patchops generates to run on devices: detection scripts (is this version
//! installed?) and requirement scripts (is some version installed, for update-only
//! deployments), from the catalog's [`Detection`] data.
//!
//! A script starts as [`Script<Unsigned>`]; only [`crate::authenticode::CodeSigner`] makes a
//! [`Script<Signed>`]. Platforms that tell devices to enforce a signature take the signed type,
//! so an unsigned script cannot be sent with `enforceSignatureCheck` by mistake.
//!
//! Scripts are deterministic (the same input gives the same bytes), use CRLF line ends and
//! ASCII-safe quoting: every value from the catalog is a single-quoted PowerShell literal.

use std::marker::PhantomData;

use base64::Engine as _;

use crate::catalog::Detection;
use crate::model::Version;

/// A script no one has signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsigned;

/// A script carrying an Authenticode signature block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed;

/// A generated PowerShell script in state `S` ([`Unsigned`] or [`Signed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script<S> {
    name: String,
    text: String,
    state: PhantomData<S>,
}

impl<S> Script<S> {
    /// A short name for messages, such as `detection script for 7-Zip 24.08`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The script's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The script as standard base64 of its UTF-8 bytes (Graph's `scriptContent`).
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.text.as_bytes())
    }
}

impl Script<Unsigned> {
    /// A generated script: `name` for messages, `text` with CRLF line ends. Generators in this
    /// crate (here, and the WSUS request scripts) make them; they start unsigned.
    pub(crate) fn generated(name: String, text: String) -> Script<Unsigned> {
        Script { name, text, state: PhantomData }
    }

    /// The signed form; only the signer calls this, with the text and signature block it made.
    pub(crate) fn into_signed(self, text: String) -> Script<Signed> {
        Script { name: self.name, text, state: PhantomData }
    }
}

impl Script<Signed> {
    /// The same script with its signature block replaced by the signer (a timestamp added).
    pub(crate) fn retimestamped(self, text: String) -> Script<Signed> {
        Script { name: self.name, text, state: PhantomData }
    }
}

/// What the requirement script prints when some version is installed.
pub const PRESENT: &str = "installed";

/// A detection script: prints a line and exits 0 when the version found at `detection` is at
/// least `version` (or the detection's own version); prints nothing otherwise. That is what
/// Intune and Configuration Manager read as "detected".
pub fn detection(product: &str, version: &Version, detection: &Detection) -> Script<Unsigned> {
    let wanted = detection_version(detection).unwrap_or(version);
    let body = format!(
        "$wanted = ConvertTo-PatchopsVersion {}\r\n\
         $found = Get-PatchopsInstalledVersion\r\n\
         if ($null -ne $found -and (ConvertTo-PatchopsVersion $found) -ge $wanted) {{\r\n\
         \x20   Write-Output \"Detected {} $found\"\r\n\
         }}\r\n\
         exit 0\r\n",
        literal(&wanted.to_string()),
        literal_inner(product)
    );
    Script {
        name: format!("detection script for {product} {version}"),
        text: assemble(&format!("detection: {product} {version} or later"), detection, &body),
        state: PhantomData,
    }
}

/// A requirement script: prints [`PRESENT`] when any version is installed at `detection`, and
/// `absent` otherwise (for deployments that only update devices that already have the product).
pub fn presence(product: &str, detection: &Detection) -> Script<Unsigned> {
    let body = format!(
        "if ($null -ne (Get-PatchopsInstalledVersion)) {{ Write-Output '{PRESENT}' }} else {{ Write-Output 'absent' }}\r\n\
         exit 0\r\n"
    );
    Script {
        name: format!("requirement script for {product} (installed)"),
        text: assemble(&format!("requirement: some version of {product} is installed"), detection, &body),
        state: PhantomData,
    }
}

fn detection_version(d: &Detection) -> Option<&Version> {
    match d {
        Detection::File { version, .. } | Detection::Registry { version, .. } => version.as_ref(),
    }
}

/// Header, the shared functions, the lookup for `detection`, then `body`.
fn assemble(purpose: &str, detection: &Detection, body: &str) -> String {
    let lookup = match detection {
        Detection::File { path, .. } => format!(
            "    $path = [Environment]::ExpandEnvironmentVariables({})\r\n\
             \x20   $item = Get-Item -LiteralPath $path -ErrorAction SilentlyContinue\r\n\
             \x20   if ($null -eq $item) {{ return $null }}\r\n\
             \x20   return $item.VersionInfo.FileVersion\r\n",
            literal(path)
        ),
        Detection::Registry { key, value, .. } => format!(
            "    $item = Get-ItemProperty -LiteralPath {} -Name {} -ErrorAction SilentlyContinue\r\n\
             \x20   if ($null -eq $item) {{ return $null }}\r\n\
             \x20   return [string]$item.{}\r\n",
            literal(&format!("Registry::{key}")),
            literal(value),
            literal(value)
        ),
    };
    let mut s = String::new();
    s.push_str(&format!("# patchops {}\r\n", comment(purpose)));
    s.push_str("# Generated by patchops from the signed catalog. Do not edit: a change breaks its signature.\r\n");
    s.push_str("$ErrorActionPreference = 'Stop'\r\n");
    s.push_str("function ConvertTo-PatchopsVersion([string]$Text) {\r\n");
    s.push_str("    $parts = @($Text -split '[^0-9]+' | Where-Object { $_ -ne '' } | Select-Object -First 4)\r\n");
    s.push_str("    while ($parts.Count -lt 2) { $parts += '0' }\r\n");
    s.push_str("    return [version]($parts -join '.')\r\n");
    s.push_str("}\r\n");
    s.push_str("function Get-PatchopsInstalledVersion {\r\n");
    s.push_str(&lookup);
    s.push_str("}\r\n");
    s.push_str(body);
    s
}

/// A single-quoted PowerShell string literal (quotes doubled, as PowerShell reads them).
pub(crate) fn literal(s: &str) -> String {
    format!("'{}'", s.replace(['\'', '‘', '’', '‚', '‛'], "''"))
}

/// Text safe inside a double-quoted PowerShell string: no quotes, `$` or backticks.
fn literal_inner(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, '"' | '$' | '`' | '\'' | '\r' | '\n' | '“' | '”' | '„')).collect()
}

/// Text safe in a `#` comment line.
pub(crate) fn comment(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, '\r' | '\n')).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_registry_detection_compares_the_value_as_a_version() {
        let d = Detection::Registry {
            key: r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\7-Zip".into(),
            value: "DisplayVersion".into(),
            version: None,
        };
        let s = detection("igorpavlov.7zip", &v("24.08"), &d);
        let t = s.text();
        assert!(t.contains(
            r"Get-ItemProperty -LiteralPath 'Registry::HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\7-Zip' -Name 'DisplayVersion'"
        ), "{t}");
        assert!(t.contains("$wanted = ConvertTo-PatchopsVersion '24.08'"), "{t}");
        assert!(t.lines().all(|l| !l.contains('\n')) && t.contains("\r\n") && !t.replace("\r\n", "").contains('\n'));
        assert_eq!(s.name(), "detection script for igorpavlov.7zip 24.08");
    }

    #[test]
    fn a_file_detection_expands_variables_and_may_name_its_own_version() {
        let d = Detection::File { path: r"%ProgramFiles%\Vendor's App\app.exe".into(), version: Some(v("24.8.0.0")) };
        let t = detection("vendor.app", &v("24.08"), &d).text().to_string();
        assert!(t.contains(r"ExpandEnvironmentVariables('%ProgramFiles%\Vendor''s App\app.exe')"), "{t}");
        assert!(t.contains("ConvertTo-PatchopsVersion '24.8.0.0'"), "{t}");
    }

    #[test]
    fn catalog_values_cannot_break_out_of_their_literals() {
        let d = Detection::Registry {
            key: "HKLM\\SOFTWARE\\x'; Remove-Item C:\\ -Recurse; '".into(),
            value: "V’; evil".into(),
            version: None,
        };
        let t = presence("vendor.app\"; $(evil)", &d).text().to_string();
        assert!(t.contains("'Registry::HKLM\\SOFTWARE\\x''; Remove-Item C:\\ -Recurse; '''"), "{t}");
        assert!(t.contains("-Name 'V''; evil'"), "{t}");
        // The product name appears in the header comment only.
        assert!(t.lines().filter(|l| l.contains("$(evil)")).all(|l| l.starts_with("# patchops requirement")), "{t}");
    }

    #[test]
    fn the_same_input_gives_the_same_bytes() {
        let d = Detection::File { path: "C:\\a.exe".into(), version: None };
        assert_eq!(detection("p", &v("1.0"), &d), detection("p", &v("1.0"), &d));
    }
}
