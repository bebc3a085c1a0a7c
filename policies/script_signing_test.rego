package patchops.policy.script_signing_test

import data.patchops.policy.script_signing
import rego.v1

on(kind, trust) := {"action": {"kind": kind}, "platform": {"name": "p", "trust": trust}}

test_all_signed_without_certificate_is_denied if {
	count(script_signing.deny) == 1 with input as on("publish", {"executionPolicy": "allSigned", "scriptSigningCertificate": false})
}

test_all_signed_with_certificate_is_allowed if {
	count(script_signing.deny) == 0 with input as on("update", {"executionPolicy": "allSigned", "scriptSigningCertificate": true})
}

test_retire_is_allowed_without_certificate if {
	count(script_signing.deny) == 0 with input as on("retire", {"executionPolicy": "allSigned", "scriptSigningCertificate": false})
}

test_bypass_needs_no_certificate if {
	count(script_signing.deny) == 0 with input as on("publish", {"executionPolicy": "bypass", "scriptSigningCertificate": false})
}
