#!/usr/bin/env bash
# build.sh [BUILD_DIR] - builds the vigil container image (make image).
#
# No registry is reachable, so no base image is pulled: the image starts FROM
# scratch and this script gathers its whole root filesystem from the host:
# the vigil binary of BUILD_DIR (stripped: the debug info stays on the host),
# exactly the shared libraries it loads as the dynamic loader resolves them
# (ldd is already transitive), the loader itself, libgcc_s.so.1 (glibc
# dlopens it for thread cancellation and unwinding, so ldd cannot see it), the
# CA bundle, and /etc/passwd and /etc/group naming one non-root user.  The
# libraries are copied byte for byte, never stripped, so that the SBOM can
# match each one against the Debian package it came from (deploy/ci/sbom.py).
#
# The tree goes to BUILD_DIR/image/ (the Docker build context, kept small:
# the Dockerfile and the tree, nothing of the checkout).  Every mtime is set
# to SOURCE_DATE_EPOCH (default 0), so the same inputs give the same layer
# and Docker's cache answers a rebuild at once.  Tags: vigil:<version> and
# vigil:latest (IMAGE_NAME overrides "vigil").  Prints the image size.
#
# VIGIL_IMAGE_STREAMS=1 adds FFmpeg's libraries for video streams: vigil
# opens them at run time (src/stream/ffmpeg_lib.c), so ldd does not list
# them, and their codec libraries are most of the image's size then
# (docs/DEPLOY.md); without them the image serves everything but streams.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
docker=${DOCKER:-/usr/bin/docker}  # Debian's docker.io; another client may come first on PATH
export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0}  # the classic builder: docker.io ships no buildx here
name=${IMAGE_NAME:-vigil}
epoch=${SOURCE_DATE_EPOCH:-0}
user_id=65532  # the conventional "nonroot" id of minimal images

bin="$build/vigil"
[ -x "$bin" ] || { echo "image: $bin is missing: build first (make build)" >&2; exit 1; }
"$docker" version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
  { echo "image: no Docker daemon answers ($docker version); start dockerd or set DOCKER_HOST" >&2; exit 1; }
version=$("$bin" version | awk 'NR == 1 { print $2 }')
[ -n "$version" ] || { echo "image: '$bin version' printed no version" >&2; exit 1; }

context="$build/image"
rootfs="$context/rootfs"
rm -rf "$context"
mkdir -p "$rootfs/usr/bin" "$rootfs/etc/ssl/certs" "$rootfs/tmp" "$rootfs/models" "$context/data"
chmod 1777 "$rootfs/tmp"

strip --strip-unneeded -o "$rootfs/usr/bin/vigil" "$bin"

# Every library the loader maps, at the path it maps it from, plus the
# loader (ldd's line without "=>").  linux-vdso lives in the kernel.
libraries() {
  ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
}
libs=$(libraries "$bin")
if [ "${VIGIL_IMAGE_STREAMS:-0}" = 1 ]; then
  for lib in libavutil libavcodec libavformat libswscale; do  # the majors vigil was built against
    soname="$lib.so.$(pkg-config --modversion "$lib" | cut -d. -f1)"
    path=$(/sbin/ldconfig -p | awk -v n="$soname" '!found && $1 == n { print $NF; found = 1 }')  # reads to the end: no SIGPIPE under pipefail
    [ -n "$path" ] || { echo "image: $soname is not installed (VIGIL_IMAGE_STREAMS=1)" >&2; exit 1; }
    libs=$(printf '%s\n%s\n%s\n' "$libs" "$path" "$(libraries "$path")" | sort -u)
  done
fi
libc_dir=$(dirname "$(echo "$libs" | grep '/libc\.so\.6$')")
gcc_s="$libc_dir/libgcc_s.so.1"
[ -e "$gcc_s" ] || { echo "image: $gcc_s is missing (package libgcc-s1)" >&2; exit 1; }
libs=$(printf '%s\n%s\n%s\n' "$libs" "$gcc_s" "$(libraries "$gcc_s")" | sort -u)
for lib in $libs; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"  # the file, not the symlink chain: one name per library
done

cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
printf 'root:x:0:0:root:/:/sbin/nologin\nvigil:x:%d:%d:vigil:/data:/sbin/nologin\n' "$user_id" "$user_id" \
  >"$rootfs/etc/passwd"
printf 'root:x:0:\nvigil:x:%d:\n' "$user_id" >"$rootfs/etc/group"
chmod 644 "$rootfs/etc/passwd" "$rootfs/etc/group"
cp deploy/Dockerfile "$context/Dockerfile"
find "$context" -exec touch -h -d "@$epoch" {} +

"$docker" build -q --build-arg "VERSION=$version" -t "$name:$version" -t "$name:latest" "$context" >/dev/null
size=$("$docker" image inspect --format '{{.Size}}' "$name:$version")
echo "image: $name:$version ($name:latest) $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1e6 }') MB)"
