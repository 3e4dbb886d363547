"""The server fuzzed against its own OpenAPI (schemathesis), with the service key and with a user token.

A real uvicorn process on a temporary store is seeded (users with tokens, posts, follows, events), then
``schemathesis run`` drives every documented operation through its phases (examples, coverage, fuzzing,
stateful), bounded by ``--max-time``. The run passes when it finds

- 0 server errors (5xx; also any traceback in the server's log),
- 0 dropped connections (network errors: reset, closed without response, timeout),
- 0 schema mismatches (undocumented status codes, bodies that violate the documented response schema,
  schema-valid input refused, schema-violating input accepted, wrong answers to undeclared methods, ...).

Every distinct failure is printed (operation, check, status, a sample request) so it can be routed.
The run is skipped unless ``GLASSFEED_FUZZ=1`` (``make fuzz``; the report parsers' own tests always run);
``GLASSFEED_FUZZ_SECONDS`` (per auth mode, default 75) and ``GLASSFEED_FUZZ_SEED`` tune it. The JSON summary
and the raw reports are kept under ``GLASSFEED_FUZZ_REPORT_DIR`` when set.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from live_server import LiveServer

KEY = "fuzz-service-key"
SECONDS = int(os.environ.get("GLASSFEED_FUZZ_SECONDS", "75"))
SEED = os.environ.get("GLASSFEED_FUZZ_SEED", "17")
N_USERS, N_POSTS = 12, 40

needs_fuzz = pytest.mark.skipif(
    os.environ.get("GLASSFEED_FUZZ") != "1",
    reason="the OpenAPI fuzz run takes minutes: set GLASSFEED_FUZZ=1 (or `make fuzz`)",
)


@dataclass
class FuzzResult:
    """What one schemathesis run found, grouped into the three counts the issue asks for."""

    mode: str
    exit_code: int = 0  # schemathesis' own: non-zero when it found anything
    server_errors: Counter = field(default_factory=Counter)  # distinct key -> occurrences
    dropped: Counter = field(default_factory=Counter)
    mismatches: Counter = field(default_factory=Counter)
    tracebacks: Counter = field(default_factory=Counter)
    harness_errors: Counter = field(default_factory=Counter)  # schemathesis' own errors (not the server's)
    samples: dict[str, str] = field(default_factory=dict)  # distinct key -> one reproducing request
    cases: int = 0

    def summary(self) -> dict[str, Any]:
        def listing(c: Counter) -> list[dict[str, Any]]:
            return [{"failure": k, "count": n, "sample": self.samples.get(k, "")} for k, n in c.most_common()]

        return {
            "mode": self.mode,
            "test_cases": self.cases,
            "5xx": sum(self.server_errors.values()),
            "dropped_connections": sum(self.dropped.values()),
            "schema_mismatches": sum(self.mismatches.values()),
            "server_tracebacks": sum(self.tracebacks.values()),
            "harness_errors": sum(self.harness_errors.values()),
            "distinct": {
                "5xx": listing(self.server_errors),
                "dropped_connections": listing(self.dropped),
                "schema_mismatches": listing(self.mismatches),
                "server_tracebacks": listing(self.tracebacks),
                "harness_errors": listing(self.harness_errors),
            },
        }


def _seed(url: str) -> tuple[list[str], list[str], dict[str, str]]:
    """Users (with their tokens), posts from the last hours, follows and events, so that feeds have content."""
    now = time.time()
    c = httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=60)
    users = [f"fz-u{i}" for i in range(N_USERS)]
    r = c.post("/v1/users", json=[{"id": u, "community": i % 2, "interests": ["news"]} for i, u in enumerate(users)])
    assert r.status_code == 201, r.text
    tokens = {u["id"]: u["token"] for u in r.json()["users"]}
    posts = [f"fz-p{i}" for i in range(N_POSTS)]
    r = c.post(
        "/v1/posts",
        json=[
            {"id": p, "author": users[i % N_USERS], "text": f"post {i} #news", "created_at": now - 600 * i}
            for i, p in enumerate(posts)
        ],
    )
    assert r.status_code == 201, r.text
    r = c.post("/v1/follows", json=[{"user": u, "target": users[(i + 1) % N_USERS]} for i, u in enumerate(users)])
    assert r.status_code == 200, r.text
    events = [
        {"kind": kind, "user": users[i % N_USERS], "post": posts[(i * 7) % N_POSTS], "ts": now - 30 * i}
        for i in range(300)
        for kind in (("impression", "like") if i % 3 == 0 else ("impression",))
    ]
    r = c.post("/v1/events", json=events)
    assert r.status_code == 200, r.text
    return users, posts, tokens


def _toml_list(values: list[Any]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


#: Body fields that name an entity which must already exist, per operation: the fuzzer draws them from the seeded
#: ids, as a real client would; OpenAPI cannot say which ids exist (an unknown one is a 422 naming the field, which
#: the suite tests directly). schemathesis' coverage phase walks boundary values without these dictionaries, so
#: in that phase only, and only on these operations, a 422 to schema-valid input is an accepted answer.
_REFERENCES: dict[str, dict[str, str]] = {
    "/v1/events": {"user": "users", "post": "posts", "target_user": "users", "ts": "times"},
    "/v1/users/{user_id}/events": {"post": "posts", "target_user": "users", "ts": "times"},
    "/v1/follows": {"user": "users", "target": "users", "ts": "times"},
    "/v1/posts": {
        "author": "users", "reply_to": "posts", "repost_of": "posts", "quote_of": "posts", "created_at": "times"},
    "/v1/users": {"created_at": "times"},
}  # fmt: skip
#: Times are drawn from recent ones too: the server refuses a time more than ``max_future_skew_s`` ahead of its
#: clock, which a schema cannot say (a date-time's upper bound moves).
#: Operations that take a feed ``cursor``: a cursor is opaque and signed by the server, so a schema-valid string
#: the server did not sign is refused with 400 ("bad cursor"); that one refusal is an accepted answer there.
_CURSOR_OPERATIONS = (
    "/v1/feed",
    "/v1/users/{user_id}/feed",
    "/xrpc/app.bsky.feed.getFeedSkeleton",
    "/v1/users/{user_id}/ads/actions",  # an ad's token is signed by the server as a cursor is
)
_POSITIVE = '["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]'  # schemathesis' defaults
#: Operations whose schema-valid input can still be refused with a 422 naming the field, for a rule a schema cannot
#: state: a P-256 point on the curve (a Web Push key), bounds and kinds that differ by the chosen notification
#: or suggestion policy, a name in the time-zone database, a period whose start is before its end (a calendar date),
#: a window no longer than a setting allows, a community that exists.
_SEMANTIC_422 = (
    "/v1/experiments",  # arm names unique, shares summing to 1, policies that exist for the layer's lever
    "/v1/users/{user_id}/push-subscriptions",
    "/v1/users/{user_id}/notification-settings",
    "/v1/transparency",
    "/v1/transparency.html",
    "/v1/users/{user_id}/suggestions",  # limit at most the chosen suggestion policy's max_limit
    "/v1/trends",  # a community that exists
    "/v1/users/{user_id}/creator",  # days at most the [creators] max_days setting
    "/v1/users/{user_id}/creator/posts/{post_id}",
)


def _recent_times() -> list[Any]:
    """Times of the last day, as epoch seconds and as RFC 3339 strings (with ``Z`` and with an offset)."""
    now = time.time()
    out: list[Any] = []
    for ago in (5, 600, 3600, 86_400):
        t = now - ago
        out += [round(t, 3), datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                datetime.fromtimestamp(t, timezone(timedelta(hours=2))).isoformat()]  # fmt: skip
    return out


def _config(mode: str, users: list[str], posts: list[str]) -> str:
    """schemathesis.toml: path ids drawn from the seeded ones half the time (random otherwise) with the service
    key; pinned to the token's own user with a user token (other ids only test the 401, covered above); body
    references to other entities always drawn from the seeded ids (``_REFERENCES``)."""
    lines = [
        f"[dictionaries.users]\nvalues = {_toml_list(users)}",
        f"[dictionaries.posts]\nvalues = {_toml_list(posts)}",
        f"[dictionaries.times]\nvalues = {_toml_list(_recent_times())}",
        "[parameters]",
    ]
    if mode == "service":
        lines.append('"path.user_id" = { dictionary = "users", probability = 0.5 }')
    else:
        lines.append(f'"path.user_id" = {json.dumps(users[1])}')
    lines.append('"path.post_id" = { dictionary = "posts", probability = 0.5 }')
    # 413 (a batch or body over its limit) is a rejection too; the rest are schemathesis' defaults
    lines.append('[checks.negative_data_rejection]\nexpected-statuses = ["400", "401", "403", "404", "405", "406", '
                 '"409", "413", "415", "422", "428", "429", "5xx"]')  # fmt: skip
    for path, refs in _REFERENCES.items():
        lines += ["[[operations]]", f"include-path = {json.dumps(path)}", "[operations.parameters]"]
        for name, dictionary in refs.items():
            for where in (f"body.{name}", f"body.[*].{name}", f"body.{path.rsplit('/', 1)[-1]}[*].{name}"):
                lines.append(f'{json.dumps(where)} = {{ dictionary = "{dictionary}", probability = 1.0 }}')
        lines += ["[operations.phases.coverage.checks.positive_data_acceptance]",
                  f'expected-statuses = {_POSITIVE[:-1]}, "422"]']  # fmt: skip
    # DELETE .../data erases what the person gave and what was inferred, not the account (docs: data rights): the
    # export afterwards answers 200 with what is kept and what they did since, which is not a "use after free"
    lines += [
        "[[operations]]",
        'include-path = "/v1/users/{user_id}/data"',
        "[operations.checks.use_after_free]",
        "enabled = false",
    ]
    # A report names a post or an account in its body: a 404 there is about that post (drawn at random in the
    # stateful phase), not about the person just created whose id the path took from the link
    lines += [
        "[[operations]]",
        'include-path = "/v1/users/{user_id}/reports"',
        "[operations.checks.ensure_resource_availability]",
        "enabled = false",
    ]
    for path in _SEMANTIC_422:
        lines += [
            "[[operations]]",
            f"include-path = {json.dumps(path)}",
            "[operations.checks.positive_data_acceptance]",
            f'expected-statuses = {_POSITIVE[:-1]}, "422"]',
        ]
    for path in _CURSOR_OPERATIONS:
        lines += [
            "[[operations]]",
            f"include-path = {json.dumps(path)}",
            "[operations.checks.positive_data_acceptance]",
            f'expected-statuses = {_POSITIVE[:-1]}, "400"]',
        ]
    return "\n".join(lines) + "\n"


def _decode(body: Any) -> str:
    if isinstance(body, dict) and "$base64" in body:
        return base64.b64decode(body["$base64"]).decode("utf-8", "replace")
    return "" if body is None else str(body)


def _sample(interaction: dict[str, Any] | None, case: dict[str, Any] | None) -> str:
    """One line that reproduces a case: method, URI, body (truncated) and the status it got."""
    if interaction:
        req, resp = interaction.get("request", {}), interaction.get("response") or {}
        body = _decode(req.get("body"))
        status = resp.get("status_code", "no response")
        text = f"{req.get('method')} {req.get('uri')}" + (f" body={body[:300]!r}" if body else "")
        return f"{text} -> {status}"
    if case:
        return f"{case.get('method')} {case.get('path')} {json.dumps(case.get('path_parameters', {}))[:200]}"
    return ""


# requests' exceptions for a connection reset, closed without an answer, or no answer in time
_NETWORK_ERRORS = {"ConnectionError", "Timeout", "ReadTimeout", "ConnectTimeout", "ChunkedEncodingError",
                   "ProtocolError", "RemoteDisconnected", "ConnectionResetError"}  # fmt: skip
_RULE = re.compile(r"\s(is not|is too|is a required|does not|should not|has non-unique|was expected)\b.*$")


def _schema_violation(message: str) -> str:
    """The violated rule of a response-schema failure (its first line without the offending value), and the
    named schema it was checked against when there is one."""
    first = message.splitlines()[0] if message else ""
    m = _RULE.search(first)
    rule = m.group(0).strip() if m and len(first) > 80 else first[:120]
    named = re.search(r"Schema at (\S+?):", message)
    return f"{rule} ({named.group(1)})" if named else rule


_GLASSFEED_FRAME = re.compile(r'File ".*?/(glassfeed/[^"]+)", line (\d+), in (\S+)')


def _text_lines(line: str) -> list[str]:
    """A JSON log line (``[api] log_format = "json"``) as the text lines it stands for: the message, then the
    traceback it carries; any other line as it is."""
    if line.startswith("{"):
        try:
            rec = json.loads(line)
        except ValueError:
            return [line]
        if isinstance(rec, dict) and "msg" in rec:
            return [str(rec["msg"]), *str(rec.get("exc", "")).splitlines()]
    return [line]


def parse_tracebacks(log: str) -> list[tuple[str, str]]:
    """(key, sample) per traceback in a server log: the request line before it (``unhandled error on GET /x``),
    the deepest glassfeed frame and the exception line, so repeated causes group under one key."""
    out: list[tuple[str, str]] = []
    lines = [x for line in log.splitlines() for x in _text_lines(line)]
    for i, line in enumerate(lines):
        if not line.startswith("Traceback (most recent call last):"):
            continue
        context = next((lines[j] for j in range(i - 1, -1, -1) if lines[j] and not lines[j].startswith(" ")), "")
        frame, j = "", i + 1
        while j < len(lines) and (lines[j].startswith(" ") or not lines[j]):
            m = _GLASSFEED_FRAME.search(lines[j])
            if m:
                frame = f"{m.group(1)}:{m.group(2)} in {m.group(3)}"
            j += 1
        exc = lines[j] if j < len(lines) else "?"
        method_route = re.sub(r"^unhandled error on (\S+) (\S+).*", r"\1", context) if "unhandled" in context else ""
        exc_type = exc.split(":", 1)[0]
        key = f"{method_route or context[:60]} | {exc_type} | {frame or 'outside glassfeed'}"
        out.append((key, f"{context[:200]} :: {exc[:300]}"))
    return out


def parse_report(mode: str, ndjson: Path) -> FuzzResult:
    """Group the schemathesis NDJSON events into 5xx, dropped connections and schema mismatches."""
    res = FuzzResult(mode)
    for line in ndjson.read_text().splitlines():
        event = json.loads(line)
        (kind, data), *_ = event.items()
        if kind == "NonFatalError":
            v = data.get("value", {})
            key = f"{data.get('label')} | {v.get('type')}: {str(v.get('message'))[:160]}"
            (res.dropped if v.get("type") in _NETWORK_ERRORS else res.harness_errors)[key] += 1
            continue
        if kind != "ScenarioFinished":
            continue
        rec = data.get("recorder", {})
        cases, interactions = rec.get("cases", {}), rec.get("interactions", {})
        res.cases += len(cases)
        for case_id, checks in rec.get("checks", {}).items():
            for check in checks:
                if check.get("status") != "failure":
                    continue
                f = check.get("failure_info", {}).get("failure", {})
                interaction = interactions.get(case_id)
                status = ((interaction or {}).get("response") or {}).get("status_code", "-")
                msg = (f.get("message") or "").splitlines()
                key = f"{f.get('operation')} | {f.get('code')} {f.get('title')} | status {status}"
                if f.get("code") == "ST108" and msg:  # response schema: name the violated rule, not the value
                    key += f" | {_schema_violation(f.get('message') or '')}"
                bucket = res.server_errors if f.get("code") == "ST101" else res.mismatches
                bucket[key] += 1
                res.samples.setdefault(key, _sample(interaction, cases.get(case_id, {}).get("value")))
    return res


def run_schemathesis(mode: str, url: str, headers: dict[str, str], config: str, workdir: Path) -> FuzzResult:
    """One bounded ``schemathesis run``; its console output goes to ``workdir/console.txt``."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "schemathesis.toml").write_text(config)
    ndjson = workdir / "events.ndjson"
    exe = Path(sys.executable).with_name("schemathesis")
    cmd = [str(exe), "--config-file", str(workdir / "schemathesis.toml"), "run", f"{url}/openapi.json",
           "--max-time", str(SECONDS), "--max-examples", "25", "--seed", SEED, "--workers", "1",
           "--request-timeout", "30", "--request-retries", "0", "--no-color",
           "--report", "ndjson,junit", "--report-dir", str(workdir), "--report-ndjson-path", str(ndjson)]  # fmt: skip
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    if mode == "user":  # a person erasing their own data would end the run's authentication (the service run covers it)
        cmd += ["--exclude-method", "DELETE"]
    with (workdir / "console.txt").open("w") as out:
        # run in workdir: schemathesis keeps its caches (.schemathesis/, .hypothesis/) in the current directory
        done = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, timeout=SECONDS * 3 + 120, check=False, cwd=workdir
        )
    assert ndjson.exists(), (workdir / "console.txt").read_text()[-3000:]
    res = parse_report(mode, ndjson)
    res.exit_code = done.returncode
    return res


