#!/usr/bin/env bash
# pipeline.sh - the CI recipe for the image (docs/DEPLOY.md, "Supply chain"):
# build it, write its SBOM, gate on its benchmark, sign it, verify the
# signature as a deployer would.  Any step failing fails the pipeline.
#
# Environment:
#   SIGNING_KEY     PEM private key (ECDSA P-256); unset: a throwaway key is
#                   generated into OUT (a dry run: nothing downstream trusts it)
#   BENCH_MODEL     ONNX model the gate measures (default ../shared/models/yolov8n.onnx)
#   BENCH_BASELINE  recorded `vigil bench --json` of the same model on this
#                   runner kind (default deploy/ci/bench-baseline.json)
#   BENCH_THREADS   threads for the gate's run (default 1: the baseline's)
#   OUT             where the SBOM, bench result, manifest and signature go (build/ci)
set -euo pipefail
cd "$(dirname "$0")/../.."
docker=${DOCKER:-/usr/bin/docker}
out=${OUT:-build/ci}
model=$(realpath "${BENCH_MODEL:-../shared/models/yolov8n.onnx}")
baseline=${BENCH_BASELINE:-deploy/ci/bench-baseline.json}
mkdir -p "$out"

echo "== image"
make image
version=$(build/vigil version | awk 'NR == 1 { print $2 }')
image="vigil:$version"

echo "== SBOM"
/usr/bin/python3 deploy/ci/sbom.py "$image" -o "$out/sbom.spdx.json"
echo "$out/sbom.spdx.json: $(/usr/bin/python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["files"]))' \
  "$out/sbom.spdx.json") files"

echo "== benchmark gate (the image's own vigil bench)"
"$docker" run --rm --network none --read-only -v "$model:/bench/$(basename "$model"):ro" "$image" \
  bench --model "/bench/$(basename "$model")" --threads "${BENCH_THREADS:-1}" --iterations 20 --warmup 3 --json \
  >"$out/bench.json"
/usr/bin/python3 deploy/ci/bench_gate.py "$baseline" "$out/bench.json"

echo "== sign"
key=${SIGNING_KEY:-}
if [ -z "$key" ]; then
  key="$out/throwaway-key.pem"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key"
  echo "SIGNING_KEY unset: signed with a throwaway key ($key)"
fi
openssl pkey -in "$key" -pubout -out "$out/signing-key.pub"
deploy/ci/sign.sh "$image" "$out/sbom.spdx.json" "$key" "$out"

echo "== verify"
deploy/ci/verify.sh "$image" "$out/sbom.spdx.json" "$out/manifest.txt" "$out/manifest.sig" "$out/signing-key.pub"
