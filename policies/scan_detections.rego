# METADATA
# title: Scan detections
# description: |
#   Refuses to publish or update to an installer that the catalog's malware scan flags with more
#   detections than allowed, or (when `requireScan` is true) that was never scanned.
#   Parameters (data.patchops.parameters.scan_detections):
#     maxDetections: most engines that may flag the installer (default 0)
#     requireScan:   refuse installers without a scan result (default false)
package patchops.policy.scan_detections

import rego.v1

params := object.get(data, ["patchops", "parameters", "scan_detections"], {})

max_detections := object.get(params, "maxDetections", 0)

require_scan := object.get(params, "requireScan", false)

deny contains msg if {
	input.action.kind in {"publish", "update"}
	scan := input.installer.scan
	scan.detections > max_detections
	msg := sprintf(
		"%s %s: %d of %d engines of %s flag the installer (at most %d allowed)%s",
		[input.product.catalogProduct, input.action.version, scan.detections, scan.enginesTotal, scan.engine, max_detections, report(scan)],
	)
}

deny contains msg if {
	require_scan
	input.action.kind in {"publish", "update"}
	not input.installer.scan
	msg := sprintf("%s %s: the catalog has no scan result for the installer, and requireScan is on", [input.product.catalogProduct, input.action.version])
}

report(scan) := sprintf("; report: %s", [scan.report]) if scan.report

report(scan) := "" if not scan.report
