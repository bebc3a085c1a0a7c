package patchops.policy.intune_certificate_auth_test

import data.patchops.policy.intune_certificate_auth
import rego.v1

on(type, method) := {"action": {"kind": "publish"}, "platform": {"name": "p", "type": type, "auth": {"method": method}}}

test_certificate_is_allowed if {
	count(intune_certificate_auth.deny) == 0 with input as on("intune", "certificate")
}

test_client_secret_is_denied if {
	count(intune_certificate_auth.deny) == 1 with input as on("intune", "clientSecret")
}

test_other_platforms_are_not_concerned if {
	count(intune_certificate_auth.deny) == 0 with input as on("configmgr", "password")
}
