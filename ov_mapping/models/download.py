"""Download and verify weight files: resumable, checksummed, atomic.

A download streams into ``<dest>.part``. An interrupted download leaves that file behind and
the next call resumes it with an HTTP Range request. Only a file whose size and SHA-256
match what was expected is renamed to ``dest`` (atomically), so ``dest`` is either absent or
complete. A file that fails its checksum is deleted, never left where a loader could find it.

Only the standard library is used for HTTP (urllib), plus tqdm for the progress bar.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import logging
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO, Optional, Sequence, Union

from tqdm import tqdm

from ov_mapping import __version__
from ov_mapping.models.registry import (
    KINDS,
    WeightsEntry,
    get_weights,
    list_weights,
    local_path,
    resolve_url,
)

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
DEFAULT_TIMEOUT_S = 30.0
PART_SUFFIX = ".part"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class DownloadError(RuntimeError):
    """A download failed (HTTP error, network error, timeout, short or oversized transfer)."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not have the expected SHA-256."""


def _hash_file(path: Union[str, os.PathLike]) -> "hashlib._Hash":
    """SHA-256 state over the file at ``path``, read in chunks (files are gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest


def sha256_file(path: Union[str, os.PathLike]) -> str:
    """Hex SHA-256 of the file at ``path``."""
    return _hash_file(path).hexdigest()


def verify(path: Union[str, os.PathLike], sha256: str) -> bool:
    """True if the file at ``path`` has the SHA-256 ``sha256`` (hex, any case).

    Raises FileNotFoundError if the file is missing and ValueError for a malformed digest.
    """
    expected = _normalise_sha256(sha256)
    if not Path(path).is_file():
        raise FileNotFoundError(f"cannot verify {path}: no such file")
    return sha256_file(path) == expected


def _normalise_sha256(sha256: Optional[str]) -> Optional[str]:
    if sha256 is None:
        return None
    lowered = sha256.strip().lower()
    if not _SHA256_RE.match(lowered):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    return lowered


def _check_url(url: str) -> None:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise ValueError(f"only http(s) URLs can be downloaded, got {url!r}")


def _existing_is_valid(dest: Path, sha256: Optional[str], size: Optional[int]) -> bool:
    """Whether ``dest`` already holds the wanted file (nothing to compare means yes)."""
    if not dest.is_file():
        return False
    if size is not None and dest.stat().st_size != size:
        return False
    return sha256 is None or sha256_file(dest) == sha256


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    """GET ``url`` from byte ``offset`` on; HTTP and network failures become DownloadError."""
    headers = {"User-Agent": f"ov_mapping/{__version__}"}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset > 0:
            raise  # handled by the caller: the partial file does not fit the remote file
        raise DownloadError(f"HTTP {error.code} {error.reason} for {url}") from None
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise DownloadError(f"timed out after {timeout:g} s connecting to {url}") from None
        raise DownloadError(f"cannot reach {url}: {reason}") from None
    except (socket.timeout, TimeoutError):
        raise DownloadError(f"timed out after {timeout:g} s waiting for {url}") from None


def _remote_total(response: http.client.HTTPResponse, offset: int) -> tuple[bool, Optional[int]]:
    """(resumed, total size) from a response to a request starting at ``offset``.

    ``resumed`` is False when the server ignored the Range header and sends the whole file.
    """
    if response.status == 206:
        match = _CONTENT_RANGE_RE.match(response.headers.get("Content-Range", "").strip())
        if match is None or int(match.group(1)) != offset:
            raise DownloadError(
                f"server answered a resume from byte {offset} with Content-Range "
                f"{response.headers.get('Content-Range')!r}"
            )
        total = match.group(3)
        return True, None if total == "*" else int(total)
    length = response.headers.get("Content-Length")
    return False, int(length) if length is not None and length.isdigit() else None


def _copy_stream(
    response: http.client.HTTPResponse,
    out: BinaryIO,
    digest: "hashlib._Hash",
    bar: tqdm,
    url: str,
    timeout: float,
) -> int:
    """Append the response body to ``out``; returns the number of bytes written."""
    written = 0
    while True:
        # Only the read is guarded: a failing write (disk full) must surface as itself.
        try:
            chunk = response.read(CHUNK_BYTES)
        except (socket.timeout, TimeoutError):
            raise DownloadError(
                f"timed out after {timeout:g} s reading {url}; the partial file is kept, run again to resume"
            ) from None
        except (http.client.HTTPException, OSError) as error:
            raise DownloadError(
                f"connection lost while reading {url} ({error!r}); the partial file is kept, run again to resume"
            ) from None
        if not chunk:
            return written
        out.write(chunk)
        digest.update(chunk)
        bar.update(len(chunk))
        written += len(chunk)


def _fetch_to_part(
    url: str,
    part: Path,
    expected_size: Optional[int],
    progress: bool,
    timeout: float,
    label: str,
) -> str:
    """Bring ``part`` to the full remote file, resuming what is there; returns its hex SHA-256."""
    offset = part.stat().st_size if part.is_file() else 0
    if expected_size is not None and offset > expected_size:
        logger.warning("discarding %s: larger (%d B) than the expected %d B", part, offset, expected_size)
        part.unlink()
        offset = 0
    if expected_size is not None and offset == expected_size:
        # Complete but never renamed (interrupted after the transfer): only the checksum is left.
        logger.info("%s already holds %d bytes; verifying it", part, offset)
        return _hash_file(part).hexdigest()
    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError:
        # 416: the partial file does not match the remote one (already complete, or stale);
        # only a fresh download is safe.
        logger.warning("server refused to resume %s from byte %d; starting over", part, offset)
        part.unlink()
        offset = 0
        response = _open(url, offset, timeout)
    with response:
        resumed, total = _remote_total(response, offset)
        if not resumed:
            offset = 0  # whole file coming: drop what we had
        if total is not None and expected_size is not None and total != expected_size:
            raise DownloadError(f"{url} is {total} bytes but {expected_size} were expected; refusing it")
        if resumed:
            logger.info("resuming %s from byte %d", part, offset)
            digest = _hash_file(part)  # continue the hash over what we already have
        else:
            digest = hashlib.sha256()
        with open(part, "ab" if resumed else "wb") as out, tqdm(
            total=total if total is not None else expected_size,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=label,
            disable=not progress,
        ) as bar:
            received = offset + _copy_stream(response, out, digest, bar, url, timeout)
    wanted = total if total is not None else expected_size
    if wanted is not None and received != wanted:
        if received > wanted:
            part.unlink()
            raise DownloadError(f"{url} sent {received} bytes, more than the {wanted} expected; discarded")
        raise DownloadError(
            f"connection closed after {received} of {wanted} bytes of {url}; "
            "the partial file is kept, run again to resume"
        )
    return digest.hexdigest()


def download(
    entry_or_url: Union[WeightsEntry, str],
    dest: Optional[Union[str, os.PathLike]] = None,
    expected_sha256: Optional[str] = None,
    expected_size: Optional[int] = None,
    progress: bool = True,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Download a registry entry or a URL to ``dest`` and return the final path.

    For a :class:`WeightsEntry`, ``dest`` defaults to :func:`local_path` and the expected
    size and SHA-256 default to the entry's. For a URL, ``dest`` is required; an existing
    directory means ``dest/<last URL path component>``.

    A ``dest`` that already matches the expected size and digest is returned untouched.
    Raises ChecksumError on a digest mismatch (the file is deleted), DownloadError on HTTP
    errors, network errors, timeouts (``timeout`` seconds per socket operation) and short
    transfers (the ``.part`` file is kept so the next call resumes).
    """
    if isinstance(entry_or_url, WeightsEntry):
        url = resolve_url(entry_or_url)
        dest = local_path(entry_or_url) if dest is None else dest
        expected_sha256 = entry_or_url.sha256 if expected_sha256 is None else expected_sha256
        expected_size = entry_or_url.size_bytes if expected_size is None else expected_size
        file_name = entry_or_url.filename
    elif isinstance(entry_or_url, str):
        url = entry_or_url
        if dest is None:
            raise ValueError("dest is required when downloading a URL")
        file_name = Path(urllib.parse.urlsplit(url).path).name
    else:
        raise TypeError(f"expected a WeightsEntry or a URL string, got {type(entry_or_url).__name__}")
    _check_url(url)
    expected_sha256 = _normalise_sha256(expected_sha256)
    if expected_size is not None and (not isinstance(expected_size, int) or expected_size <= 0):
        raise ValueError(f"expected_size must be a positive int, got {expected_size!r}")
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")

    dest = Path(dest).expanduser()
    if dest.is_dir():
        if not file_name:
            raise ValueError(f"cannot name a file after {url!r}; pass a file path as dest")
        dest = dest / file_name
    if _existing_is_valid(dest, expected_sha256, expected_size):
        logger.info("%s already present", dest)
        return dest
    if dest.exists():
        logger.warning("%s does not match the expected size/sha256; downloading it again", dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + PART_SUFFIX)

    actual_sha256 = _fetch_to_part(url, part, expected_size, progress, timeout, dest.name)
    if expected_sha256 is not None and actual_sha256 != expected_sha256:
        part.unlink()
        raise ChecksumError(
            f"sha256 mismatch for {url}: expected {expected_sha256}, got {actual_sha256}; "
            "the downloaded file was deleted"
        )
    os.replace(part, dest)  # atomic on one filesystem: dest is never half-written
    logger.info("downloaded %s (sha256 %s)", dest, actual_sha256)
    return dest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ov-mapping download-weights``."""
    parser.add_argument("names", nargs="*", metavar="NAME", help="registry names of the weights to download")
    parser.add_argument("--all", dest="all_kind", choices=KINDS, metavar="KIND",
                        help=f"also download every entry of this kind ({', '.join(KINDS)})")
    parser.add_argument("--dir", dest="cache_dir", type=Path, default=None,
                        help="weights folder (default: $OV_MAPPING_WEIGHTS or ~/.cache/ov_mapping/weights)")
    parser.add_argument("--list", action="store_true", help="list the registered weights and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help="seconds a connection may stall before giving up (default %(default)s)")


def _print_listing() -> None:
    for entry in list_weights():
        digest = entry.sha256[:12] if entry.sha256 else "unknown"
        print(f"{entry.name:32s} {entry.kind:11s} {entry.size_bytes / 1e6:9.1f} MB  sha256 {digest}  "
              f"{resolve_url(entry)}")


def _selected_entries(names: Sequence[str], all_kind: Optional[str]) -> list[WeightsEntry]:
    """Entries named or of ``all_kind``, in order, without duplicates; KeyError for unknown names."""
    chosen = [get_weights(name) for name in names]
    if all_kind is not None:
        chosen.extend(list_weights(all_kind))
    unique: dict[str, WeightsEntry] = {}
    for entry in chosen:
        unique.setdefault(entry.name, entry)
    return list(unique.values())


def run(args: argparse.Namespace) -> int:
    """Run ``download-weights`` with parsed ``args``; returns the process exit status."""
    if args.list:
        _print_listing()
        return 0
    if not args.names and args.all_kind is None:
        print("nothing to download: give weight names or --all KIND (see --list)")
        return 2
    try:
        entries = _selected_entries(args.names, args.all_kind)
    except KeyError as error:
        print(f"error: {error.args[0]}")
        return 2
    failures = 0
    for entry in entries:
        dest = local_path(entry, args.cache_dir)
        print(f"{entry.name}: {resolve_url(entry)} -> {dest} ({entry.size_bytes:,} bytes)")
        print(f"  licence: {entry.licence}")
        try:
            path = download(entry, dest, progress=not args.no_progress, timeout=args.timeout)
        except DownloadError as error:
            failures += 1
            print(f"  FAILED: {error}")
            continue
        if entry.sha256 is None:
            print(f"  done, no published sha256 to check against; sha256 of this file: {sha256_file(path)}")
        else:
            print("  done, sha256 verified")
    if failures:
        print(f"{failures} of {len(entries)} downloads failed")
        return 1
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: ``main(["sam_vit_b", "--dir", "weights"])``."""
    parser = argparse.ArgumentParser(prog="ov-mapping download-weights",
                                     description="Download pretrained weights into the ov_mapping cache.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
