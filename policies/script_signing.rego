# METADATA
# title: Script signing where endpoints run AllSigned
# description: |
#   A platform whose endpoints run PowerShell as AllSigned must have a script-signing
#   certificate, or the detection and install scripts patchops generates would be refused on
#   every device. Retiring is still allowed.
package patchops.policy.script_signing

import rego.v1

deny contains msg if {
	input.platform.trust.executionPolicy == "allSigned"
	not input.platform.trust.scriptSigningCertificate
	input.action.kind != "retire"
	msg := sprintf("platform %s runs PowerShell as AllSigned but has no trust.scriptSigningCertificate to sign generated scripts", [input.platform.name])
}
