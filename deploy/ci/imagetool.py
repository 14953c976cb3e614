#!/usr/bin/env python3
"""imagetool.py - reads an image from `docker save`, trusting nothing the
daemon says about it: the image's digest and its files are recomputed here.

The image ID Docker prints is the SHA-256 of the image's config, and the
config lists the SHA-256 of every layer (rootfs.diff_ids, over the
uncompressed layer tar).  So recomputing both proves which layers the image
is made of: a changed byte in any layer changes its diff_id, hence the
config, hence the digest.  sign.sh signs this digest and verify.sh
recomputes it; sbom.py walks the same layers to list every file.

    imagetool.py digest IMAGE    prints sha256:<hex>, or exits 1 with why
"""
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile

DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")  # Debian's client; another may come first on PATH


class ImageError(Exception):
    """The saved image is not what its manifest and config say."""


def sha256_stream(stream):
    h = hashlib.sha256()
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        h.update(chunk)
    return h.hexdigest()


def member_path(member):
    """The absolute path a tar member stands for ("./.dockerenv" -> "/.dockerenv")."""
    path = os.path.normpath(member.name).lstrip("/")
    return "/" if path == "." else "/" + path


class SavedImage:
    """One image from `docker save`, opened as a tar archive (the legacy
    layout and the OCI one both name their config and layers in
    manifest.json)."""

    def __init__(self, image):
        self.image = image
        self._tmp = tempfile.NamedTemporaryFile(prefix="vigil-image-", suffix=".tar")
        r = subprocess.run([DOCKER, "save", "-o", self._tmp.name, image], capture_output=True, text=True)
        if r.returncode != 0:
            raise ImageError(f"docker save {image}: {r.stderr.strip()}")
        self.tar = tarfile.open(self._tmp.name)
        manifest = json.load(self.tar.extractfile("manifest.json"))
        if len(manifest) != 1:
            raise ImageError(f"docker save {image} holds {len(manifest)} images, expected 1")
        self.manifest = manifest[0]
        config_bytes = self.tar.extractfile(self.manifest["Config"]).read()
        self.config = json.loads(config_bytes)
        self.digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        self.layers = self.manifest["Layers"]

    def close(self):
        self.tar.close()
        self._tmp.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def verify_layers(self):
        """Checks that each layer's content hashes to the diff_id the config
        (and so the digest) records; returns the diff_ids."""
        diff_ids = self.config.get("rootfs", {}).get("diff_ids", [])
        if len(diff_ids) != len(self.layers):
            raise ImageError(f"{len(self.layers)} layers but the config lists {len(diff_ids)}")
        for path, want in zip(self.layers, diff_ids):
            got = "sha256:" + sha256_stream(self.tar.extractfile(path))
            if got != want:
                raise ImageError(f"layer {path} hashes to {got}, the config says {want}")
        return diff_ids

    def files(self):
        """The image's filesystem as the layers stack it: {path: info} for
        every regular file and symlink ("/usr/bin/vigil": {"type", "size",
        "mode", "sha256", "sha1"} or {"type": "symlink", "target"}).
        Whiteouts of later layers remove what earlier ones added."""
        result = {}
        for path in self.layers:
            with tarfile.open(fileobj=self.tar.extractfile(path)) as layer:
                for member in layer:
                    name = member_path(member)
                    base = os.path.basename(name)
                    parent = os.path.dirname(name)
                    if base == ".wh..wh..opq":  # opaque directory: drops what lower layers put there
                        for p in [p for p in result if p.startswith(parent + "/")]:
                            del result[p]
                        continue
                    if base.startswith(".wh."):
                        gone = os.path.join(parent, base[4:])
                        for p in [p for p in result if p == gone or p.startswith(gone + "/")]:
                            del result[p]
                        continue
                    if member.isfile():
                        data = layer.extractfile(member)
                        h256, h1 = hashlib.sha256(), hashlib.sha1()
                        for chunk in iter(lambda: data.read(1 << 20), b""):
                            h256.update(chunk)
                            h1.update(chunk)
                        result[name] = {"type": "file", "size": member.size, "mode": member.mode,
                                        "sha256": h256.hexdigest(), "sha1": h1.hexdigest()}
                    elif member.issym() or member.islnk():
                        result[name] = {"type": "symlink" if member.issym() else "hardlink",
                                        "target": member.linkname}
        return result


def main(argv):
    if len(argv) != 3 or argv[1] != "digest":
        print("usage: imagetool.py digest IMAGE", file=sys.stderr)
        return 2
    try:
        with SavedImage(argv[2]) as saved:
            saved.verify_layers()
            print(saved.digest)
    except (ImageError, KeyError, tarfile.TarError, json.JSONDecodeError) as e:
        print(f"imagetool: {argv[2]}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
