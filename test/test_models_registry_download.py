"""Tests of weight downloads against a small HTTP server on 127.0.0.1 (Range support included)."""

import hashlib
import http.server
import os
import re
import sys
import threading

import pytest

from ov_mapping.models import registry
from ov_mapping.models.download import (
    ChecksumError,
    DownloadError,
    download,
    main,
    sha256_file,
    verify,
)
from ov_mapping.models.registry import Preprocessing, WeightsEntry, register_weights

_RANGE_RE = re.compile(r"^bytes=(\d+)-$")


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address):
        # Clients that refuse a file hang up mid-body on purpose; that is not a test failure.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _FileServer:
    """Serves in-memory files over HTTP/1.1 and records every request's path and Range header.

    ``truncate_once`` paths send half the body once then drop the connection; ``ignore_range``
    paths answer 200 with the whole file; ``stall`` paths send headers and then nothing;
    ``/redirect/<path>`` answers 302 to ``/<path>``.
    """

    def __init__(self):
        self.files = {}
        self.requests = []
        self.truncate_once = set()
        self.ignore_range = set()
        self.stall = set()
        self.release = threading.Event()
        state = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                range_header = self.headers.get("Range")
                state.requests.append((self.path, range_header))
                if self.path.startswith("/redirect/"):
                    self._reply(302, {"Location": self.path[len("/redirect"):]}, b"")
                    return
                data = state.files.get(self.path)
                if data is None:
                    self._reply(404, {}, b"not found")
                    return
                if self.path in state.stall:
                    self._reply_headers(200, {"Content-Length": str(len(data))})
                    state.release.wait(10)
                    return
                start = 0
                match = _RANGE_RE.match(range_header or "")
                if match and self.path not in state.ignore_range:
                    start = int(match.group(1))
                    if start >= len(data):
                        self._reply(416, {"Content-Range": f"bytes */{len(data)}"}, b"")
                        return
                    status = 206
                    headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
                else:
                    status, headers = 200, {}
                body = data[start:]
                headers["Content-Length"] = str(len(body))
                if self.path in state.truncate_once:
                    state.truncate_once.discard(self.path)
                    self._reply_headers(status, headers)
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                self._reply(status, headers, body)

            def _reply_headers(self, status, headers):
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.flush()

            def _reply(self, status, headers, body):
                headers = dict(headers)
                headers.setdefault("Content-Length", str(len(body)))
                self._reply_headers(status, headers)
                self.wfile.write(body)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        # A short poll interval keeps shutdown (and so each test's teardown) quick.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def add(self, path, data):
        self.files[path] = data
        return self.url(path), hashlib.sha256(data).hexdigest()

    def ranges(self, path):
        return [r for p, r in self.requests if p == path]


@pytest.fixture
def server():
    srv = _FileServer()
    srv.thread.start()
    yield srv
    srv.release.set()
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def payload():
    # A little over 2.5 chunks of 1 MiB, so hashing continues across chunk boundaries.
    return os.urandom(2_700_000)


def test_download_verifies_and_renames(server, payload, tmp_path):
    url, digest = server.add("/w.bin", payload)
    dest = tmp_path / "sub" / "w.bin"
    result = download(url, dest, expected_sha256=digest, expected_size=len(payload), progress=False)
    assert result == dest
    assert dest.read_bytes() == payload
    assert not (tmp_path / "sub" / "w.bin.part").exists()
    assert server.ranges("/w.bin") == [None]


def test_existing_valid_file_is_not_downloaded_again(server, payload, tmp_path):
    url, digest = server.add("/w.bin", payload)
    download(url, tmp_path / "w.bin", expected_sha256=digest.upper(), progress=False)
    download(url, tmp_path / "w.bin", expected_sha256=digest, progress=False)
    assert len(server.requests) == 1


def test_wrong_existing_file_is_replaced(server, payload, tmp_path):
    url, digest = server.add("/w.bin", payload)
    (tmp_path / "w.bin").write_bytes(b"old contents")
    download(url, tmp_path / "w.bin", expected_sha256=digest, progress=False)
    assert (tmp_path / "w.bin").read_bytes() == payload


def test_directory_dest_takes_the_url_file_name(server, payload, tmp_path):
    url, _ = server.add("/files/sam_tiny.pth", payload)
    assert download(url, tmp_path, progress=False) == tmp_path / "sam_tiny.pth"
    assert (tmp_path / "sam_tiny.pth").read_bytes() == payload


def test_checksum_mismatch_raises_and_leaves_no_file(server, payload, tmp_path):
    url, _ = server.add("/w.bin", payload)
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ChecksumError, match="sha256 mismatch") as info:
        download(url, tmp_path / "w.bin", expected_sha256=wrong, progress=False)
    assert wrong in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_size_mismatch_is_refused_before_reading(server, payload, tmp_path):
    url, _ = server.add("/w.bin", payload)
    with pytest.raises(DownloadError, match=f"{len(payload)} bytes but {len(payload) + 1}"):
        download(url, tmp_path / "w.bin", expected_size=len(payload) + 1, progress=False)
    assert not (tmp_path / "w.bin").exists()


