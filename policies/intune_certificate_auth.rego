# METADATA
# title: Certificate authentication for Intune
# description: |
#   Intune platforms must authenticate with the app registration's certificate, not a client
#   secret: a secret is a password that can be copied and replayed from anywhere, a certificate
#   key need never leave the machine that runs patchops.
package patchops.policy.intune_certificate_auth

import rego.v1

deny contains msg if {
	input.platform.type == "intune"
	input.platform.auth.method == "clientSecret"
	msg := sprintf("platform %s authenticates with a client secret; give auth.certificate (the app registration's certificate credential) instead", [input.platform.name])
}
