//! SDMPackageXML readers: the ConfigMgr client's reader (observe) and the emulated site's checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reconciler::emulate::configmgr::sdm_check::{check, Site};

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else { return };
    let _ = reconciler::platform::configmgr::sdm::Application::parse(xml);
    let share = std::env::temp_dir().join("patchops-fuzz-share");
    let site = Site {
        scope: "ScopeId_00000000-0000-0000-0000-000000000001".into(),
        share_unc: "\\\\cm01\\patchops$".into(),
        share_local: share,
        existing: Vec::new(),
        all_signed_by: None,
        now: chrono::DateTime::UNIX_EPOCH,
    };
    let _ = check(xml, &site);
});