def test_resume_from_partial_file(server, payload, tmp_path):
    url, digest = server.add("/w.bin", payload)
    (tmp_path / "w.bin.part").write_bytes(payload[:1_000_000])
    download(url, tmp_path / "w.bin", expected_sha256=digest, expected_size=len(payload), progress=False)
    assert server.ranges("/w.bin") == ["bytes=1000000-"]
    assert (tmp_path / "w.bin").read_bytes() == payload
    assert not (tmp_path / "w.bin.part").exists()


def test_interrupted_transfer_resumes_on_next_call(server, payload, tmp_path):
    url, digest = server.add("/w.bin", payload)
    server.truncate_once.add("/w.bin")
    with pytest.raises(DownloadError, match="run again to resume"):
        download(url, tmp_path / "w.bin", expected_sha256=digest, progress=False)
    kept = (tmp_path / "w.bin.part").stat().st_size
    assert 0 < kept < len(payload)
    assert not (tmp_path / "w.bin").exists()
    download(url, tmp_path / "w.bin", expected_sha256=digest, progress=False)
    assert server.ranges("/w.bin") == [None, f"bytes={kept}-"]
    assert (tmp_path / "w.bin").read_bytes() == payload


def test_complete_partial_file_is_verified_without_a_request(server, payload, tmp_path):
    url, digest = server.add("/w.bin", payload)
    (tmp_path / "w.bin.part").write_bytes(payload)
    download(url, tmp_path / "w.bin", expected_sha256=digest, expected_size=len(payload), progress=False)
    assert server.requests == []
    assert (tmp_path / "w.bin").read_bytes() == payload


def test_server_ignoring_range_restarts_cleanly(server, payload, tmp_path):
    url, digest = server.add("/w.bin", payload)
    server.ignore_range.add("/w.bin")
    (tmp_path / "w.bin.part").write_bytes(payload[:500_000])
    download(url, tmp_path / "w.bin", expected_sha256=digest, progress=False)
    assert server.ranges("/w.bin") == ["bytes=500000-"]
    assert (tmp_path / "w.bin").read_bytes() == payload


def test_unsatisfiable_range_discards_the_partial_file(server, payload, tmp_path):
    url, digest = server.add("/w.bin", payload)
    (tmp_path / "w.bin.part").write_bytes(b"x" * len(payload))
    download(url, tmp_path / "w.bin", expected_sha256=digest, progress=False)
    assert server.ranges("/w.bin") == [f"bytes={len(payload)}-", None]
    assert (tmp_path / "w.bin").read_bytes() == payload


def test_corrupt_partial_file_fails_checksum_then_recovers(server, payload, tmp_path):
    url, digest = server.add("/w.bin", payload)
    (tmp_path / "w.bin.part").write_bytes(b"\0" * 1000)
    with pytest.raises(ChecksumError):
        download(url, tmp_path / "w.bin", expected_sha256=digest, progress=False)
    assert list(tmp_path.iterdir()) == []
    download(url, tmp_path / "w.bin", expected_sha256=digest, progress=False)
    assert (tmp_path / "w.bin").read_bytes() == payload


def test_redirect_is_followed_with_resume(server, payload, tmp_path):
    _, digest = server.add("/files/w.bin", payload)
    (tmp_path / "w.bin.part").write_bytes(payload[:123])
    download(server.url("/redirect/files/w.bin"), tmp_path / "w.bin", expected_sha256=digest, progress=False)
    assert server.ranges("/files/w.bin") == ["bytes=123-"]
    assert (tmp_path / "w.bin").read_bytes() == payload


def test_http_404_is_a_clear_error(server, tmp_path):
    url = server.url("/missing.bin")
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download(url, tmp_path / "missing.bin", progress=False)
    assert url in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_is_a_clear_error(tmp_path):
    probe = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = probe.server_address[1]
    probe.server_close()  # nothing listens on this loopback port any more
    with pytest.raises(DownloadError, match="cannot reach"):
        download(f"http://127.0.0.1:{port}/w.bin", tmp_path / "w.bin", progress=False, timeout=5)


def test_stalled_server_times_out_and_keeps_partial(server, payload, tmp_path):
    url, _ = server.add("/slow.bin", payload)
    server.stall.add("/slow.bin")
    with pytest.raises(DownloadError, match="timed out"):
        download(url, tmp_path / "slow.bin", progress=False, timeout=0.3)
    assert not (tmp_path / "slow.bin").exists()
    assert (tmp_path / "slow.bin.part").exists()


