//! SDP readers: the WSUS client's reader (observe) and the emulated server's checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else { return };
    let _ = reconciler::platform::wsus::sdp::Sdp::parse(xml);
    let _ = reconciler::emulate::wsus::sdp_check::check(xml);
});