def _print(summary: dict[str, Any]) -> None:
    print(f"\n== schemathesis, {summary['mode']}: {summary['test_cases']} test cases; 5xx {summary['5xx']}, "
          f"dropped connections {summary['dropped_connections']}, schema mismatches {summary['schema_mismatches']}, "
          f"server tracebacks {summary['server_tracebacks']}, harness errors {summary['harness_errors']}")  # fmt: skip
    for bucket, items in summary["distinct"].items():
        for item in items:
            print(f"  [{bucket}] x{item['count']}: {item['failure']}\n      e.g. {item['sample']}")


def test_traceback_parser_groups_by_route_exception_and_frame():
    log = (
        "unhandled error on POST /v1/posts\nTraceback (most recent call last):\n"
        '  File "/x/src/glassfeed/api/routes_ingest.py", line 9, in create_posts\n    items = f()\n'
        '  File "/x/src/glassfeed/ingest.py", line 42, in create_posts\n    q = float(v)\n'
        "ValueError: could not convert string to float: 'AAA'\n"
        "INFO: something else\nunhandled error on POST /v1/posts\nTraceback (most recent call last):\n"
        '  File "/x/src/glassfeed/ingest.py", line 42, in create_posts\n    q = float(v)\n'
        "ValueError: could not convert string to float: 'B'\n"
    )
    found = parse_tracebacks(log)
    assert [k for k, _ in found] == ["POST | ValueError | glassfeed/ingest.py:42 in create_posts"] * 2
    assert "float: 'AAA'" in found[0][1]


