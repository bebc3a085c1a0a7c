# METADATA
# title: Change freeze
# description: |
#   No change during a freeze window. A window may name the platforms it covers (all when left
#   out) and allow retiring.
#   Parameters (data.patchops.parameters.change_freeze):
#     windows: [{start: RFC 3339, end: RFC 3339, reason: text, platforms: [names], allowRetire: bool}]
package patchops.policy.change_freeze

import rego.v1

windows := object.get(data, ["patchops", "parameters", "change_freeze", "windows"], [])

deny contains msg if {
	some w in windows
	now := time.parse_rfc3339_ns(input.time)
	time.parse_rfc3339_ns(w.start) <= now
	now < time.parse_rfc3339_ns(w.end)
	covers(w, input.platform.name)
	not retire_allowed(w)
	msg := sprintf("change freeze from %s to %s: %s", [w.start, w.end, object.get(w, "reason", "no reason given")])
}

covers(w, _) if not w.platforms

covers(w, platform) if platform in w.platforms

retire_allowed(w) if {
	input.action.kind == "retire"
	w.allowRetire == true
}
