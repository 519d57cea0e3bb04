"""The page's server side through Flask's test client: the pages, /history, and the
CSV upload that checks a file and trains it into the model store."""

import errno
import fcntl
import io
import json
import os

import joblib
import pytest

from service import page
from service.app import create_app
from service.config import Settings
from tests.conftest import WINEIND
from training import artifact


def store_state(model_dir):
    """What a reader of the model store could see: the pointer and every version."""
    versions = sorted(p.name for p in (model_dir / artifact.VERSIONS).iterdir())
    return artifact.read_current(model_dir), versions


def upload(client, endpoint: str, path, content: bytes | None = None,
           name: str | None = None, headers=None, **fields):
    """POST a CSV as the page does: multipart, the file in field 'file'."""
    data = {"file": (io.BytesIO(content if content is not None else path.read_bytes()),
                     name or path.name), **fields}
    return client.post(endpoint, data=data, content_type="multipart/form-data",
                       headers=headers or {})


@pytest.fixture
def uploads_app(store_copy):
    return create_app(Settings(model_dir=store_copy, uploads=True), watch=False)


@pytest.fixture
def uploads_client(uploads_app):
    return uploads_app.test_client()


@pytest.fixture
def gappy_csv(tmp_path):
    """wineind with 1985-03 removed: a gap the loader must refuse."""
    lines = WINEIND.read_text().splitlines()
    kept = [line for line in lines if not line.startswith("1985-03")]
    assert len(kept) == len(lines) - 1
    path = tmp_path / "gappy.csv"
    path.write_text("\n".join(kept) + "\n")
    return path


# Pages --------------------------------------------------------------------------------

def test_the_page_and_the_reference_are_html_that_load_their_own_scripts(client):
    page_html = client.get("/").get_data(as_text=True)
    docs_html = client.get("/docs").get_data(as_text=True)

    assert "<h1>Sales forecast</h1>" in page_html
    assert '<script src="/static/page.js" defer>' in page_html
    assert '<script src="/static/docs.js" defer>' in docs_html
    for asset in ("page.js", "chart.js", "dom.js", "page.css", "docs.js"):
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200, asset
        assert b"http://" not in response.data.replace(b"http://www.w3.org", b""), asset
        assert b"https://" not in response.data, asset


def test_the_upload_form_is_shown_only_when_uploads_are_on(client, uploads_app):
    assert 'id="upload-form"' not in client.get("/").get_data(as_text=True)
    assert 'id="upload-form"' in uploads_app.test_client().get("/").get_data(as_text=True)


def test_the_page_adds_no_work_to_the_api_requests(app):
    """Hooks registered by the page's blueprint would run on every API request."""
    hooks = [app.before_request_funcs, app.after_request_funcs,
             app.teardown_request_funcs, app.url_value_preprocessors]
    assert all(set(registry) <= {None} for registry in hooks)


# History ------------------------------------------------------------------------------

def test_history_returns_the_months_the_model_was_trained_on(client):
    body = client.get("/history?series=wineind").get_json()

    lines = WINEIND.read_text().splitlines()[1:]
    assert body["series"] == "wineind"
    assert body["model_version"] == client.get("/model").get_json()["version"]
    assert len(body["history"]) == len(lines) == 176
    assert [f"{r['date']},{r['sales']:g}" for r in body["history"][:2]] == [
        "1980-01-01,15136", "1980-02-01,16733"]
    assert body["history"][-1]["date"] == "1994-08-01"
    assert body["history"][-1]["sales"] == float(lines[-1].split(",")[1])


def test_history_defaults_to_the_only_series_and_refuses_unknown_ones(client):
    assert client.get("/history").get_json()["series"] == "wineind"

    response = client.get("/history?series=nope")

    assert response.status_code == 404
    assert response.get_json()["code"] == "unknown_series"
    assert "'nope'" in response.get_json()["error"]


def test_history_of_a_version_without_a_history_file_says_how_to_get_one(store_copy):
    version = artifact.read_current(store_copy)
    (store_copy / artifact.VERSIONS / version / artifact.HISTORY_FILE).unlink()
    client = create_app(Settings(model_dir=store_copy), watch=False).test_client()

    response = client.get("/history")

    assert response.status_code == 404
    assert response.get_json() == {
        "code": "history_missing",
        "error": f"Model version {version} has no history.json: it was trained before "
                 "versions kept their history, or the file was removed. Train again to "
                 "get one.",
    }


