package patchops.policy.change_freeze_test

import data.patchops.policy.change_freeze
import rego.v1

freeze := {"windows": [{"start": "2026-12-20T00:00:00Z", "end": "2027-01-04T00:00:00Z", "reason": "year-end freeze"}]}

at(kind, t) := {"action": {"kind": kind}, "platform": {"name": "intune-prod"}, "time": t}

test_inside_the_window_is_denied if {
	change_freeze.deny == {"change freeze from 2026-12-20T00:00:00Z to 2027-01-04T00:00:00Z: year-end freeze"} with input as at("publish", "2026-12-24T12:00:00Z")
		with data.patchops.parameters.change_freeze as freeze
}

test_outside_the_window_is_allowed if {
	count(change_freeze.deny) == 0 with input as at("publish", "2027-01-04T00:00:00Z")
		with data.patchops.parameters.change_freeze as freeze
}

test_window_limited_to_other_platforms if {
	w := {"windows": [object.union(freeze.windows[0], {"platforms": ["wsus-hq"]})]}
	count(change_freeze.deny) == 0 with input as at("publish", "2026-12-24T12:00:00Z")
		with data.patchops.parameters.change_freeze as w
}

test_retire_allowed_when_the_window_says_so if {
	w := {"windows": [object.union(freeze.windows[0], {"allowRetire": true})]}
	count(change_freeze.deny) == 0 with input as at("retire", "2026-12-24T12:00:00Z")
		with data.patchops.parameters.change_freeze as w
	count(change_freeze.deny) == 1 with input as at("update", "2026-12-24T12:00:00Z")
		with data.patchops.parameters.change_freeze as w
}
