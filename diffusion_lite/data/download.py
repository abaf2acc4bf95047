"""Fetch data files into a cache folder: verified by checksum, written atomically, never half-written.

`ensure_files(folder, checksums, mirrors)` makes sure every named file is in `folder` with the
expected checksum. A file that is missing, or present but corrupt, is downloaded from the first
mirror that answers: streamed to a temporary file in the same folder, checked, then moved into
place with os.replace (atomic on one file system). Whatever goes wrong - a network error, a
truncated body, a checksum mismatch, Ctrl-C - the temporary file is removed, so a file that
carries the official name is always a verified one.

Checksums are written "sha256:<hex>" (or "md5:<hex>" where only an MD5 is published).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Mapping, Sequence

CHUNK = 1 << 20  # bytes read and hashed at a time
TIMEOUT = 30.0  # seconds a silent server may stall before we give up on it


class DatasetNotFoundError(FileNotFoundError):
    """Data files are missing (or corrupt) and could not be downloaded: put them in place by hand."""


class DownloadError(RuntimeError):
    """A server answered but sent wrong bytes: a truncated body or a checksum mismatch."""


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks (algorithm: "sha256" or "md5")."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _parse_checksum(checksum: str) -> tuple[str, str]:
    algorithm, _, digest = checksum.partition(":")
    if algorithm not in ("sha256", "md5") or not digest:
        raise ValueError(f"checksum must look like 'sha256:<hex>' or 'md5:<hex>', got {checksum!r}")
    return algorithm, digest.lower()


def verify(path: str | os.PathLike, checksum: str) -> bool:
    """True when the file exists and its digest matches `checksum` ("sha256:<hex>" / "md5:<hex>")."""
    algorithm, digest = _parse_checksum(checksum)
    return Path(path).is_file() and file_digest(path, algorithm) == digest


def download(url: str, path: str | os.PathLike, checksum: str, progress: bool = True,
             timeout: float = TIMEOUT) -> Path:
    """Download `url` to `path` atomically; raise DownloadError on a short body or a bad checksum.

    Network failures (no route, refused connection, HTTP error, timeout) raise OSError.
    """
    from tqdm.auto import tqdm  # imported when needed: importing the package stays light

    path = Path(path)
    algorithm, digest = _parse_checksum(checksum)
    request = urllib.request.Request(url, headers={"User-Agent": "diffusion-lite"})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        h, received = hashlib.new(algorithm), 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length is not None else None
            with tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024, desc=path.name,
                      disable=not progress, leave=False) as bar:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    h.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if expected is not None and received != expected:
            raise DownloadError(f"{url}: connection closed after {received} of {expected} bytes")
        if h.hexdigest() != digest:
            raise DownloadError(f"{url}: {algorithm} mismatch: expected {digest}, got {h.hexdigest()} "
                                f"(the server sent a different or damaged file)")
        os.replace(tmp, path)
    except http.client.HTTPException as err:  # malformed or cut-off HTTP response
        raise DownloadError(f"{url}: broken HTTP response ({type(err).__name__}: {err})") from err
    finally:
        if os.path.exists(tmp):  # any failure, KeyboardInterrupt included, leaves no partial file
            os.unlink(tmp)
    return path


def _missing_message(folder: Path, files: Sequence[str], why: str) -> str:
    listing = "\n".join(f"  {folder / name}  ({'fails its checksum' if (folder / name).exists() else 'missing'})"
                        for name in files)
    return (f"{why}\nFiles needed:\n{listing}\n"
            f"Put the official files in {folder} (or download them on a machine with internet), "
            f"or set DL_DATA_DIR to a folder whose '{folder.name}/' subfolder holds them.")


def ensure_files(folder: str | os.PathLike, checksums: Mapping[str, str], mirrors: Sequence[str],
                 download_missing: bool = True, progress: bool = True) -> dict[str, Path]:
    """Make sure folder/<name> exists with the right checksum for every name in `checksums`.

    Files already present and valid are used as they are; the others are (re)downloaded from
    <mirror>/<name>, trying the mirrors in order. Returns {name: path}.
    Raises DatasetNotFoundError when files are missing and cannot be fetched (download_missing
    False, offline, folder not writable), DownloadError when no mirror succeeded and at least
    one of them answered with wrong bytes.
    """
    folder = Path(folder).expanduser()
    todo = [name for name, checksum in checksums.items() if not verify(folder / name, checksum)]
    if todo and not download_missing:
        raise DatasetNotFoundError(_missing_message(folder, todo, "Data files are not ready and download=False."))
    for i, name in enumerate(todo):
        failures, bad_bytes = [], False
        for base in mirrors:
            url = base.rstrip("/") + "/" + name
            try:
                folder.mkdir(parents=True, exist_ok=True)
                download(url, folder / name, checksums[name], progress=progress)
                break
            except DownloadError as err:
                failures.append(str(err))
                bad_bytes = True
            except OSError as err:  # offline, refused, HTTP 404, timeout, read-only folder
                failures.append(f"{url}: {type(err).__name__}: {err}")
        else:
            reasons = "\n".join(f"  {f}" for f in failures) or "  (no mirrors given)"
            if bad_bytes:
                raise DownloadError(_missing_message(folder, todo[i:], f"Download failed:\n{reasons}"))
            raise DatasetNotFoundError(_missing_message(folder, todo[i:], f"Could not download:\n{reasons}"))
    return {name: folder / name for name in checksums}