# Uploads: refused ---------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", ["/upload/check", "/upload/train"])
def test_uploads_are_refused_with_403_when_switched_off(client, trained_store, endpoint):
    before = store_state(trained_store)

    response = upload(client, endpoint, WINEIND)

    assert response.status_code == 403
    assert response.get_json()["code"] == "uploads_disabled"
    assert "SALES_FORECAST_UPLOADS" in response.get_json()["error"]
    assert store_state(trained_store) == before


def test_an_upload_posted_by_another_site_is_refused(uploads_client, store_copy):
    before = store_state(store_copy)

    response = upload(uploads_client, "/upload/train", WINEIND, headers={"Origin": "http://elsewhere.example"})

    assert response.status_code == 403
    assert response.get_json()["code"] == "cross_origin"
    assert store_state(store_copy) == before


@pytest.mark.parametrize("host, allowed", [
    ("localhost:8080", True), ("127.0.0.1:8080", True), ("[::1]:8080", True),
    ("10.1.2.3", True), ("forecast.example", True), ("FORECAST.example.:443", True),
    ("rebind.example:8080", False), ("localhost.rebind.example", False),
])
def test_uploads_addressed_to_an_unlisted_name_are_refused(store_copy, host, allowed):
    app = create_app(Settings(model_dir=store_copy, uploads=True,
                              upload_hosts=("forecast.example",)), watch=False)
    scheme = "https" if host.endswith(":443") else "http"
    # The page's own Origin, as a browser sends it after a DNS rebinding.
    response = upload(app.test_client(), "/upload/check", WINEIND,
                      headers={"Host": host, "Origin": f"{scheme}://{host}"})

    if allowed:
        assert response.status_code == 200, response.get_json()
    else:
        assert response.status_code == 403
        assert response.get_json()["code"] == "cross_origin"
        assert "list the name in SALES_FORECAST_UPLOAD_HOSTS" in \
            response.get_json()["error"]


@pytest.mark.parametrize("fields, message", [
    ({"colour": "red"}, "Unknown form field 'colour'"),
    ({"fill_gaps": "guess"}, "fill_gaps must be empty or 'interpolate', got 'guess'"),
    ({"date_col": "d" * 101}, "date_col is 101 characters long; at most 100"),
    ({"encoding": "rot13"}, "encoding: unknown text encoding 'rot13'"),
    ({"strict": "maybe"}, "strict must be true or false (1/0, on/off, yes/no also do), "
                          "got 'maybe'"),
    ({"force": ["on", "off"]}, "The form field 'force' was sent more than once"),
], ids=["unknown-field", "bad-fill-gaps", "long-option", "bad-encoding", "bad-flag",
        "repeated-field"])
def test_bad_upload_options_are_400_with_the_reason(uploads_client, fields, message):
    response = upload(uploads_client, "/upload/check", WINEIND, **fields)

    assert response.status_code == 400
    assert message in response.get_json()["error"]


def test_an_upload_without_a_file_says_which_field_to_use(uploads_client):
    response = uploads_client.post("/upload/check", data={"date_col": "date"},
                            content_type="multipart/form-data")

    assert response.status_code == 400
    assert "multipart form field 'file'" in response.get_json()["error"]


def test_an_oversized_upload_is_413(uploads_client):
    response = upload(uploads_client, "/upload/check", WINEIND, content=b"x" * (3 * 1024 * 1024))

    assert response.status_code == 413
    assert response.get_json()["code"] == "request_entity_too_large"


# Uploads: check -----------------------------------------------------------------------

def test_check_reports_what_training_would_see_and_writes_nothing(uploads_client, store_copy):
    before = store_state(store_copy)

    response = upload(uploads_client, "/upload/check", WINEIND)

    assert response.status_code == 200
    body = response.get_json()
    assert body["rows"] == 176
    assert body["series"] == [{"name": "wineind", "first": "1980-01-01",
                               "last": "1994-08-01", "months": 176}]
    assert body["notes"] == [] and body["rejected"] == {}
    assert body["options"]["holdout_months"] == 12
    assert store_state(store_copy) == before


def test_check_of_a_broken_file_shows_the_loader_message(uploads_client, store_copy, gappy_csv):
    before = store_state(store_copy)

    response = upload(uploads_client, "/upload/check", gappy_csv)

    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == "invalid_data"
    assert body["error"].startswith("gappy.csv: 1 month(s) missing")
    assert "1985-03" in body["error"]
    assert store_state(store_copy) == before


def test_check_uses_the_options_sent_with_the_file(uploads_client, gappy_csv):
    body = upload(uploads_client, "/upload/check", gappy_csv, fill_gaps="interpolate",
                  series_name="wine").get_json()

    assert body["series"][0]["name"] == "wine"
    assert body["series"][0]["months"] == 176
    assert any("1985-03" in note for note in body["notes"])


