"""Issue 17, the newcomer's first hour (more): JSON routes read JSON whatever content type ``curl -d`` sends,
unknown or mistyped body fields are refused, and the page's audit report is the newest local one, labelled."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.settings import load_settings
from glassfeed.sim import cli as sim_cli
from glassfeed.web.routes import REPORT_GLOBS

KEY = "test-service-key"
H = {"Authorization": f"Bearer {KEY}"}
FORM = {**H, "Content-Type": "application/x-www-form-urlencoded"}  # what `curl -d` sends by default


@pytest.fixture()
def client(tmp_path):
    with TestClient(create_app(load_settings(store={"path": tmp_path / "api.db"}, api={"key": KEY}))) as c:
        c.post("/v1/users", json=[{"id": "alice"}], headers=H).raise_for_status()
        yield c


def _refused(resp, field, status=422):
    assert resp.status_code == status, resp.text
    assert any(d["field"] == field for d in resp.json()["detail"]), resp.json()


# ------------------------------------------------------------------------------------ item 6: curl -d everywhere
@pytest.mark.parametrize("ctype", ["application/x-www-form-urlencoded", "text/plain", None])
def test_prefs_and_muted_words_accept_json_whatever_the_content_type(client, ctype):
    headers = dict(H) if ctype is None else {**H, "Content-Type": ctype}
    r = client.put("/v1/users/alice/muted-words", content=b'{"words": ["zebra"]}', headers=headers)
    assert r.status_code == 200, r.text
    assert client.get("/v1/users/alice/muted-words", headers=H).json()["words"] == ["zebra"]
    r = client.put("/v1/users/alice/prefs", content=b'{"topics_more": ["science"]}', headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["prefs"]["topics_more"] == ["science"]


def test_form_content_type_is_read_alike_on_ingest_and_controls(client):
    ev = client.post("/v1/users", content=b'{"id": "bob"}', headers=FORM)
    assert ev.status_code == 201, ev.text
    for path in ("/v1/users/alice/muted-words", "/v1/users/alice/prefs"):
        bad = client.put(path, content=b"words=zebra", headers=FORM)  # a real form body is not JSON: a clear 400
        assert bad.status_code == 400, bad.text


# ----------------------------------------------------------------------------------------------- fuzz findings
@pytest.mark.parametrize("interests", [{}, "", 0, False, {"a": 1}])
def test_interests_not_a_list_is_422_naming_it(client, interests):
    r = client.post("/v1/users", json={"id": "carol", "interests": interests}, headers=H)
    _refused(r, "interests")
    assert client.app.state.store.user_idx("carol") is None
    assert client.post("/v1/users", json={"id": "carol", "interests": []}, headers=H).status_code == 201


def test_unknown_key_in_controls_body_is_422_naming_it(client):
    r = client.put("/v1/users/alice/muted-words", json={"words": ["zebra"], "wrods": ["x"]}, headers=H)
    _refused(r, "wrods")
    assert client.get("/v1/users/alice/muted-words", headers=H).json()["words"] == []
    _refused(client.put("/v1/users/alice/prefs", json={"wieghts": {}}, headers=H), "wieghts")


# ---------------------------------------------------------------------------- item 4: the audit report is yours
def _write(path, text, mtime):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))


def test_audit_serves_the_newest_local_report_and_says_which(client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GLASSFEED_AUDIT_REPORT", raising=False)
    example = tmp_path / "docs" / "simulation" / "report.html"
    _write(example, "<html><body><h1>shipped example</h1></body></html>", 2_000_000_000)  # newer than any run
    r = client.get("/audit/")
    assert r.status_code == 200 and "shipped example" in r.text
    assert "not a run of yours" in r.text and str(example) in r.text  # said to be the example, and which file
    assert r.text.index("glassfeed-report-source") < r.text.index("shipped example")  # at the top of the body

    older = tmp_path / "sim-out" / "20260101-000000" / "report.html"  # where `glassfeed simulate` writes
    newer = tmp_path / "sim-out" / "20260102-000000" / "report.html"
    _write(older, "<body><h1>run one</h1></body>", 1_700_000_000)
    _write(newer, '<body class="r"><h1>run two</h1></body>', 1_700_000_100)
    r = client.get("/audit/")
    assert "run two" in r.text and "shipped example" not in r.text  # a local run wins over the example
    assert str(newer) in r.text and "not a run of yours" not in r.text
    assert r.headers["content-security-policy"] == client.app.state.settings.web.report_content_security_policy


def test_simulate_default_folder_is_where_the_page_looks():
    assert f"{sim_cli.DEFAULT_OUT}/*/report.html" in REPORT_GLOBS
