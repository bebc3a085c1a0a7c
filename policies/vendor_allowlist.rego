# METADATA
# title: Vendor allow-list
# description: |
#   Publishes only products whose catalog vendor is on the allow-list (compared without regard
#   to case). Inactive until a list is configured.
#   Parameters (data.patchops.parameters.vendor_allowlist):
#     vendors: the allowed vendor names, such as ["Mozilla", "Google LLC"]
package patchops.policy.vendor_allowlist

import rego.v1

vendors := object.get(data, ["patchops", "parameters", "vendor_allowlist", "vendors"], [])

allowed contains lower(v) if some v in vendors

deny contains msg if {
	count(vendors) > 0
	input.action.kind in {"publish", "update"}
	not lower(input.product.vendor) in allowed
	msg := sprintf("vendor %q of %s is not on the allow-list (%s)", [input.product.vendor, input.product.catalogProduct, concat(", ", vendors)])
}