def test_report_parser_counts_5xx_mismatches_and_dropped_connections(tmp_path):
    def finished(code: str, status: int) -> dict[str, Any]:
        failure = {"code": code, "title": "t", "operation": "GET /x", "message": "m"}
        return {
            "ScenarioFinished": {
                "recorder": {
                    "cases": {"c1": {"value": {"method": "GET", "path": "/x"}}},
                    "checks": {"c1": [{"name": "n", "status": "failure", "failure_info": {"failure": failure}}]},
                    "interactions": {
                        "c1": {"request": {"method": "GET", "uri": "http://h/x"}, "response": {"status_code": status}}
                    },
                }
            }
        }

    events = [
        finished("ST101", 500),
        finished("ST103", 404),
        {"NonFatalError": {"label": "GET /x", "value": {"type": "ConnectionError", "message": "reset"}}},
        {"NonFatalError": {"label": "GET /x", "value": {"type": "SystemError", "message": "internal"}}},
    ]
    f = tmp_path / "e.ndjson"
    f.write_text("\n".join(json.dumps(e) for e in events))
    s = parse_report("service", f).summary()
    assert (s["5xx"], s["schema_mismatches"], s["dropped_connections"], s["harness_errors"]) == (1, 1, 1, 1)
    assert s["distinct"]["5xx"][0]["sample"] == "GET http://h/x -> 500"


