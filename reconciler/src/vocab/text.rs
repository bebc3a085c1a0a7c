//! Deserializing values written as text (names, versions, durations, digests) through a visitor,
//! so that a refusal is raised while the YAML parser still knows the position: serde_yaml attaches
//! line and column only to errors raised inside its own visit calls.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

/// Deserializes a `T` from a string with `T::from_str`, keeping the error's position.
pub fn deserialize_str<'de, D, T>(d: D, expecting: &'static str) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    struct V<T>(&'static str, PhantomData<T>);
    impl<T: FromStr> serde::de::Visitor<'_> for V<T>
    where
        T::Err: fmt::Display,
    {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
            v.parse().map_err(E::custom)
        }
    }
    d.deserialize_str(V(expecting, PhantomData))
}

/// Parses a JSON document from bytes, checking that they are UTF-8 once, up front (with SIMD),
/// instead of string by string as `serde_json::from_slice` does (a twentieth of reading an inventory of
/// tens of thousands of objects). Bytes that are not UTF-8 are refused with the offset of the
/// first bad one.
pub fn json_from_utf8<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    // simdutf8's check is several times std's on these machines; its `compat` error says where.
    let text = simdutf8::compat::from_utf8(bytes).map_err(|e| {
        <serde_json::Error as serde::de::Error>::custom(format_args!(
            "the bytes are not UTF-8 text: {e} (JSON is UTF-8; re-export the file as UTF-8)"
        ))
    })?;
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_from_utf8_parses_and_names_bad_bytes() {
        let v: Vec<String> = super::json_from_utf8(br#"["caf\u00e9", "plain"]"#).unwrap();
        assert_eq!(v, ["caf\u{e9}", "plain"]);
        let e = super::json_from_utf8::<Vec<String>>(b"[\"ok\", \"\xff\"]").unwrap_err().to_string();
        assert!(e.contains("not UTF-8") && e.contains("index 8"), "{e}");
        let e = super::json_from_utf8::<Vec<String>>(b"[1,").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
