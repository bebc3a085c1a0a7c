#!/usr/bin/env bash
# Rebuilds the EXAMPLE catalog: tiny real MSI installers (wixl), catalog.json with their SHA-256
# and sizes, and its signature by the EXAMPLE-ONLY key. Run from the repository root:
#   bash examples/catalog/regenerate.sh
# Needs: wixl (Debian package `wixl`), python3, cargo. Everything here is example-only: the
# secret key is public, so never trust it for a real fleet.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
mkdir -p installers
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# id|name|vendor|version|msi-version|product-code|upgrade-code
products=(
  "mozilla.firefox|Mozilla Firefox|Mozilla|128.0.3|128.0.3|{3A9B6C1E-4F2D-4C1A-9B0E-1F7C2D3E4A01}|{6F1E2D3C-0001-4A5B-8C7D-9E0F1A2B3C01}"
  "mozilla.firefox|Mozilla Firefox|Mozilla|131.0.2|131.0.2|{3A9B6C1E-4F2D-4C1A-9B0E-1F7C2D3E4A02}|{6F1E2D3C-0001-4A5B-8C7D-9E0F1A2B3C01}"
  "google.chrome|Google Chrome|Google LLC|130.0.6723.117|130.0.6723|{5C2D7E8F-1A3B-4C5D-8E9F-0A1B2C3D4E01}|{6F1E2D3C-0002-4A5B-8C7D-9E0F1A2B3C02}"
  "google.chrome|Google Chrome|Google LLC|131.0.6778.86|131.0.6778|{5C2D7E8F-1A3B-4C5D-8E9F-0A1B2C3D4E02}|{6F1E2D3C-0002-4A5B-8C7D-9E0F1A2B3C02}"
  "igorpavlov.7zip|7-Zip|Igor Pavlov|24.07|24.07.0|{23170F69-40C1-2702-2407-000001000000}|{6F1E2D3C-0003-4A5B-8C7D-9E0F1A2B3C03}"
  "igorpavlov.7zip|7-Zip|Igor Pavlov|24.08|24.08.0|{23170F69-40C1-2702-2408-000001000000}|{6F1E2D3C-0003-4A5B-8C7D-9E0F1A2B3C03}"
  "adobe.acrobat-reader|Adobe Acrobat Reader|Adobe|24.003.20180|24.3.20180|{AC76BA86-7AD7-1033-7B44-AC0F074E4101}|{6F1E2D3C-0004-4A5B-8C7D-9E0F1A2B3C04}"
  "adobe.acrobat-reader|Adobe Acrobat Reader|Adobe|24.004.20219|24.4.20219|{AC76BA86-7AD7-1033-7B44-AC0F074E4102}|{6F1E2D3C-0004-4A5B-8C7D-9E0F1A2B3C04}"
  "eclipse.temurin-jre-21|Eclipse Temurin JRE 21|Eclipse Adoptium|21.0.4.7|21.0.4|{9E1F2A3B-4C5D-4E6F-8A9B-0C1D2E3F4A01}|{6F1E2D3C-0005-4A5B-8C7D-9E0F1A2B3C05}"
  "eclipse.temurin-jre-21|Eclipse Temurin JRE 21|Eclipse Adoptium|21.0.5.11|21.0.5|{9E1F2A3B-4C5D-4E6F-8A9B-0C1D2E3F4A02}|{6F1E2D3C-0005-4A5B-8C7D-9E0F1A2B3C05}"
)

: > "$work/list.tsv"
for entry in "${products[@]}"; do
  IFS='|' read -r id name vendor version msiver code upgrade <<<"$entry"
  file="installers/${id}-${version}-x64.msi"
  echo "EXAMPLE installer for ${name} ${version}. Installs nothing useful." > "$work/readme.txt"
  cat > "$work/p.wxs" <<WXS
<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="${code}" Name="${name} (patchops example)" Language="1033" Version="${msiver}"
           Manufacturer="${vendor}" UpgradeCode="${upgrade}">
    <Package InstallerVersion="200" Compressed="yes" InstallScope="perMachine"/>
    <Media Id="1" Cabinet="product.cab" EmbedCab="yes"/>
    <Directory Id="TARGETDIR" Name="SourceDir">
      <Directory Id="ProgramFiles64Folder">
        <Directory Id="INSTALLDIR" Name="patchops-example-${id}">
          <Component Id="Readme" Guid="${upgrade}" Win64="yes">
            <File Id="readme" Source="readme.txt"/>
          </Component>
        </Directory>
      </Directory>
    </Directory>
    <Feature Id="Main" Level="1"><ComponentRef Id="Readme"/></Feature>
  </Product>
</Wix>
WXS
  (cd "$work" && wixl -a x64 -o "$here/$file" p.wxs)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$name" "$vendor" "$version" "$code" "$file" >> "$work/list.tsv"
done

python3 - "$work/list.tsv" > catalog.json <<'PY'
import hashlib, json, os, sys
products = {}
for line in open(sys.argv[1]):
    pid, name, vendor, version, code, path = line.rstrip("\n").split("\t")
    data = open(path, "rb").read()
    p = products.setdefault(pid, {"id": pid, "name": name, "vendor": vendor,
                                  "description": f"{name} (EXAMPLE catalog entry)", "versions": []})
    p["versions"].append({
        "version": version,
        "released": "2026-10-01T00:00:00Z",
        "installers": [{
            "architecture": "x64", "type": "msi", "url": path,
            "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
            "silentInstall": "/qn /norestart", "msiProductCode": code,
            "successCodes": [3010],
            "scan": {"engine": "VirusTotal", "detections": 0, "enginesTotal": 72,
                     "scannedAt": "2026-10-02T00:00:00Z"},
        }],
    })
for p in products.values():
    vs = p["versions"]
    for older, newer in zip(vs, vs[1:]):
        newer["supersedes"] = [older["version"]]
catalog = {
    "apiVersion": "patchops.io/v1alpha1", "kind": "Catalog",
    "publisher": "patchops EXAMPLE catalog - signed with a public example key, never trust it",
    "serial": 1, "issued": "2026-11-01T00:00:00Z", "expires": "2031-11-01T00:00:00Z",
    "products": list(products.values()),
}
print(json.dumps(catalog, indent=2))
PY

cd "$here/../.."
cargo run -q -- catalog sign --key examples/catalog/EXAMPLE-ONLY-catalog.key examples/catalog/catalog.json