def test_a_latin_1_file_reads_with_the_encoding_field_its_refusal_names(uploads_client):
    text = WINEIND.read_text().replace("date,sales", "date,ventes écoulées")
    content = text.encode("latin-1")

    refused = upload(uploads_client, "/upload/check", WINEIND, content=content,
                     sales_col="ventes écoulées")
    body = upload(uploads_client, "/upload/check", WINEIND, content=content,
                  sales_col="ventes écoulées", encoding="latin-1").get_json()

    assert refused.status_code == 422
    assert "is not valid utf-8 text" in refused.get_json()["error"]
    assert "(--encoding)" in refused.get_json()["error"]
    assert body["series"][0]["months"] == 176
    assert body["options"]["encoding"] == "latin-1"


def test_check_lists_every_series_of_a_multi_series_file(uploads_client, tmp_path):
    lines = WINEIND.read_text().splitlines()
    rows = [f"{line},{name}" for name in ("north", "south") for line in lines[1:]]
    rows.append("1990-01,oops,east")
    path = tmp_path / "stores.csv"
    path.write_text("date,sales,series\n" + "\n".join(rows) + "\n")

    body = upload(uploads_client, "/upload/check", path).get_json()

    assert [s["name"] for s in body["series"]] == ["north", "south"]
    assert list(body["rejected"]) == ["east"]
    assert "'oops' is not a number" in body["rejected"]["east"]


@pytest.mark.parametrize("strict", ["", "true"], ids=["none-loads", "strict"])
def test_a_refusal_quotes_long_series_names_only_in_part(uploads_client, strict):
    long_names = [letter * 90_000 for letter in "abcdefg"]
    lines = WINEIND.read_text().splitlines()[1:]
    good = [f"{line},short" for line in lines] if strict else []
    rows = good + [f"1990-01,1,{name}" for name in long_names]

    response = upload(uploads_client, "/upload/check", WINEIND,
                      content=("date,sales,series\n" + "\n".join(rows)).encode(),
                      name="long.csv", strict=strict)

    body = response.get_json()
    assert (response.status_code, body["code"]) == (422, "invalid_data")
    assert "'aaaa" in body["error"] and "(90000 characters)" in body["error"]
    assert len(body["error"]) < 2000


def test_any_file_name_is_only_a_label(uploads_client):
    body = upload(uploads_client, "/upload/check", WINEIND,
                  name="../-x/--help.csv").get_json()

    assert body["source"] == "--help.csv"
    assert body["series"][0]["name"] == "--help"


@pytest.mark.parametrize("name, code", [
    ("\x1b]0;owned\x07\x1b[2Jsales.csv", "U+001B"),
    ("sales\u202evsc.csv", "U+202E"),
], ids=["terminal-escapes", "right-to-left-override"])
def test_a_file_name_with_hidden_characters_is_refused(uploads_client, name, code):
    response = upload(uploads_client, "/upload/check", WINEIND, name=name)

    assert response.status_code == 400
    assert f"contains {code}, a control or invisible" in response.get_json()["error"]


def test_an_empty_file_is_refused_by_name(uploads_client):
    response = upload(uploads_client, "/upload/check", WINEIND, content=b"", name="empty.csv")

    assert response.status_code == 422
    assert response.get_json()["error"].startswith("empty.csv is empty")


# Uploads: train -----------------------------------------------------------------------

def test_train_publishes_a_version_this_worker_serves_at_once(uploads_client, uploads_app,
                                                              store_copy, tmp_path):
    before, versions = store_state(store_copy)
    path = tmp_path / "cellar.csv"
    path.write_bytes(WINEIND.read_bytes())

    response = upload(uploads_client, "/upload/train", path)

    assert response.status_code == 201
    body = response.get_json()
    assert body["version"] != before
    assert store_state(store_copy) == (body["version"], sorted([*versions, body["version"]]))
    assert body["summary"]["series"][0]["name"] == "cellar"
    # The page publishes in place of what was served, and says what that dropped.
    assert body["dropped_series"] == ["wineind"]
    assert set(body["evaluation"]["cellar"]["scores"]) >= {"seasonal", "seasonal-naive"}
    client = uploads_app.test_client()
    assert client.get("/model").get_json()["version"] == body["version"]
    assert client.post("/forecast", json={"series": "cellar"}).status_code == 200
    history = json.loads((store_copy / artifact.VERSIONS / body["version"]
                          / artifact.HISTORY_FILE).read_text())
    assert len(history["series"]["cellar"]["sales"]) == 176