def test_progress_bar_is_drawn(server, payload, tmp_path, capsys):
    url, _ = server.add("/w.bin", payload)
    download(url, tmp_path / "w.bin", progress=True)
    assert "w.bin" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"entry_or_url": "ftp://127.0.0.1/w.bin", "dest": "w.bin"}, ValueError),
        ({"entry_or_url": "http://127.0.0.1/w.bin"}, ValueError),
        ({"entry_or_url": "http://127.0.0.1/w.bin", "dest": "w.bin", "expected_sha256": "abc"}, ValueError),
        ({"entry_or_url": "http://127.0.0.1/w.bin", "dest": "w.bin", "expected_size": 0}, ValueError),
        ({"entry_or_url": "http://127.0.0.1/w.bin", "dest": "w.bin", "timeout": 0}, ValueError),
        ({"entry_or_url": 42, "dest": "w.bin"}, TypeError),
    ],
)
def test_bad_arguments_are_rejected_before_any_request(kwargs, error, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error):
        download(progress=False, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_verify_and_sha256_file(tmp_path, payload):
    path = tmp_path / "f.bin"
    path.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    assert sha256_file(path) == digest
    assert verify(path, digest) and verify(path, digest.upper())
    assert not verify(path, hashlib.sha256(b"").hexdigest())
    with pytest.raises(FileNotFoundError):
        verify(tmp_path / "absent.bin", digest)
    with pytest.raises(ValueError, match="64 hex"):
        verify(path, "1234")


def _test_entry(name, size, sha256, kind="clip3r_i2p"):
    pre = Preprocessing((224, 224), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "short_side_crop", "lanczos")
    return WeightsEntry(name=name, kind=kind, architecture="tiny", filename="model.safetensors",
                        size_bytes=size, sha256=sha256, licence="test only", preprocessing=pre,
                        hf_repo=f"test/{name}")


@pytest.fixture
def hub(server, monkeypatch, tmp_path):
    """The test server posing as the Hugging Face hub, and a private registry and cache."""
    monkeypatch.setenv("HF_ENDPOINT", server.url(""))
    monkeypatch.setenv("OV_MAPPING_WEIGHTS", str(tmp_path / "cache"))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    return server


def test_registry_entry_downloads_into_the_cache(hub, payload, tmp_path):
    _, digest = hub.add("/test/tiny_i2p/resolve/main/model.safetensors", payload)
    entry = _test_entry("tiny_i2p", len(payload), digest)
    path = download(entry, progress=False)
    assert path == tmp_path / "cache" / "tiny_i2p" / "model.safetensors"
    assert path.read_bytes() == payload


def test_registry_entry_with_wrong_size_fails(hub, payload):
    hub.add("/test/tiny_i2p/resolve/main/model.safetensors", payload)
    with pytest.raises(DownloadError, match="expected"):
        download(_test_entry("tiny_i2p", len(payload) - 1, None), progress=False)


def test_cli_downloads_named_entries(hub, payload, tmp_path, capsys):
    _, digest = hub.add("/test/tiny_i2p/resolve/main/model.safetensors", payload)
    other = payload[::-1]
    hub.add("/test/tiny_l2w/resolve/main/model.safetensors", other)
    register_weights(_test_entry("tiny_i2p", len(payload), digest))
    register_weights(_test_entry("tiny_l2w", len(other), None, kind="clip3r_l2w"))
    out_dir = tmp_path / "out"
    status = main(["tiny_i2p", "tiny_l2w", "--dir", str(out_dir), "--no-progress"])
    text = capsys.readouterr().out
    assert status == 0
    assert (out_dir / "tiny_i2p" / "model.safetensors").read_bytes() == payload
    assert (out_dir / "tiny_l2w" / "model.safetensors").read_bytes() == other
    assert "sha256 verified" in text
    assert hashlib.sha256(other).hexdigest() in text  # printed for the entry without a digest
    assert "licence: test only" in text


def test_cli_all_kind_reports_failures(hub, payload, tmp_path, capsys):
    hub.add("/test/tiny_l2w/resolve/main/model.safetensors", payload)
    register_weights(_test_entry("tiny_l2w", len(payload), None, kind="clip3r_l2w"))
    status = main(["--all", "clip3r_l2w", "--dir", str(tmp_path / "out"), "--no-progress"])
    text = capsys.readouterr().out
    # slam3r_l2w is not on the test server: HTTP 404, reported, and the run fails.
    assert status == 1
    assert "slam3r_l2w" in text and "HTTP 404" in text and "1 of 2 downloads failed" in text
    assert (tmp_path / "out" / "tiny_l2w" / "model.safetensors").read_bytes() == payload


def test_cli_unknown_name_lists_known_names(hub, capsys):
    assert main(["no_such_weights"]) == 2
    text = capsys.readouterr().out
    assert "no_such_weights" in text and "sam_vit_b" in text
    assert hub.requests == []


def test_cli_list_and_empty_invocation(capsys):
    assert main(["--list"]) == 0
    listing = capsys.readouterr().out
    for name in ("slam3r_i2p", "sam_vit_h", "dino_vits16", "clip_vit_b32_laion2b_s34b_b79k"):
        assert name in listing
    assert main([]) == 2
    assert "nothing to download" in capsys.readouterr().out
