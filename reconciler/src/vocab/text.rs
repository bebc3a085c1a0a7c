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
