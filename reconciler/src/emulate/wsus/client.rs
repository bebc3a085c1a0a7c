//! An emulated Windows client of a WSUS server: it installs a locally published update only if
//! every link of the trust chain holds, as the Windows Update agent does (see the seeds' WSUS
//! trust model and the reference notes `wsus-configmgr.md` of the steering repository, "What a Windows client checks"):
//!
//! 1. the policy "Allow signed updates from an intranet Microsoft update service location" is on
//!    (`AcceptTrustedPublisherCerts = 1`), otherwise only Microsoft-signed updates install;
//! 2. the CAB carries an Authenticode signature and its bytes are the ones signed;
//! 3. the signer's chain ends in the Local Computer's Trusted Root store (a self-signed WSUS
//!    certificate must itself be there);
//! 4. the signer is in the Trusted Publishers store;
//! 5. the certificate was valid when checked (or the signature is timestamped);
//! 6. the file inside is the one the update's metadata describes (size and SHA-1).
//!
//! [`WindowsClient::evaluate`] reports every link, each failure with the error code Windows
//! reports; the update installs only when all of them hold.

use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use chrono::{DateTime, Utc};

/// One link of the client's trust chain and whether it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// What was checked.
    pub name: &'static str,
    /// `Ok(detail)` or `Err(why, Windows' error code)`.
    pub result: Result<String, (String, &'static str)>,
}

/// What the client trusts, as Group Policy or ConfigMgr client settings deployed it.
#[derive(Debug, Clone, Default)]
pub struct WindowsClient {
    /// `AcceptTrustedPublisherCerts = 1`.
    pub accept_trusted_publisher_certs: bool,
    /// DER certificates in Local Computer\Trusted Publishers.
    pub trusted_publishers: Vec<Vec<u8>>,
    /// DER certificates in Local Computer\Trusted Root Certification Authorities.
    pub trusted_roots: Vec<Vec<u8>>,
}

impl WindowsClient {
    /// Checks every link for the update described by `sdp_xml` whose content is the CAB at
    /// `cab`, at time `at`.
    pub fn evaluate(&self, sdp_xml: &str, cab: &Path, at: DateTime<Utc>) -> Vec<Link> {
        let mut links = Vec::new();
        links.push(Link {
            name: "policy: allow signed updates from an intranet update service",
            result: if self.accept_trusted_publisher_certs {
                Ok("AcceptTrustedPublisherCerts is 1".into())
            } else {
                Err((
                    "the policy is off (AcceptTrustedPublisherCerts is not 1), so the client installs Microsoft-signed updates only; enable \"Allow signed updates from an intranet Microsoft update service location\" by Group Policy or the ConfigMgr client setting \"Enable third-party software updates\"".into(),
                    "0x800B0004",
                ))
            },
        });
        let check = crate::authenticode::inspect(cab, &self.trusted_roots, at);
        match check {
            Err(e) => links.push(Link { name: "CAB signature", result: Err((e.to_string(), "0x80096010")) }),
            Ok(c) => {
                links.push(Link {
                    name: "CAB signature",
                    result: match (c.signed, c.digest_matches) {
                        (false, _) => Err(("the CAB is not signed".into(), "0x800B0100")),
                        (true, false) => Err((
                            "the CAB was changed after it was signed (its digest does not match the signature)".into(),
                            "0x80096010",
                        )),
                        (true, true) => Ok("signed, and the bytes are the ones signed".into()),
                    },
                });
                let signer = c
                    .signer
                    .clone()
                    .map(|(s, n)| format!("{s} (serial {n})"))
                    .unwrap_or_else(|| "an unknown signer".into());
                let expired =
                    c.chain_error.as_deref().is_some_and(|e| e.contains("expired") || e.contains("not yet valid"));
                links.push(Link {
                    name: "signer's chain ends in Trusted Root",
                    result: if c.chain_trusted || expired {
                        Ok(format!("{signer} chains to a trusted root"))
                    } else if c.signed && c.digest_matches {
                        let why = if c.self_signed {
                            format!("{signer} is self-signed and not in Trusted Root Certification Authorities; a self-signed WSUS certificate must be there as well as in Trusted Publishers")
                        } else {
                            let reason = c.chain_error.clone().unwrap_or_else(|| "the chain did not verify".into());
                            format!("{signer}: {reason}; put the issuing CA's certificate in Trusted Root Certification Authorities")
                        };
                        Err((why, "0x800B0109"))
                    } else {
                        Err(("not checked: the signature itself failed".into(), "0x80096010"))
                    },
                });
                let published = c.signer.as_ref().is_some_and(|(_, serial)| {
                    self.trusted_publishers
                        .iter()
                        .filter_map(|der| crate::authenticode::signer_identity(der).ok())
                        .any(|(_, s)| s.eq_ignore_ascii_case(serial))
                });
                links.push(Link {
                    name: "signer is in Trusted Publishers",
                    result: if published {
                        Ok(format!("{signer} is a trusted publisher"))
                    } else {
                        Err((
                            format!("{signer} is not in the Local Computer's Trusted Publishers store; deploy the WSUS signing certificate there"),
                            "0x800B0109 then 0x8024B303",
                        ))
                    },
                });
                links.push(Link {
                    name: "certificate valid (or signature timestamped)",
                    result: if expired && !c.timestamped() {
                        Err((
                            format!("{signer}: {}; the signature has no timestamp, so it cannot be trusted after the certificate's validity", c.chain_error.clone().unwrap_or_default()),
                            "0x800B0101",
                        ))
                    } else if c.timestamped() {
                        Ok("timestamped".into())
                    } else {
                        Ok("valid now (not timestamped: it stops being trusted when the certificate expires)".into())
                    },
                });
            }
        }
        links.push(Link { name: "content matches the update's metadata", result: content_matches(sdp_xml, cab) });
        links
    }
}

