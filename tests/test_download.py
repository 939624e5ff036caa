"""Downloads against a local HTTP server (127.0.0.1, port 0): checksums, mirrors, Range resume, errors."""
import gzip
import hashlib
import http.server
import os
import threading

import numpy as np
import pytest

from striate.data import DATASETS, DatasetInfo, DownloadError, RemoteFile, download_file, load_dataset
from striate.data import datasets as datasets_module
from striate.data.download import default_cache_dir

PAYLOAD = bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8))
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Server:
    """Routes: path -> (mode, bytes). Modes: ok, truncate_once, norange. Unknown paths answer 404."""

    def __init__(self):
        self.routes, self.log = {}, []
        self.truncated = set()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                server.log.append((self.path, self.headers.get("Range")))
                if self.path not in server.routes:
                    self.send_error(404, "Not Found")
                    return
                mode, body = server.routes[self.path]
                start = 0
                rng = self.headers.get("Range")
                if rng and mode != "norange":
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_error(416, "Range Not Satisfiable")
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                rest = body[start:]
                self.send_header("Content-Length", str(len(rest)))
                self.end_headers()
                if mode == "truncate_once" and self.path not in server.truncated:
                    server.truncated.add(self.path)
                    rest = rest[: len(rest) // 3]  # promise everything, deliver a third, hang up
                self.wfile.write(rest)
                self.wfile.flush()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def test_good_download_verified_and_cached(server, tmp_path):
    server.routes["/f.bin"] = ("ok", PAYLOAD)
    dest = tmp_path / "cache" / "f.bin"
    assert download_file([server.url + "/f.bin"], str(dest), SHA, progress=False) == str(dest)
    assert dest.read_bytes() == PAYLOAD
    assert not os.path.exists(str(dest) + ".part")
    n = len(server.log)
    download_file([server.url + "/f.bin"], str(dest), SHA, progress=False)  # cached: no request
    assert len(server.log) == n


def test_checksum_is_case_insensitive_and_string_url_accepted(server, tmp_path):
    server.routes["/f.bin"] = ("ok", PAYLOAD)
    dest = tmp_path / "f.bin"
    download_file(server.url + "/f.bin", str(dest), SHA.upper(), progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_corrupt_mirror_skipped_for_next(server, tmp_path):
    server.routes["/bad.bin"] = ("ok", PAYLOAD[:-1] + b"\x00")
    server.routes["/good.bin"] = ("ok", PAYLOAD)
    dest = tmp_path / "f.bin"
    download_file([server.url + "/bad.bin", server.url + "/good.bin"], str(dest), SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [p for p, _ in server.log] == ["/bad.bin", "/good.bin"]


def test_corrupt_only_refused_and_nothing_kept(server, tmp_path):
    server.routes["/bad.bin"] = ("ok", PAYLOAD[::-1])
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_file([server.url + "/bad.bin"], str(dest), SHA, progress=False)
    assert not dest.exists()
    assert not os.path.exists(str(dest) + ".part")


def test_corrupt_cached_file_is_refetched(server, tmp_path, capsys):
    server.routes["/f.bin"] = ("ok", PAYLOAD)
    dest = tmp_path / "f.bin"
    dest.write_bytes(PAYLOAD[:100])  # a damaged copy under the final name
    download_file([server.url + "/f.bin"], str(dest), SHA, progress=True)
    assert dest.read_bytes() == PAYLOAD
    assert "checksum mismatch" in capsys.readouterr().err


def test_partial_file_resumed_with_range(server, tmp_path):
    server.routes["/f.bin"] = ("ok", PAYLOAD)
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:20_000])
    download_file([server.url + "/f.bin"], str(dest), SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.log == [("/f.bin", "bytes=20000-")]


def test_dropped_connection_resumed(server, tmp_path):
    server.routes["/f.bin"] = ("truncate_once", PAYLOAD)
    dest = tmp_path / "f.bin"
    download_file([server.url + "/f.bin"], str(dest), SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    # first request whole file, second continues where the first stopped
    assert server.log[0] == ("/f.bin", None)
    assert server.log[1] == ("/f.bin", f"bytes={len(PAYLOAD) // 3}-")


def test_stale_part_with_wrong_bytes_restarts_from_scratch(server, tmp_path):
    server.routes["/f.bin"] = ("ok", PAYLOAD)
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(b"\xff" * 1000)  # not a prefix of the file
    download_file([server.url + "/f.bin"], str(dest), SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.log == [("/f.bin", "bytes=1000-"), ("/f.bin", None)]


def test_server_ignoring_range_restarts(server, tmp_path):
    server.routes["/f.bin"] = ("norange", PAYLOAD)
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:5000])
    download_file([server.url + "/f.bin"], str(dest), SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_404_reported_and_next_mirror_used(server, tmp_path):
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download_file([server.url + "/missing.bin"], str(dest), SHA, progress=False)
    assert "/missing.bin" in str(info.value) and str(dest) in str(info.value)
    assert not dest.exists()
    server.routes["/f.bin"] = ("ok", PAYLOAD)
    download_file([server.url + "/missing.bin", server.url + "/f.bin"], str(dest), SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_unreachable_host_gives_download_error(tmp_path):
    # Port 9 on localhost with nothing listening: connection refused, no network needed.
    with pytest.raises(DownloadError, match="127.0.0.1:9"):
        download_file(["http://127.0.0.1:9/x"], str(tmp_path / "x"), SHA, progress=False, attempts=1, timeout=2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one URL"):
        download_file([], "/tmp/never", SHA)


def test_default_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("STRIATE_CACHE", str(tmp_path))
    assert default_cache_dir() == str(tmp_path)
    monkeypatch.delenv("STRIATE_CACHE")
    assert default_cache_dir() == os.path.join(os.path.expanduser("~"), ".cache", "striate")


# ------------------------------------------------------------------------ load_dataset's download path
def _idx(arr, magic):
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return gzip.compress(header + arr.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(server, monkeypatch):
    """Serve a 6+3 image MNIST-layout data set and point the 'mnist' table entry at it."""
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte.gz": _idx(rng.integers(0, 256, (6, 5, 4)), 2051),
        "train-labels-idx1-ubyte.gz": _idx(np.array([0, 1, 2, 3, 4, 9]), 2049),
        "t10k-images-idx3-ubyte.gz": _idx(rng.integers(0, 256, (3, 5, 4)), 2051),
        "t10k-labels-idx1-ubyte.gz": _idx(np.array([7, 8, 9]), 2049),
    }
    files = []
    for name, blob in arrays.items():
        server.routes["/m/" + name] = ("ok", blob)
        files.append(RemoteFile(name, hashlib.sha256(blob).hexdigest(),
                                (server.url + "/nowhere/" + name, server.url + "/m/" + name)))
    info = DatasetInfo("mnist", "idx", tuple(files), DATASETS["mnist"].class_names)
    monkeypatch.setitem(datasets_module.DATASETS, "mnist", info)
    return arrays


def test_load_dataset_downloads_into_cache(server, tiny_mnist, tmp_path):
    ds = load_dataset("mnist", cache_dir=str(tmp_path), progress=False)
    assert ds.x_train.shape == (6, 5, 4, 1) and ds.x_test.shape == (3, 5, 4, 1)
    assert ds.y_train.tolist() == [0, 1, 2, 3, 4, 9]
    assert sorted(os.listdir(tmp_path / "mnist")) == sorted(tiny_mnist)
    requests = len(server.log)
    again = load_dataset("mnist", cache_dir=str(tmp_path), download=False, progress=False)
    assert len(server.log) == requests  # served from the cache
    np.testing.assert_array_equal(again.x_train, ds.x_train)


def test_load_dataset_env_cache(server, tiny_mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("STRIATE_CACHE", str(tmp_path / "env"))
    load_dataset("mnist", progress=False)
    assert (tmp_path / "env" / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()


def test_corrupt_cache_refused_without_download_and_refetched_with(server, tiny_mnist, tmp_path):
    load_dataset("mnist", cache_dir=str(tmp_path), progress=False)
    victim = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    good = victim.read_bytes()
    victim.write_bytes(good[:-10])
    with pytest.raises(ValueError, match="checksum mismatch.*train-images|train-images.*checksum mismatch"):
        load_dataset("mnist", cache_dir=str(tmp_path), download=False, progress=False)
    load_dataset("mnist", cache_dir=str(tmp_path), progress=False)
    assert victim.read_bytes() == good


def test_missing_without_download_says_what_to_do(tiny_mnist, tmp_path):
    with pytest.raises(FileNotFoundError, match="download=False") as info:
        load_dataset("mnist", cache_dir=str(tmp_path), download=False)
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz" in msg and "data_dir" in msg and str(tmp_path) in msg
