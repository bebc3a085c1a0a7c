//! Fleet YAML loading: any bytes as a fleet file (and as two files, so that references between
//! documents are resolved) must give a fleet or diagnostics, never a crash or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reconciler::model::{load, FleetFile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (a, b) = text.split_at(text.char_indices().map(|(i, _)| i).find(|i| *i >= text.len() / 2).unwrap_or(0));
    let one = [FleetFile { path: "fleet.yaml".into(), text: text.into() }];
    let _ = load(&one);
    let two =
        [FleetFile { path: "a.yaml".into(), text: a.into() }, FleetFile { path: "b/b.yml".into(), text: b.into() }];
    let _ = load(&two);
});
