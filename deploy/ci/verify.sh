#!/usr/bin/env bash
# verify.sh IMAGE SBOM MANIFEST SIGNATURE PUBLIC_KEY - accepts an image only
# when the signature over the manifest (sign.sh) is good, the image's digest
# recomputed from its layers now (imagetool.py: every layer hashed against
# the config, the config hashed into the digest) is the signed one, and the
# SBOM's SHA-256 is the signed one.  Exit 0 with "verified ..." or 1 with one
# line saying what does not match; the name the image was signed under does
# not matter, its content does (a retagged or rebuilt image is refused).
set -uo pipefail
[ $# -eq 5 ] || { echo "usage: verify.sh IMAGE SBOM MANIFEST SIGNATURE PUBLIC_KEY" >&2; exit 2; }
image=$1 sbom=$2 manifest=$3 sig=$4 pub=$5
here=$(dirname "$0")
refuse() { echo "verify: REFUSED $image: $*" >&2; exit 1; }

openssl dgst -sha256 -verify "$pub" -signature "$sig" "$manifest" >/dev/null 2>&1 ||
  refuse "the signature does not match $manifest (or was made with another key)"
field() { awk -v k="$1" '$1 == k { print $2 }' "$manifest"; }
[ "$(head -1 "$manifest")" = "vigil-image-manifest 1" ] || refuse "$manifest is not a vigil image manifest"
want_digest=$(field image-digest) want_sbom=$(field sbom-sha256)
digest=$(/usr/bin/python3 "$here/imagetool.py" digest "$image" 2>&1) || refuse "$digest"
[ "$digest" = "$want_digest" ] || refuse "image digest $digest is not the signed $want_digest (a layer or the config changed)"
[ -r "$sbom" ] || refuse "cannot read the SBOM $sbom"
sbom_sha=$(sha256sum "$sbom" | cut -d' ' -f1)
[ "$sbom_sha" = "$want_sbom" ] || refuse "SBOM sha256:$sbom_sha is not the signed sha256:$want_sbom"
echo "verified $image $digest, sbom sha256:$sbom_sha"
