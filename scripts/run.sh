#!/usr/bin/env bash
# run.sh - `make run`: starts `vigil serve` on its defaults (HTTP 8000, gRPC
# 50051, repository ./models).  When ./models is empty it is filled with the
# sample models (scripts/sample_models.py): a raw `affine` model and the YOLO
# files of ../shared/models, by reference (symlinks into a version
# directory), never by copy.
#
# usage: scripts/run.sh [VIGIL_BINARY [vigil serve flags...]]
# The port comes from VIGIL_HTTP_PORT or a --http-port flag, the repository
# from VIGIL_MODELS, as for `vigil serve` itself (VIGIL_HTTP_PORT=8080 make run).
set -euo pipefail
cd "$(dirname "$0")/.."
vigil=${1:-build/vigil}
shift || true
# The port announced below is the one vigil will use: flag over variable over default.
port=${VIGIL_HTTP_PORT:-8000}
previous=
for arg in "$@"; do
  case "$arg" in
    --http-port=*) port=${arg#--http-port=} ;;
    *) [ "$previous" = --http-port ] && port=$arg ;;
  esac
  previous=$arg
done
models=${VIGIL_MODELS:-./models}
mkdir -p "$models"
# An empty repository, or one that holds the samples (.samples), gets the
# sample set every documented example runs against: affine (generated) and
# the YOLO models of ../shared/models (linked, never copied).
if [ -z "$(ls -A "$models" 2>/dev/null)" ] || [ -e "$models/.samples" ]; then
  /usr/bin/python3 scripts/sample_models.py "$models" "${VIGIL_SHARED_DIR:-../shared}/models"
fi
# The samples hold four detection models: requests that name none go to
# yolov8n (a setting of your own in the environment wins).
if [ -z "${VIGIL_DETECT_DEFAULT_MODEL:-}" ] && [ -e "$models/.samples" ] && [ -d "$models/yolov8n" ]; then
  export VIGIL_DETECT_DEFAULT_MODEL=yolov8n
fi
if [ -z "$(ls -A "$models" 2>/dev/null)" ]; then
  echo "run: $models is empty. Add a model: mkdir -p $models/mymodel/1 && cp my.onnx $models/mymodel/1/model.onnx"
fi
echo "run: starting vigil on http://localhost:$port (Ctrl-C stops it); try: curl localhost:$port/healthz"
exec "$vigil" serve --models "$models" --log-format text "$@"
