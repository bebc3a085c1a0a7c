//! RFC 3161 timestamps for Authenticode signatures: the SHA-256 of the signer's signature
//! value is sent to a time-stamping authority (`POST`, `application/timestamp-query`), and the
//! token it returns is attached as the unsigned attribute `SPC_RFC3161_OBJID`, as
//! `signtool sign /tr URL /td sha256` does. A timestamped signature stays valid after the
//! signing certificate expires, for as long as the authority's own certificate is trusted.

use der::asn1::{Any, Int, OctetString};
use der::{Decode, Encode};
use x509_cert::spki::AlgorithmIdentifier;
use x509_tsp::{MessageImprint, TimeStampReq, TimeStampResp, TspVersion};

use super::pkcs7::{Digester, Signature};
use super::spc;

/// The largest reply read.
const MAX_REPLY: usize = 1 << 20;

/// A time-stamping authority.
#[derive(Clone, Debug)]
pub struct Timestamper {
    url: url::Url,
}

impl Timestamper {
    /// The authority at `url` (http or https).
    pub fn new(url: url::Url) -> Result<Timestamper, super::SignError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(super::SignError::Failed {
                what: format!("the time-stamping authority {}", crate::http::redact(&url)),
                cause: "its URL must be http:// or https://".to_string().into(),
            });
        }
        Ok(Timestamper { url })
    }

    /// Asks the authority for a token over `signature` and attaches it.
    pub async fn stamp(&self, signature: &mut Signature) -> Result<(), String> {
        let shown = crate::http::redact(&self.url);
        let value = signature.signature_value().ok_or("the signature has no signer")?;
        let mut d = Digester::Sha256(Default::default());
        d.update(value);
        let imprint = d.finish();
        let nonce = {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for the nonce: {e}"))?;
            bytes[0] &= 0x7f;
            Int::new(&bytes).map_err(|e| e.to_string())?
        };
        let request = TimeStampReq {
            version: TspVersion::V1,
            message_imprint: MessageImprint {
                hash_algorithm: AlgorithmIdentifier { oid: spc::SHA256, parameters: Some(Any::null()) },
                hashed_message: OctetString::new(imprint.clone()).map_err(|e| e.to_string())?,
            },
            req_policy: None,
            nonce: Some(nonce.clone()),
            cert_req: true,
            extensions: None,
        };
        let body = request.to_der().map_err(|e| e.to_string())?;
        let client = crate::http::client().map_err(|e| e.to_string())?;
        let mut response = client
            .post(self.url.clone())
            .header("Content-Type", "application/timestamp-query")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST {shown}: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("POST {shown}: HTTP {}", response.status()));
        }
        let mut reply = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("POST {shown}: {}", e.without_url()))? {
            if reply.len() + chunk.len() > MAX_REPLY {
                return Err(format!("POST {shown}: the reply is larger than {} KiB", MAX_REPLY >> 10));
            }
            reply.extend_from_slice(&chunk);
        }
        let reply = TimeStampResp::from_der(&reply)
            .map_err(|e| format!("{shown} answered something that is not a timestamp reply: {e}"))?;
        use cmpv2::status::PkiStatus;
        if !matches!(reply.status.status, PkiStatus::Accepted | PkiStatus::GrantedWithMods) {
            return Err(format!("{shown} refused to timestamp ({:?})", reply.status.status));
        }
        let token = reply.time_stamp_token.ok_or_else(|| format!("{shown} granted a timestamp but sent no token"))?;
        // The token must be for this signature and this request.
        let signed: cms::signed_data::SignedData =
            token.content.decode_as().map_err(|e| format!("{shown}: the token does not decode: {e}"))?;
        let tst = signed
            .encap_content_info
            .econtent
            .as_ref()
            .and_then(|c| c.decode_as::<OctetString>().ok())
            .and_then(|o| x509_tsp::TstInfo::from_der(o.as_bytes()).ok())
            .ok_or_else(|| format!("{shown}: the token holds no TSTInfo"))?;
        if tst.message_imprint.hashed_message.as_bytes() != imprint.as_slice() {
            return Err(format!("{shown}: the token is for another signature"));
        }
        if tst.nonce.as_ref() != Some(&nonce) {
            return Err(format!("{shown}: the token does not carry the request's nonce"));
        }
        let token = token.to_der().map_err(|e| e.to_string())?;
        signature.attach_timestamp(&token).map_err(|e| e.to_string())
    }
}
