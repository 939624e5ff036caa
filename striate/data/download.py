"""Checksum-verified, resumable, atomic file downloads (stdlib ``urllib`` only).

One function, :func:`download_file`, fetches a file from a list of mirror URLs into a cache folder:

* the bytes go to ``<file>.part`` first; only after the SHA-256 matches is the part renamed onto the
  final name with ``os.replace`` (atomic on POSIX and Windows), so a file under its final name is
  always complete and verified;
* an interrupted download leaves the ``.part`` behind, and the next attempt continues it with an HTTP
  ``Range: bytes=<size>-`` request (a server that ignores Range answers 200 and we start over);
* a checksum mismatch discards the bytes and moves on to the next mirror; a mirror answering an HTTP
  error (404, ...) is skipped; when every mirror fails, :class:`DownloadError` lists what each one did.

The cache folder is ``$STRIATE_CACHE`` when set, else ``~/.cache/striate`` (see :func:`default_cache_dir`).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request

__all__ = ["DownloadError", "default_cache_dir", "download_file", "sha256_file"]

_CHUNK = 1 << 20  # 1 MiB reads: few syscalls, small memory


class DownloadError(OSError):
    """No mirror delivered a file with the expected checksum.

    Attributes:
        path: where the file was to be saved (a user may put it there by hand).
        failures: ``{url: why}``, the last reason of each mirror tried (with the number of tries).
    """

    def __init__(self, message: str, path: str = "", failures=None):
        super().__init__(message)
        self.path, self.failures = path, dict(failures or {})


def default_cache_dir() -> str:
    """The folder downloads are cached in: ``$STRIATE_CACHE``, else ``~/.cache/striate``."""
    env = os.environ.get("STRIATE_CACHE")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    return os.path.join(os.path.expanduser("~"), ".cache", "striate")


def sha256_file(path: str) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


def _fetch(url: str, part: str, timeout: float, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (continuing it with a Range request when non-empty).

    Raises urllib/http/OS errors on failure; whatever arrived stays in ``part`` for the next try.
    """
    start = os.path.getsize(part) if os.path.exists(part) else 0
    request = urllib.request.Request(url, headers={"User-Agent": "striate"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:
            # Range Not Satisfiable: the part already holds the whole file (or more); let the
            # checksum decide whether it is good.
            return
        raise
    with response:
        status = getattr(response, "status", 200)
        if start and status != 206:
            start = 0  # the server ignored Range and sends the whole file: start over
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None and length.isdigit() else None
        if start:
            _say(progress, f"  resuming at byte {start:,}")
        received = 0
        with open(part, "ab" if start else "wb") as f:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                f.write(chunk)
                received += len(chunk)
        if expected is not None and received < expected:
            raise http.client.IncompleteRead(b"", expected - received)


def download_file(urls, path: str, sha256: str | None = None, *, timeout: float = 60.0,
                  attempts: int = 3, progress: bool = True) -> str:
    """Download a file from the first mirror that delivers it intact; return ``path``.

    Args:
        urls: a URL or a list of mirror URLs, tried in order.
        path: where the verified file ends up. Its folder is created if needed.
        sha256: the expected hex SHA-256 (case-insensitive). ``None`` skips verification (not
            recommended: only the file's arrival is then checked).
        timeout: seconds to wait for the server on each request.
        attempts: how many requests per mirror; each one after the first continues the partial file
            with an HTTP Range request (a dropped connection costs only the missing bytes).
        progress: print one line per step to stderr.

    Raises:
        DownloadError: every mirror failed; the message lists each URL and why.

    Example:
        >>> download_file(["https://example.org/a.gz"], "/tmp/a.gz", sha256="...")  # doctest: +SKIP
        '/tmp/a.gz'

    A file already at ``path`` whose checksum matches is kept without any network access; one whose
    checksum does not match is reported and fetched again.
    """
    if isinstance(urls, str):
        urls = [urls]
    urls = list(urls)
    if not urls:
        raise ValueError(f"urls must name at least one URL to download {os.path.basename(path)!r}. Received: [].")
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1. Received: attempts={attempts}.")
    expected = sha256.lower() if sha256 else None
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    name = os.path.basename(path)

    if os.path.exists(path):
        if expected is None or sha256_file(path) == expected:
            return path
        _say(progress, f"{path}: checksum mismatch (corrupt or changed file); downloading it again.")
        os.remove(path)

    part = path + ".part"
    failures, tries = {}, {}  # url -> the last reason it failed, and how many times

    def failed(url, why):
        tries[url] = tries.get(url, 0) + 1
        failures[url] = why + (f" ({tries[url]} tries)" if tries[url] > 1 else "")
    for url in urls:
        _say(progress, f"Downloading {name} from {url}")
        for _ in range(attempts):
            resumed = os.path.exists(part) and os.path.getsize(part) > 0
            try:
                _fetch(url, part, timeout, progress)
            except urllib.error.HTTPError as err:
                failed(url, f"HTTP {err.code} {err.reason}")
                break  # a server error will not change on retry: next mirror
            except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
                # Dropped connection / timeout: keep the part and continue it on the next try.
                reason = getattr(err, "reason", None) or err
                failed(url, f"{type(err).__name__}: {reason}")
                continue
            got = sha256_file(part) if expected else None
            if expected is None or got == expected:
                os.replace(part, path)  # atomic: the final name only ever holds verified bytes
                _say(progress, f"Saved {path}")
                return path
            os.remove(part)  # never keep bytes that failed verification
            failed(url, f"checksum mismatch (expected sha256 {expected}, got {got})")
            _say(progress, f"  checksum mismatch from {url}")
            if not resumed:
                break  # fresh bytes from this mirror are bad: next mirror
            # else a stale part from an earlier run may be the culprit: retry this mirror from scratch
    raise DownloadError(
        f"Could not download {name}; every mirror failed: "
        + "; ".join(f"{url}: {why}" for url, why in failures.items())
        + f". Download it by hand and place it at {path}.", path=path, failures=failures)