def test_train_of_a_broken_file_publishes_nothing(uploads_client, store_copy, gappy_csv):
    before = store_state(store_copy)

    response = upload(uploads_client, "/upload/train", gappy_csv)

    assert response.status_code == 422
    assert "1985-03" in response.get_json()["error"]
    assert store_state(store_copy) == before


def test_a_second_upload_while_one_trains_is_told_to_wait(uploads_client, store_copy):
    before = store_state(store_copy)
    with open(store_copy / ".upload.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)

        response = upload(uploads_client, "/upload/train", WINEIND)

    assert response.status_code == 409
    assert response.get_json()["code"] == "training_busy"
    assert store_state(store_copy) == before


def test_an_upload_the_full_disk_cannot_hold_says_so_and_leaves_the_store(
        uploads_client, store_copy, monkeypatch):
    """The disk fills up while the upload's version is written: a 507 that says
    so, not an internal error, and the store as it was."""
    before = store_state(store_copy)
    real_dump = joblib.dump

    def dump_then_fill_up(model, path, *args, **kwargs):
        real_dump(model, path, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(joblib, "dump", dump_then_fill_up)

    response = upload(uploads_client, "/upload/train", WINEIND, force="1")

    assert response.status_code == 507
    assert response.get_json() == {
        "code": "store_unwritable",
        "error": f"the model store {store_copy} could not be written: No space "
                 "left on device. Nothing was published; CURRENT is unchanged."}
    assert store_state(store_copy) == before
    assert not list((store_copy / artifact.VERSIONS).glob(".*"))


def test_an_upload_onto_a_full_disk_is_refused_before_training(
        uploads_client, store_copy, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained onto a full disk")
    real = os.statvfs

    def full(path):
        st = real(path)
        return os.statvfs_result((*st[:3], 0, 0, *st[5:]))
    monkeypatch.setattr("training.cli.train", no_training)
    monkeypatch.setattr(os, "statvfs", full)

    response = upload(uploads_client, "/upload/train", WINEIND)

    assert response.status_code == 507
    assert "is full (no space left). Nothing was trained or published" \
        in response.get_json()["error"]
    # Out of files, the upload's own lock could not have been made either.
    assert not (store_copy / ".upload.lock").exists()


def test_the_first_upload_into_a_store_not_made_yet_makes_it(tmp_path):
    """The service may start before anything is trained; its store folder is then
    made by the first upload, which looks for room where it will be made."""
    model_dir = tmp_path / "not yet" / "models"
    app = create_app(Settings(model_dir=model_dir, uploads=True), watch=False)

    response = upload(app.test_client(), "/upload/train", WINEIND)

    assert response.status_code == 201
    assert artifact.read_current(model_dir) == response.get_json()["version"]


def test_too_many_series_are_refused_before_training(uploads_client, store_copy, tmp_path,
                                                     monkeypatch):
    monkeypatch.setattr(page, "MAX_UPLOAD_SERIES", 1)
    lines = WINEIND.read_text().splitlines()
    rows = [f"{line},{name}" for name in ("a", "b") for line in lines[1:]]
    path = tmp_path / "two.csv"
    path.write_text("date,sales,series\n" + "\n".join(rows) + "\n")
    before = store_state(store_copy)

    response = upload(uploads_client, "/upload/train", path)

    assert response.status_code == 422
    assert "two.csv has 2 series; the page trains at most 1" in response.get_json()["error"]
    assert store_state(store_copy) == before


def test_a_version_worse_than_the_served_one_is_kept_but_not_served(
        uploads_client, store_copy, monkeypatch):
    from training import cli

    served, versions = store_state(store_copy)
    monkeypatch.setattr(cli, "promotion_check", lambda model_dir, trained: {
        "served_version": served, "comparable": True, "not_worse": False,
        "metric": "mase", "new": 1.25, "served": 0.95, "series": ["wineind"],
        "months": 72})

    response = upload(uploads_client, "/upload/train", WINEIND)

    assert response.status_code == 409
    body = response.get_json()
    assert body["code"] == "not_promoted"
    assert "MASE 1.2500" in body["error"] and "0.9500" in body["error"]
    current, now = store_state(store_copy)
    assert current == served and len(now) == len(versions) + 1
    assert uploads_client.get("/model").get_json()["version"] == served

    forced = upload(uploads_client, "/upload/train", WINEIND, name="again.csv",
                    force="true")

    assert forced.status_code == 201
    assert store_state(store_copy)[0] == forced.get_json()["version"]
