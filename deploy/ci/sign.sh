#!/usr/bin/env bash
# sign.sh IMAGE SBOM KEY OUT_DIR - signs what an image is: a small manifest
# holding the image digest (recomputed from `docker save` by imagetool.py: the
# SHA-256 of the image config, which lists the SHA-256 of every layer) and the
# SBOM's SHA-256, with a detached OpenSSL signature.  KEY is a PEM private
# key; ECDSA P-256 (cosign's default kind) is what the CI recipe generates:
#   openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem
#   openssl pkey -in key.pem -pubout -out key.pub
# Writes OUT_DIR/manifest.txt and OUT_DIR/manifest.sig (DER, SHA-256);
# verify.sh checks both against the image and the SBOM.
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: sign.sh IMAGE SBOM KEY OUT_DIR" >&2; exit 2; }
image=$1 sbom=$2 key=$3 out=$4
here=$(dirname "$0")
digest=$(/usr/bin/python3 "$here/imagetool.py" digest "$image")
sbom_sha=$(sha256sum "$sbom" | cut -d' ' -f1)
mkdir -p "$out"
printf 'vigil-image-manifest 1\nimage %s\nimage-digest %s\nsbom-sha256 %s\n' "$image" "$digest" "$sbom_sha" \
  >"$out/manifest.txt"
openssl dgst -sha256 -sign "$key" -out "$out/manifest.sig" "$out/manifest.txt"
echo "signed $image $digest, sbom sha256:$sbom_sha -> $out/manifest.txt, $out/manifest.sig"