/// The first OriginFile's name, size and SHA-1.
fn origin(sdp_xml: &str) -> Result<(String, u64, Vec<u8>), String> {
    let doc = roxmltree::Document::parse(sdp_xml).map_err(|e| format!("the update's metadata is not XML: {e}"))?;
    let o = doc
        .descendants()
        .find(|n| n.is_element() && n.tag_name().name() == "OriginFile")
        .ok_or("the update's metadata has no OriginFile")?;
    let name = o.attribute("FileName").unwrap_or_default().to_string();
    let size = o.attribute("Size").and_then(|s| s.parse().ok()).ok_or("OriginFile has no Size")?;
    let digest = o
        .attribute("Digest")
        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
        .ok_or("OriginFile has no Digest")?;
    Ok((name, size, digest))
}

fn content_matches(sdp_xml: &str, cab: &Path) -> Result<String, (String, &'static str)> {
    use sha1::Digest;
    let fail = |m: String| Err((m, "0x80246007"));
    let (name, size, digest) = match origin(sdp_xml) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let file = match std::fs::File::open(cab) {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot read the CAB: {e}")),
    };
    let mut cabinet = match cab::Cabinet::new(file) {
        Ok(c) => c,
        Err(e) => return fail(format!("the CAB cannot be opened: {e}")),
    };
    let mut reader = match cabinet.read_file(&name) {
        Ok(r) => r,
        Err(e) => return fail(format!("the CAB holds no {name}: {e}")),
    };
    let mut h = sha1::Sha1::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                h.update(&buf[..n]);
            }
            Err(e) => return fail(format!("reading {name} from the CAB: {e}")),
        }
    }
    let actual = h.finalize();
    if total != size || actual.as_slice() != digest.as_slice() {
        return fail(format!(
            "{name} in the CAB is {total} bytes with SHA-1 {}, but the metadata says {size} bytes with SHA-1 {}",
            hex::encode(actual),
            hex::encode(&digest)
        ));
    }
    Ok(format!("{name}: {size} bytes, SHA-1 as published"))
}
