package patchops.policy.scan_detections_test

import data.patchops.policy.scan_detections
import rego.v1

publish(scan) := {
	"action": {"kind": "publish", "version": "1.0"},
	"product": {"catalogProduct": "acme.tool", "vendor": "Acme"},
	"installer": {"scan": scan},
}

clean := {"engine": "VirusTotal", "detections": 0, "enginesTotal": 70}

flagged := {"engine": "VirusTotal", "detections": 3, "enginesTotal": 70, "report": "https://scan.example/r/1"}

test_clean_installer_is_allowed if {
	count(scan_detections.deny) == 0 with input as publish(clean)
}

test_detections_above_default_threshold_are_denied if {
	scan_detections.deny == {"acme.tool 1.0: 3 of 70 engines of VirusTotal flag the installer (at most 0 allowed); report: https://scan.example/r/1"} with input as publish(flagged)
}

test_threshold_is_a_parameter if {
	count(scan_detections.deny) == 0 with input as publish(flagged)
		with data.patchops.parameters.scan_detections as {"maxDetections": 3}
}

test_retire_is_never_denied_for_detections if {
	count(scan_detections.deny) == 0 with input as object.union(publish(flagged), {"action": {"kind": "retire"}})
}

test_missing_scan_is_denied_only_when_required if {
	inp := {"action": {"kind": "update", "version": "2.0"}, "product": {"catalogProduct": "acme.tool"}, "installer": {}}
	count(scan_detections.deny) == 0 with input as inp
	count(scan_detections.deny) == 1 with input as inp with data.patchops.parameters.scan_detections as {"requireScan": true}
}
