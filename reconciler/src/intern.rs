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

use FastSet as HashSet;

/// Hands out one shared [`Text`] per distinct value.
#[derive(Debug, Default)]
pub struct Interner(HashSet<Text>);

impl Interner {
    /// The shared copy of `s`.
    pub fn get(&mut self, s: &str) -> Text {
        if let Some(t) = self.0.get(s) {
            return Arc::clone(t);
        }
        let t: Text = Arc::from(s);
        self.0.insert(Arc::clone(&t));
        t
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

/// The shared copy of `s` from the interner of [`with_interner`], or a fresh one.
pub(crate) fn shared(s: &str) -> Text {
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
