//! Shared text: a large plan or platform inventory repeats the same field names, platform, ring
//! and group names and values tens of thousands of times, so each distinct value is stored once.

use std::sync::Arc;

/// An immutable, cheaply cloned string.
pub type Text = Arc<str>;

/// A hash map for the planner's hot lookups: foldhash (randomly seeded per process) instead of
/// SipHash, which took a tenth of a 10,000-product plan's CPU time hashing names.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A hash set with [`FastMap`]'s hasher.
pub type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// Hands out one shared [`Text`] per distinct value.
///
/// Each lookup hashes its text once, whether it finds a copy or adds one (an inventory's unique
/// values — digests, install commands — were hashed twice, a lookup and an insert: a sixth of
/// reading an inventory).
#[derive(Default)]
pub struct Interner {
    table: hashbrown::HashTable<Text>,
    hasher: foldhash::fast::RandomState,
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner").field("distinct", &self.table.len()).finish()
    }
}

impl Interner {
    /// The shared copy of `s`.
    pub fn get(&mut self, s: &str) -> Text {
        use std::hash::BuildHasher;
        let hash = self.hasher.hash_one(s);
        let hasher = &self.hasher;
        let entry = self.table.entry(hash, |t| **t == *s, |t| hasher.hash_one(&**t));
        Arc::clone(entry.or_insert_with(|| Arc::from(s)).get())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.len()
    }
}

thread_local! {
    static ACTIVE: std::cell::RefCell<Option<Interner>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with an interner active on this thread, so that `FieldMap` deserialization shares
/// text while a large document is being read (rather than after, when the copies already exist).
pub fn with_interner<T>(f: impl FnOnce() -> T) -> T {
    let previous = ACTIVE.with(|a| a.replace(Some(Interner::default())));
    let out = f();
    ACTIVE.with(|a| *a.borrow_mut() = previous);
    out
}

/// Text longer than this is not looked up: in an inventory it is digests, product codes,
/// install commands and names, nearly all unique, so hashing it (a fifth of reading an
/// inventory) bought nothing; the values that repeat — field names, intents, types, versions,
/// publishers, booleans — are short.
pub(crate) const SHARED_MAX: usize = 32;

/// The shared copy of `s` from the interner of [`with_interner`], or a fresh one (always a
/// fresh one for text longer than [`SHARED_MAX`]).
pub(crate) fn shared(s: &str) -> Text {
    if s.len() > SHARED_MAX {
        return Arc::from(s);
    }
    ACTIVE.with(|a| match a.borrow_mut().as_mut() {
        Some(i) => i.get(s),
        None => Arc::from(s),
    })
}

/// Deserializes a list and gives back the capacity it does not use, at once: a list of one
/// or two items is allocated for four, and a catalog or an inventory holds tens of thousands of
/// such lists (`#[serde(deserialize_with = "crate::intern::shrunk")]`). Freed while the
/// document is still being read, so the waste never adds up to the peak.
pub fn shrunk<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    let mut v: Vec<T> = serde::Deserialize::deserialize(d)?;
    v.shrink_to_fit();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_copy_per_distinct_value() {
        let mut i = Interner::default();
        let a = i.get("required");
        let b = i.get(&String::from("required"));
        let c = i.get("available");
        assert!(Arc::ptr_eq(&a, &b), "the same text is one copy");
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!((&*a, &*c), ("required", "available"));
        // Enough values to make the table grow several times: every one still found.
        let texts: Vec<String> = (0..5000).map(|n| format!("value-{n}")).collect();
        let first: Vec<Text> = texts.iter().map(|t| i.get(t)).collect();
        assert_eq!(i.len(), 5002);
        for (t, f) in texts.iter().zip(&first) {
            assert!(Arc::ptr_eq(&i.get(t), f), "{t} found again after growth");
        }
        assert_eq!(i.len(), 5002);
    }

    #[test]
    fn shared_uses_the_active_interner_only_inside_with_interner() {
        let (a, b) = with_interner(|| (shared("x64"), shared("x64")));
        assert!(Arc::ptr_eq(&a, &b));
        let long = "9d261cb5bf0011b69c44e711927993a815216eb0c679370ac2c411b59141c95c";
        let (e, f) = with_interner(|| (shared(long), shared(long)));
        assert!(!Arc::ptr_eq(&e, &f), "a long value is not looked up");
        assert_eq!(&*e, long);
        let (g, h) = with_interner(|| (shared("required"), shared("required")));
        assert!(Arc::ptr_eq(&g, &h), "a short one is shared");
        let (c, d) = (shared("x64"), shared("x64"));
        assert!(!Arc::ptr_eq(&c, &d), "no interner outside: fresh copies");
    }
}
