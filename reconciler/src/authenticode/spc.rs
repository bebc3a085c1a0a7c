//! The ASN.1 structures of Authenticode that CMS does not define, as Microsoft specifies them
//! ("Windows Authenticode Portable Executable Signature Format", the `Spc*` types of
//! wintrust.h) and as signtool and osslsigncode encode them.
//!
//! ```text
//! SpcIndirectDataContent ::= SEQUENCE {
//!     data                    SpcAttributeTypeAndOptionalValue,
//!     messageDigest           DigestInfo }
//! SpcAttributeTypeAndOptionalValue ::= SEQUENCE {
//!     type                    ObjectID,
//!     value                   ANY OPTIONAL }          -- SpcSipInfo for scripts, SpcLink for CABs
//! DigestInfo ::= SEQUENCE {
//!     digestAlgorithm         AlgorithmIdentifier,
//!     digest                  OCTET STRING }
//! SpcSipInfo ::= SEQUENCE {                            -- the Subject Interface Package that hashes
//!     a INTEGER (65536), sipGuid OCTET STRING (16), b, c, d, e, f INTEGER (0) }
//! ```

use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Sequence};
use x509_cert::spki::AlgorithmIdentifierOwned;

/// `SPC_INDIRECT_DATA_OBJID`: the content type of every Authenticode signature.
pub const SPC_INDIRECT_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.4");
/// `SPC_STATEMENT_TYPE_OBJID`: the signed attribute naming the key's purpose.
pub const SPC_STATEMENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.11");
/// `SPC_SP_OPUS_INFO_OBJID`: the signed attribute with the program's name and link (empty here,
/// as signtool writes it without `/d` and `/du`).
pub const SPC_SP_OPUS_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.12");
/// `SPC_INDIVIDUAL_SP_KEY_PURPOSE_OBJID`: individual (not commercial) code signing.
pub const SPC_INDIVIDUAL_SP_KEY_PURPOSE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.21");
/// `SPC_CAB_DATA_OBJID`: what a CAB's signature covers.
pub const SPC_CAB_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.25");
/// `SPC_SIPINFO_OBJID`: a file hashed by a Subject Interface Package (PowerShell scripts).
pub const SPC_SIPINFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.30");
/// `SPC_RFC3161_OBJID`: the unsigned attribute holding an RFC 3161 timestamp token.
pub const SPC_RFC3161: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.3.3.1");

/// PKCS #9 content type.
pub const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
/// PKCS #9 message digest.
pub const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
/// PKCS #7 signed data.
pub const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// RFC 3161 TSTInfo, the content of a timestamp token.
pub const TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");

/// rsaEncryption.
pub const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// SHA-1 (verification of older signatures only).
pub const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
/// SHA-256, what patchops signs with.
pub const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// SHA-384.
pub const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
/// SHA-512.
pub const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// The GUID of PowerShell's Subject Interface Package, {603BCC1F-4B59-4E08-B724-D2C6297EF351},
/// in the byte order Windows stores a GUID.
pub const POWERSHELL_SIP: [u8; 16] =
    [0x1f, 0xcc, 0x3b, 0x60, 0x59, 0x4b, 0x08, 0x4e, 0xb7, 0x24, 0xd2, 0xc6, 0x29, 0x7e, 0xf3, 0x51];

/// What an Authenticode signature signs: the kind of file and its digest.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SpcIndirectDataContent {
    /// The kind of file (and how it was hashed).
    pub data: SpcAttributeTypeAndOptionalValue,
    /// The file's digest.
    pub message_digest: DigestInfo,
}

/// A type and a value defined by it.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SpcAttributeTypeAndOptionalValue {
    /// `SPC_SIPINFO_OBJID`, `SPC_CAB_DATA_OBJID`, `SPC_PE_IMAGE_DATA_OBJID`, …
    pub value_type: ObjectIdentifier,
    /// The value the type defines.
    #[asn1(optional = "true")]
    pub value: Option<Any>,
}

/// An algorithm and a digest made with it.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct DigestInfo {
    /// The digest algorithm.
    pub digest_algorithm: AlgorithmIdentifierOwned,
    /// The digest.
    pub digest: OctetString,
}

/// Which Subject Interface Package hashed the file.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SpcSipInfo {
    /// Always 65536.
    pub a: i32,
    /// The SIP's GUID.
    pub sip_guid: OctetString,
    /// Reserved, 0.
    pub b: i32,
    /// Reserved, 0.
    pub c: i32,
    /// Reserved, 0.
    pub d: i32,
    /// Reserved, 0.
    pub e: i32,
    /// Reserved, 0.
    pub f: i32,
}

/// A digest algorithm identifier with NULL parameters, as signtool writes it.
pub fn digest_algorithm(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid, parameters: Some(Any::null()) }
}

/// The indirect data of a PowerShell script with SHA-256 `digest`.
pub fn powershell(digest: Vec<u8>) -> Result<SpcIndirectDataContent, der::Error> {
    let sip = SpcSipInfo { a: 65536, sip_guid: OctetString::new(POWERSHELL_SIP)?, b: 0, c: 0, d: 0, e: 0, f: 0 };
    Ok(SpcIndirectDataContent {
        data: SpcAttributeTypeAndOptionalValue { value_type: SPC_SIPINFO, value: Some(Any::from_der(&sip.to_der()?)?) },
        message_digest: DigestInfo { digest_algorithm: digest_algorithm(SHA256), digest: OctetString::new(digest)? },
    })
}

/// The indirect data of a CAB with SHA-256 `digest`. Its value is the `SpcLink` every CAB
/// signature carries: `[2] EXPLICIT SpcString`, the string `[0] IMPLICIT BMPString
/// "<<<Obsolete>>>"`.
pub fn cab(digest: Vec<u8>) -> Result<SpcIndirectDataContent, der::Error> {
    use der::asn1::{BmpString, ContextSpecific};
    use der::TagMode;
    let obsolete = ContextSpecific {
        tag_number: der::TagNumber::N0,
        tag_mode: TagMode::Implicit,
        value: BmpString::from_utf8("<<<Obsolete>>>")?,
    };
    let link = ContextSpecific { tag_number: der::TagNumber::N2, tag_mode: TagMode::Explicit, value: obsolete };
    Ok(SpcIndirectDataContent {
        data: SpcAttributeTypeAndOptionalValue {
            value_type: SPC_CAB_DATA,
            value: Some(Any::from_der(&link.to_der()?)?),
        },
        message_digest: DigestInfo { digest_algorithm: digest_algorithm(SHA256), digest: OctetString::new(digest)? },
    })
}
