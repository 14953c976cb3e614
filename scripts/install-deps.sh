#!/usr/bin/env bash
# install-deps.sh - installs what vigil needs, and nothing when all is there.
#
# Debian packages come from scripts/deps/debian.txt; `apt-get update` runs
# once, only when something is missing.  Works as root or through sudo and
# never prompts (CI has no standard input).  npm tooling (ONNX Runtime as the
# reference runtime) installs into tools/node/node_modules from the committed
# lockfile, without running package scripts.
set -euo pipefail
cd "$(dirname "$0")/.."

wanted=$(grep -v '^\s*#' scripts/deps/debian.txt | awk 'NF {print $1}')
missing=()
for pkg in $wanted; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

# npm ships with some Node.js builds (NodeSource's) and separately in Debian:
# ask for Debian's only when no npm is on PATH.
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo -n)
  else
    echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm tooling: reinstall only when the lockfile changed since the last install.
if [ -f tools/node/package-lock.json ]; then
  stamp=tools/node/node_modules/.vigil-lock
  if [ ! -f "$stamp" ] || ! cmp -s tools/node/package-lock.json "$stamp"; then
    echo "install-deps: installing npm tooling (tools/node)"
    (cd tools/node && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
    cp tools/node/package-lock.json "$stamp"
  fi
fi
