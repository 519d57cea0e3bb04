"""Helpers for the container suite: the docker CLI, containers the suite owns, the
files inside an image, and an HTTP client that can pause in the middle of a request.

Every container is created by name with a per-session prefix, and only those names are
ever removed, so the suite never touches containers or volumes it did not make.
"""

import json
import shutil
import socket
import subprocess
import tarfile
import time
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
USER = "10001:10001"
PORT = 8080
TRAIN_COMMAND = ("python", "-m", "training", "--data", "/app/data/wineind.csv",
                 "--model-dir", "/models", "--json")
# Written into the CA bundle handed to the build, so a leak of the bundle into the
# image shows as this exact text even where the bundle's certificates are also the
# distribution's own.
CANARY = "sales-forecast build-secret canary: this file must never reach an image"


class DockerError(AssertionError):
    """A docker command failed; carries the command and its output."""


def docker(*args: str, timeout: float = 120, check: bool = True,
           capture: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=capture, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise DockerError(f"'docker {' '.join(args)}' exited {result.returncode}:\n"
                          f"{result.stdout}\n{result.stderr}")
    return result


def engine_problem() -> str | None:
    """Why no Docker engine can be used here, or None when one answers."""
    if shutil.which("docker") is None:
        return "there is no docker CLI on PATH"
    try:
        result = docker("version", "--format", "{{.Server.Version}}", check=False,
                        timeout=20)
    except subprocess.TimeoutExpired:
        return "the Docker engine did not answer within 20 s"
    if result.returncode != 0:
        return f"no Docker engine answers ({result.stderr.strip()[:200]})"
    return None


class Names:
    """Unique names for the containers and volumes of one test session."""

    def __init__(self):
        self.prefix = f"sales-forecast-test-{uuid.uuid4().hex[:8]}"
        self.made: list[tuple[str, str]] = []

    def container(self, role: str) -> str:
        name = f"{self.prefix}-{role}-{uuid.uuid4().hex[:4]}"
        self.made.append(("container", name))
        return name

    def volume(self, role: str) -> str:
        name = f"{self.prefix}-{role}"
        self.made.append(("volume", name))
        return name

    def remove_all(self) -> None:
        # Containers first: a volume in use cannot be removed.
        for kind, name in sorted(self.made, key=lambda item: item[0] != "container"):
            if kind == "container":
                docker("rm", "--force", "--volumes", name, check=False)
            else:
                docker("volume", "rm", "--force", name, check=False)


@dataclass
class Container:
    """A detached container of the suite, published on 127.0.0.1 only."""

    name: str

    @cached_property
    def url(self) -> str:
        # 'docker port' prints one line per address family; take the IPv4 loopback one.
        lines = docker("port", self.name, f"{PORT}/tcp").stdout.split()
        address = next(line for line in lines if line.startswith("127.0.0.1:"))
        return f"http://{address}"

    def state(self) -> dict:
        return json.loads(docker("inspect", "--format", "{{json .State}}",
                                 self.name).stdout)

    def logs(self) -> str:
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def diff(self) -> list[str]:
        return docker("diff", self.name).stdout.splitlines()

    def exec(self, *command: str) -> str:
        return docker("exec", self.name, *command).stdout

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.state()["Running"]:
                raise AssertionError(f"{self.name} exited with "
                                     f"{self.state()['ExitCode']}:\n{self.logs()}")
            # Connections wait in the listen queue until a worker has booted, so a
            # read time-out here means "not yet", like a refused connection.
            try:
                if requests.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name}: /readyz not 200 after {timeout}s:\n"
                             + self.logs())

    def wait_exit(self, timeout: float) -> int:
        result = docker("wait", self.name, timeout=timeout)
        return int(result.stdout.strip())


def run_detached(image: str, name: str, volume: str, *flags: str,
                 env: dict | None = None) -> Container:
    """Serve from `volume` with the image's default command, port on 127.0.0.1."""
    env_flags = [item for k, v in (env or {}).items() for item in ("--env", f"{k}={v}")]
    docker("run", "--detach", "--name", name, "--publish", f"127.0.0.1::{PORT}",
           "--volume", f"{volume}:/models", *env_flags, *flags, image)
    return Container(name)


def image_config(image: str) -> dict:
    return json.loads(docker("image", "inspect", "--format", "{{json .Config}}",
                             image).stdout)


def image_files(image: str, workdir: Path):
    """Yield (layer number, path, content) for every regular file of every layer.

    `docker save` holds each layer whole, so a file that a later layer deletes still
    shows: a secret removed in a later step would still be found here. Layers are
    read as streams; only one file is in memory at a time.
    """
    archive = workdir / "image.tar"
    docker("save", "--output", str(archive), image, timeout=300)
    try:
        with tarfile.open(archive) as outer:
            # Docker 20.10 saves layers as */layer.tar, Docker 25 and later as OCI
            # blobs/sha256/*, among JSON blobs.
            members = [m for m in outer.getmembers() if m.isfile() and (
                m.name.endswith("layer.tar") or m.name.startswith("blobs/"))]
            for number, member in enumerate(members):
                try:
                    inner = tarfile.open(fileobj=outer.extractfile(member), mode="r|*")
                except tarfile.ReadError:
                    continue  # a blob that is JSON (config, manifest), not a layer
                with inner:
                    for entry in inner:
                        if entry.isfile():
                            yield number, entry.name, inner.extractfile(entry).read()
    finally:
        archive.unlink(missing_ok=True)


def pem_certificates(text: str) -> set[str]:
    """The base64 bodies of the PEM certificates in a bundle, whitespace removed."""
    bodies = set()
    for block in text.split("-----BEGIN CERTIFICATE-----")[1:]:
        body = block.split("-----END CERTIFICATE-----")[0]
        bodies.add("".join(body.split()))
    return bodies


class HeldRequest:
    """An HTTP/1.1 POST sent in two parts: headers and half the body now, the rest on
    `send_rest()`. Between the two, the server holds the request in flight: a worker
    thread is reading its body. That is a slow upload, a real client behaviour, and it
    lets a test choose the moment a request is in flight instead of guessing it."""

    def __init__(self, url: str, path: str, payload: dict):
        host, port = url.removeprefix("http://").split(":")
        self.body = json.dumps(payload).encode()
        self.half = len(self.body) // 2
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: application/json\r\n"
                f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n")
        self.sock.sendall(head.encode() + self.body[:self.half])

    def send_rest(self) -> None:
        self.sock.sendall(self.body[self.half:])

    def read(self) -> tuple[int, dict, float]:
        """The answer: (status, JSON body, monotonic time it arrived)."""
        chunks = []
        while chunk := self.sock.recv(65536):
            chunks.append(chunk)
        arrived = time.monotonic()
        self.sock.close()
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        if not head:
            raise AssertionError("the server closed the connection without answering")
        status = int(head.split(b" ", 2)[1])
        if b"transfer-encoding: chunked" in head.lower():
            body = dechunk(body)
        return status, json.loads(body), arrived


def dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return bytes(out)
