//! Reading a catalog and its signature from where its CatalogSource says.

use super::location::CatalogLocation;
use super::verify::{CatalogError, UnverifiedCatalog};
use crate::source::SourceSnapshot;
use crate::vocab::ObjectName;

/// Where a fleet's CatalogSource says its catalog is.
#[derive(Debug, Clone, Copy)]
pub struct CatalogRef<'a> {
    /// The CatalogSource's name.
    pub name: &'a ObjectName,
    /// `spec.url`.
    pub url: &'a str,
    /// `spec.signatureUrl`, when given.
    pub signature_url: Option<&'a str>,
    /// The fleet file it is declared in (relative locations are resolved against it).
    pub declared_in: &'a str,
}

/// Catalogs larger than this are refused before they fill memory.
pub const MAX_CATALOG_BYTES: u64 = 256 * 1024 * 1024;

/// Reads the catalog and its signature. A relative location is read from the same snapshot as
/// the fleet (so it is pinned to the same commit); URLs are fetched.
pub async fn fetch(source: CatalogRef<'_>, snapshot: &SourceSnapshot) -> Result<UnverifiedCatalog, CatalogError> {
    let name = source.name.clone();
    let fail = |location: &CatalogLocation, cause: crate::vocab::Cause| CatalogError::Fetch {
        source_name: name.clone(),
        location: location.to_string(),
        cause,
    };
    let location = CatalogLocation::parse(source.url).map_err(|e| CatalogError::Fetch {
        source_name: name.clone(),
        location: source.url.to_string(),
        cause: e.into(),
    })?;
    let sig_location = match source.signature_url {
        Some(s) => CatalogLocation::parse(s).map_err(|e| fail(&location, e.into()))?,
        None => location.signature(),
    };
    let read = |loc: CatalogLocation| async move {
        match &loc {
            CatalogLocation::InSource(rel) => {
                let path = snapshot.resolve(source.declared_in, rel).ok_or_else(|| {
                    (
                        loc.clone(),
                        format!("`{rel}` leaves the repository; keep the catalog inside it or use a URL").into(),
                    )
                })?;
                // The signature shares the catalog's cap (it is a few hundred bytes).
                snapshot
                    .read_referenced(&path, MAX_CATALOG_BYTES)
                    .map_err(|e| (loc.clone(), crate::vocab::Cause::from(e)))
                    .map(|found| (found, format!("{path} at {}", snapshot.provenance())))
            }
            CatalogLocation::Url(url) => {
                read_url(url).await.map_err(|e| (loc.clone(), e)).map(|b| (b, url.to_string()))
            }
        }
    };
    let (bytes, shown) = read(location.clone()).await.map_err(|(l, e)| fail(&l, e))?;
    let bytes = bytes.ok_or_else(|| fail(&location, "not found".into()))?;
    let (sig, sig_shown) = read(sig_location.clone()).await.map_err(|(l, e)| fail(&l, e))?;
    let signature = match sig {
        None => None,
        Some(b) => Some(String::from_utf8(b).map_err(|_| CatalogError::MalformedSignature {
            source_name: name.clone(),
            location: sig_shown.clone(),
            reason: "not UTF-8 text".into(),
        })?),
    };
    Ok(UnverifiedCatalog::new(name, shown, bytes, sig_shown, signature))
}

/// Reads a URL into memory, capped at [`MAX_CATALOG_BYTES`]. `Ok(None)` when it does not exist.
async fn read_url(url: &url::Url) -> Result<Option<Vec<u8>>, crate::vocab::Cause> {
    match url.scheme() {
        "file" => {
            let path = url.to_file_path().map_err(|()| "not a local file path")?;
            // A regular file only (`file:///dev/zero` or a FIFO would never end), capped.
            match crate::bounded::read(&path, MAX_CATALOG_BYTES) {
                Ok(b) => Ok(Some(b)),
                Err(crate::bounded::ReadError::NotFound) => Ok(None),
                Err(crate::bounded::ReadError::TooLarge { .. }) => Err(too_large().into()),
                Err(e) => Err(e.into()),
            }
        }
        _ => Ok(crate::http::get_capped(url, MAX_CATALOG_BYTES).await?),
    }
}

fn too_large() -> String {
    format!("larger than {MAX_CATALOG_BYTES} bytes")
}
