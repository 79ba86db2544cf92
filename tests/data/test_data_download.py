"""The optional download: resumable through HTTP Range, checksum-verified — against a server on 127.0.0.1."""

import hashlib
import http.server
import threading

import pytest

from tam.data import download as dl
from tam.data import load_dataset
from tam.errors import UserError

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and a bit: several read chunks


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD; honours Range unless told not to; can drop the connection after `cut` bytes."""

    def do_GET(self):
        server = self.server
        server.requests.append(dict(self.headers))
        start = 0
        range_header = self.headers.get("Range")
        if range_header and server.ranges:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut is not None:
            self.wfile.write(body[: server.cut])
            server.cut = None
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests, httpd.ranges, httpd.cut = [], True, None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/cifar-10-python.tar.gz"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


def test_download_verifies_and_renames(tmp_path, server):
    path = dl.download(server.url, tmp_path / "a.tar.gz", sha256=SHA256, md5=MD5, size=len(PAYLOAD))
    assert path.read_bytes() == PAYLOAD and not (tmp_path / "a.tar.gz.part").exists()
    dl.download(server.url, path, sha256=SHA256)  # already there and verified: no request
    assert len(server.requests) == 1


def test_interrupted_download_resumes_with_range(tmp_path, server):
    server.cut = 300_000
    with pytest.raises(UserError, match=r"download interrupted .* 300000 bytes kept in .*a\.tar\.gz\.part, run again"):
        dl.download(server.url, tmp_path / "a.tar.gz", sha256=SHA256)
    assert (tmp_path / "a.tar.gz.part").stat().st_size == 300_000
    path = dl.download(server.url, tmp_path / "a.tar.gz", sha256=SHA256, md5=MD5)
    assert path.read_bytes() == PAYLOAD
    assert server.requests[-1]["Range"] == "bytes=300000-"


def test_server_without_range_support_restarts_cleanly(tmp_path, server):
    server.ranges = False
    (tmp_path / "a.tar.gz.part").write_bytes(PAYLOAD[:1000])
    assert dl.download(server.url, tmp_path / "a.tar.gz", sha256=SHA256).read_bytes() == PAYLOAD


def test_complete_part_is_verified_when_nothing_is_left_to_fetch(tmp_path, server):
    (tmp_path / "a.tar.gz.part").write_bytes(PAYLOAD)  # server answers 416
    assert dl.download(server.url, tmp_path / "a.tar.gz", sha256=SHA256).read_bytes() == PAYLOAD


def test_checksum_mismatch_deletes_the_file(tmp_path, server):
    with pytest.raises(UserError, match=r"downloaded file is corrupt \(sha256 .*, expected 0+\); deleted it"):
        dl.download(server.url, tmp_path / "a.tar.gz", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UserError, match=r"md5 .*, expected f+"):
        dl.download(server.url, tmp_path / "a.tar.gz", md5="f" * 32)


def test_unreachable_server_and_bad_scheme(tmp_path, server):
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    with pytest.raises(UserError, match=r"download interrupted \(URLError"):
        dl.download(f"http://127.0.0.1:{port}/x", tmp_path / "x", timeout=5)
    with pytest.raises(UserError, match="only http"):
        dl.download("file:///etc/passwd", tmp_path / "y")


def test_official_archive_through_a_local_mirror(tmp_path, server, monkeypatch):
    """download_official uses the recorded URL and checksums; load_dataset("cifar10") finds the result."""
    monkeypatch.setitem(dl.ARCHIVES, "cifar10", dl.Archive(server.url, "cifar-10-python.tar.gz", len(PAYLOAD), SHA256, MD5))
    path = dl.download_official("cifar10", dl.download_dir(tmp_path))
    assert path == tmp_path / "downloads" / "cifar-10-python.tar.gz"
    # the payload is no dataset: load_dataset reaches it and says so
    with pytest.raises(UserError, match=r"cifar-10-python\.tar\.gz: not a dataset source"):
        load_dataset("cifar10", cache_dir=tmp_path)


def test_name_without_download_says_how_to_get_it(tmp_path):
    with pytest.raises(UserError, match=r"cifar100: not downloaded yet; run `tam data download cifar100`"):
        load_dataset("cifar100", cache_dir=tmp_path)


def test_recorded_checksums_are_the_published_ones():
    assert dl.ARCHIVES["cifar10"].md5 == "c58f30108f718f92721af3b95e74349a"
    assert dl.ARCHIVES["cifar100"].md5 == "eb9058c3a382ffc7106e4002c42a8d85"
