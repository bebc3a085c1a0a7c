package patchops.policy.vendor_allowlist_test

import data.patchops.policy.vendor_allowlist
import rego.v1

publish(vendor) := {"action": {"kind": "publish"}, "product": {"catalogProduct": "acme.tool", "vendor": vendor}}

test_inactive_without_a_list if {
	count(vendor_allowlist.deny) == 0 with input as publish("Anyone")
}

test_listed_vendor_is_allowed_whatever_its_case if {
	count(vendor_allowlist.deny) == 0 with input as publish("MOZILLA")
		with data.patchops.parameters.vendor_allowlist as {"vendors": ["Mozilla", "Google"]}
}

test_unlisted_vendor_is_denied if {
	vendor_allowlist.deny == {`vendor "Acme" of acme.tool is not on the allow-list (Mozilla, Google)`} with input as publish("Acme")
		with data.patchops.parameters.vendor_allowlist as {"vendors": ["Mozilla", "Google"]}
}