@pytest.mark.fuzz
@needs_fuzz
@pytest.mark.parametrize("mode", ["service", "user"])
def test_openapi_fuzz_finds_no_5xx_no_drops_no_mismatch(mode, tmp_path):
    db = tmp_path / "fuzz.db"
    with LiveServer(db, KEY) as srv:
        users, posts, tokens = _seed(srv.url)
        headers = {"X-API-Key": KEY} if mode == "service" else {"Authorization": f"Bearer {tokens[users[1]]}"}
        log_before = len(srv.log())
        res = run_schemathesis(mode, srv.url, headers, _config(mode, users, posts), tmp_path / f"st-{mode}")
        for key, sample in parse_tracebacks(srv.log()[log_before:]):
            res.tracebacks[key] += 1
            res.samples.setdefault(key, sample)
        alive = srv.proc.poll() is None
    summary = {**res.summary(), "server_alive_at_end": alive, "schemathesis_exit_code": res.exit_code}
    _print(summary)
    keep = os.environ.get("GLASSFEED_FUZZ_REPORT_DIR")
    if keep:
        dest = Path(keep) / mode
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(tmp_path / f"st-{mode}", dest)
        (dest / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    assert res.cases > 0, "schemathesis generated no test case"
    assert alive, "the server died during the fuzz run"
    assert (summary["5xx"], summary["dropped_connections"], summary["schema_mismatches"]) == (0, 0, 0), (
        "see the distinct failures printed above"
    )
    assert summary["server_tracebacks"] == 0, "the server logged tracebacks (printed above)"
    assert summary["harness_errors"] == 0, "schemathesis itself failed on some cases (printed above)"
    assert res.exit_code == 0, f"schemathesis exited {res.exit_code} though nothing was parsed: see console.txt"
