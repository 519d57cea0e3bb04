"""`--data https://...`: what a real HTTP server on 127.0.0.1 can do wrong, and that a
download is trained on only when it arrived whole.

The server is http.server in a thread; each path is one behaviour. Training reads
URLs with the same code the chart's `url` source runs in its Job.
"""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import WINEIND, train
from training import cli

BODY = WINEIND.read_bytes()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/whole.csv":
            self.reply(BODY)
        elif self.path == "/cut.csv":
            # Announces the whole file, sends the first half, then hangs up.
            self.reply(BODY[:len(BODY) // 2], length=len(BODY))
            self.close_connection = True
        elif self.path == "/to-ftp.csv":
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1/sales.csv")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/slow-headers.csv":
            # The status line, then one header byte at a time.
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for byte in b"Content-Type: text/csv\r\n":
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.1)
            self.close_connection = True
        elif self.path == "/busy.csv":
            self.send_error(503)
        elif self.path == "/trickle.csv":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            for line in BODY.splitlines(keepends=True)[:40]:
                self.wfile.write(line)
                self.wfile.flush()
                time.sleep(0.1)
        else:
            self.send_error(404)

    def reply(self, body: bytes, length: int | None = None):
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A client that gave up mid-reply is what several tests are about; the
        # broken pipe it leaves here is expected, not worth a traceback.
        pass


@pytest.fixture(scope="module")
def server():
    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def refused(url: str, tmp_path, capsys, code: int = cli.EXIT_BAD_INPUT) -> str:
    """Trains on `url`, expecting exit `code`: 2 when asking again cannot help, 5
    when it may (the chart's training Job retries only the latter)."""
    model_dir = tmp_path / "models"
    assert train(url, model_dir) == code
    assert not model_dir.exists(), "a refused download must not create the store"
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_a_whole_download_trains(server, tmp_path):
    assert cli.read_source(f"{server}/whole.csv") == (BODY, "whole.csv")


@pytest.mark.parametrize("url, name", [
    ("https://bucket.example/exports/sales.csv?X-Amz-Signature=s3cr3t#part",
     "sales.csv"),
    ("https://reader:s3cr3t@files.example/", "files.example"),
    ("https://files.example/a;v=1/sales.csv;jsessionid=s3cr3t", "sales.csv"),
], ids=["signed-url", "user-info", "path-parameters"])
def test_a_download_is_named_without_the_secrets_its_address_may_hold(
        monkeypatch, url, name):
    monkeypatch.setattr(cli, "download_within_deadline", lambda address: BODY)

    assert cli.read_source(url) == (BODY, name)


@pytest.mark.parametrize("url, shown", [
    ("https://reader:s3cr3t@files.example:8443/a;s=s3cr3t/x.csv?sig=s3cr3t#f",
     "https://files.example:8443/a/x.csv?..."),
    ("http://[::1]:8080/sales.csv", "http://[::1]:8080/sales.csv"),
    ("https://files.example/sales.csv", "https://files.example/sales.csv"),
])
def test_messages_show_an_address_without_its_secrets(url, shown):
    assert cli.shown_address(url) == shown


def test_a_failed_download_is_reported_without_the_query(server, tmp_path, capsys):
    err = refused(f"{server}/missing.csv?sig=s3cr3t", tmp_path, capsys)

    assert f"Cannot download {server}/missing.csv?...: HTTP Error 404" in err
    assert "s3cr3t" not in err


def test_a_download_cut_short_of_its_content_length_is_refused(server, tmp_path,
                                                                capsys):
    err = refused(f"{server}/cut.csv", tmp_path, capsys, cli.EXIT_SOURCE_UNREACHABLE)

    assert (f"the download stopped after {len(BODY) // 2} of the {len(BODY)} bytes the "
            "server announced, so the file is incomplete") in err


def test_a_redirect_away_from_http_is_refused(server, tmp_path, capsys):
    err = refused(f"{server}/to-ftp.csv", tmp_path, capsys)

    assert ("redirects to ftp://127.0.0.1/sales.csv; only http:// and https:// "
            "addresses are downloaded") in err


def test_a_download_slower_than_the_deadline_is_refused(server, tmp_path, capsys,
                                                        monkeypatch):
    monkeypatch.setattr(cli, "DOWNLOAD_DEADLINE_SECONDS", 1)

    err = refused(f"{server}/trickle.csv", tmp_path, capsys,
                  cli.EXIT_SOURCE_UNREACHABLE)

    assert "was still downloading after 1 s" in err
    assert "the server is too slow" in err


def test_a_missing_page_says_so(server, tmp_path, capsys):
    err = refused(f"{server}/nope.csv", tmp_path, capsys)

    assert "Cannot download" in err and "404" in err


def test_a_server_error_may_pass_and_says_so_with_its_own_exit_code(server, tmp_path,
                                                                   capsys):
    err = refused(f"{server}/busy.csv", tmp_path, capsys, cli.EXIT_SOURCE_UNREACHABLE)

    assert "Cannot download" in err and "503" in err


def test_a_server_that_does_not_answer_may_come_back(tmp_path, capsys):
    with Server(("127.0.0.1", 0), Handler) as closed:
        port = closed.server_address[1]

    err = refused(f"http://127.0.0.1:{port}/whole.csv", tmp_path, capsys,
                  cli.EXIT_SOURCE_UNREACHABLE)

    assert "Cannot download" in err and "refused" in err


def test_a_local_file_larger_than_the_limit_is_refused_without_reading_it_all(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "MAX_DOWNLOAD_BYTES", 1000)

    err = refused("/dev/zero", tmp_path, capsys)

    assert "/dev/zero is larger than 1000 bytes" in err


def test_headers_slower_than_the_deadline_are_refused_at_the_deadline(
        server, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "DOWNLOAD_DEADLINE_SECONDS", 0.5)
    started = time.monotonic()

    err = refused(f"{server}/slow-headers.csv", tmp_path, capsys,
                  cli.EXIT_SOURCE_UNREACHABLE)

    assert "was still downloading after 0.5 s" in err
    assert time.monotonic() - started < 2.0
