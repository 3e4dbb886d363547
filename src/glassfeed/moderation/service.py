"""``ModerationService``: notices and reports in, rules and decisions applied, statements and appeals out.

One per process, beside the ``FeedService`` (the app wires them: ``glassfeed.api.app``). It writes only through
the ``Ingestor`` (``append_moderation``), reads the moderation log into its ``Ledger``, and installs each post's
outcome per surface in the serving state's ``visibility`` part, which the feed reads. Every worker rebuilds the
same outcome from the same log: at start, on every record it or another worker logs (``catch_up``), and whenever
the serving state is rebuilt (``install_into``).

Automated rules are logged (one ``automated`` record per post and rule, with its statement of reasons) by the
worker whose own write made the rule fire, and at start for firings nobody logged (posts an import wrote while no
service ran); a firing two workers log at once is read once (``Ledger.fold``, the transparency report). A post's
outcome is recomputed from the rules whenever its facts change, so a crash between a write and its log entry
delays the statement, never the action.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from glassfeed.domain import EventBatch, EventKind
from glassfeed.ingest import IngestError, Ingestor, ItemError
from glassfeed.moderation.notes import RATING_LABELS
from glassfeed.moderation.notes_service import fit_notes, note_views
from glassfeed.moderation.policy import ACTION_WORDS, ModerationPolicy, Rule, load_moderation_policy
from glassfeed.moderation.records import Ledger, Subject, subject_of
from glassfeed.moderation.report import transparency_report
from glassfeed.moderation.rules import PostFacts, fired
from glassfeed.settings import Settings, packaged_settings
from glassfeed.state import ServingState
from glassfeed.state.counters import C
from glassfeed.state.visibility import ACTION_CODE, ACTIONS, SURFACES
from glassfeed.store import ModerationRecord

DAY = 86400.0
#: Spaces as a JSON Schema pattern and Python's ``re`` agree on them (ASCII only: the two disagree on others).
_WS = " \t\n\r\f\v"
_WS_RE = r" \t\n\r\f\v"  # the same, as regex escapes
#: What an e-mail address looks like (the API's schema uses the same pattern).
EMAIL_PATTERN = rf"^[^@{_WS_RE}]{{1,64}}@[^@{_WS_RE}]{{1,255}}\.[^@{_WS_RE}]{{2,}}$"
EMAIL = re.compile(EMAIL_PATTERN)
#: Free text must hold something besides spaces (the API's schema uses the same pattern).
TEXT_PATTERN = rf"[^{_WS_RE}]"
#: The grounds of a decision (DSA Transparency Database: decision_ground).
GROUNDS: dict[str, str] = {
    "illegal": "DECISION_GROUND_ILLEGAL_CONTENT",
    "incompatible": "DECISION_GROUND_INCOMPATIBLE_CONTENT",
}
#: The Transparency Database's visibility decision for each action.
DECISION_VISIBILITY: dict[str, str] = {
    "none": "DECISION_VISIBILITY_NONE",
    "label": "DECISION_VISIBILITY_CONTENT_LABELLED",
    "downrank": "DECISION_VISIBILITY_CONTENT_DEMOTED",
    "followers_only": "DECISION_VISIBILITY_CONTENT_AGE_RESTRICTED_OR_OTHER_RESTRICTION",
    "interstitial": "DECISION_VISIBILITY_CONTENT_INTERACTION_RESTRICTED",
    "drop": "DECISION_VISIBILITY_CONTENT_REMOVED",
}
APPEAL_OUTCOMES = ("upheld", "reversed")
_NOTICE_FIELDS = ("location", "category", "explanation", "notifier_name", "notifier_email", "good_faith")
Outcome = dict[str, tuple[str, float, list[dict[str, Any]]]]


def attach_classifiers(ingestor: Ingestor, folder: str | Path) -> list[str]:
    """Score every new post's text at ingest with the classifiers trained into ``folder`` (``glassfeed moderation
    train-classifiers``); returns their names, or ``[]`` when the folder holds none (posts are then not scored,
    and rules on scores never fire)."""
    from glassfeed.moderation.classifiers import ClassifierSet  # scikit-learn loads only when there are models

    folder = Path(folder)
    if not (folder / "classifiers.json").is_file():
        return []
    classifiers = ClassifierSet.load(folder)
    ingestor.text_scorer = classifiers.score
    return classifiers.names


class ModerationError(IngestError):
    """A refused moderation request: one field, its reason, and the status (4xx) the API answers with."""

    def __init__(self, field: str, reason: str, status: int = 422) -> None:
        super().__init__([ItemError(0, field, reason)], status=status)


def hash_secret(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(body: Mapping[str, Any], name: str, limit: int, required: bool = True) -> str:
    v = body.get(name)
    if v is None or (isinstance(v, str) and not re.search(TEXT_PATTERN, v)):
        if required:
            raise ModerationError(name, "is required")
        return ""
    if not isinstance(v, str):
        raise ModerationError(name, "must be a string")
    if len(v) > limit:
        raise ModerationError(name, f"too long: {len(v)} > {limit} characters")
    return v.strip(_WS)


class ModerationService:
    """The moderation lever for one store (see the module docstring). Thread-safe: it shares the feed's
    ``state_lock`` (one lock, so the two services can call each other in either order)."""

    def __init__(
        self,
        ingestor: Ingestor,
        settings: Settings | None = None,
        *,
        state_of: Callable[[], ServingState],
        state_lock: threading.RLock | None = None,
        policy: ModerationPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        settings = settings or packaged_settings()
        self.settings = settings.moderation
        self.ingestor = ingestor
        self.store = ingestor.store
        self.policy = policy or load_moderation_policy(self.settings.policy or None)
        self.state_of = state_of
        self.state_lock = state_lock or threading.RLock()
        self.clock = clock
        # one lock with the serving state's: the feed's tail and state rebuilds call into this service holding
        # theirs, and this service writes into the state holding its own; two locks would deadlock
        self.lock = self.state_lock
        self.ledger = Ledger()
        self.scores: dict[str, np.ndarray] = {}  # classifier -> score by post idx (NaN: not scored)
        self._scored_to = 0  # the highest post idx whose scores were read
        self.outcomes: dict[int, Outcome] = {}  # posts with an outcome other than "none" everywhere
        self._notes_fit_seq = -1
        self._notes_shown: dict[int, list[dict[str, Any]]] = {}
        self.notes_model: Any = None  # the bridging model of the last fit (glassfeed.moderation.notes)
        ingestor.moderation_listeners.append(self._on_records)  # before the first evaluation, which may log
        ingestor.entity_listeners.append(self._on_entities)
        with self.lock:
            for rec in self.store.moderation_log():
                self.ledger.fold(rec)
            self._read_scores()
            st = self.state_of()
            # firings nobody logged yet (posts written while no service ran, e.g. by an import) are logged now
            self._evaluate(np.arange(1, st.posts.n + 1, dtype=np.int64), log=True)
            self.install_into(st)

    # ------------------------------------------------------------------ keeping current
    def install_into(self, state: ServingState) -> None:
        """Install every post's outcome and the shown notes into ``state`` (a freshly built serving state)."""
        with self.lock:
            for post, outcome in self.outcomes.items():
                state.visibility.install(post, outcome)
            state.visibility.set_notes(self._notes_shown)

    def catch_up(self) -> None:
        """Fold in what other workers logged since (records, and the scores of posts they created)."""
        with self.lock:
            new = self.store.moderation_log(self.ledger.last_seq)
            touched = self._fold(new)
            touched |= set(self._read_scores())
            if touched:
                self._evaluate(np.array(sorted(touched), np.int64), log=False)
            self.refresh_notes()

    def _on_records(self, records: list[ModerationRecord]) -> None:
        """This process logged ``records`` (the Ingestor's moderation listener). The posts they concern are
        evaluated with logging even when the tail (``catch_up``, which never logs: the writer's process does) folded
        them first, between their commit and this call; otherwise a rule they set off would act without its
        ``automated`` record."""
        with self.lock:
            missed = self.store.moderation_log(self.ledger.last_seq, limit=None)  # in order, others' included
            own = {r.seq for r in records}
            touched = self._fold([r for r in missed if r.seq <= max(own)])
            touched |= {t.post for r in records if (t := self._target(r)) is not None and t.post is not None}
            if touched:
                self._evaluate(np.array(sorted(touched), np.int64), log=True)

    def _target(self, rec: ModerationRecord) -> ModerationRecord | None:
        """The folded record whose subject ``rec`` acts on: ``rec`` itself, the decision an appeal decision rules
        on, or None for community notes and their ratings (they change no outcome)."""
        if rec.kind in ("note", "note_rating"):
            return None
        return self.ledger.records[int(rec.body["decision"])] if rec.kind == "appeal_decision" else rec

    def _on_entities(self, kind: str, idxs: list[int]) -> None:
        if kind == "posts" and idxs:  # this process created them (their scores were written with them)
            with self.lock:
                self._read_scores()
                self._evaluate(np.asarray(idxs, np.int64), log=True)

    def _fold(self, records: Iterable[ModerationRecord]) -> set[int]:
        """Fold records into the ledger; returns the posts whose outcome may have changed."""
        st = self.state_of()
        touched: set[int] = set()
        for rec in records:
            before = set(self.ledger.strikes.get(rec.user, [])) if rec.user is not None else set()
            self.ledger.fold(rec)
            target = self._target(rec)
            if target is None:
                continue
            if target.post is not None:
                touched.add(target.post)
            author = target.user
            account_wide = target.post is None or (
                author is not None and set(self.ledger.strikes.get(author, [])) != before
            )
            if rec.kind == "appeal_decision" and author is not None and self.ledger.strikes.get(author):
                account_wide = True  # a reversed removal takes its strike back
            if account_wide and author is not None:
                touched.update(st.posts.posts_of(author))
        return touched

    def _read_scores(self) -> list[int]:
        """Read the classifier scores of posts above ``_scored_to``; returns the posts read."""
        got = self.store.post_scores(since_idx=self._scored_to)
        posts: set[int] = set()
        for name, (idx, values) in got.items():
            arr = self.scores.get(name, np.zeros(0, np.float32))
            if len(idx) and idx.max() >= len(arr):
                grown = np.full(max(int(idx.max()) + 1, 2 * len(arr)), np.nan, np.float32)
                grown[: len(arr)] = arr
                arr = grown
            arr[idx] = values
            self.scores[name] = arr
            posts.update(idx.tolist())
        if posts:
            self._scored_to = max(posts)
        return sorted(posts)

    # ------------------------------------------------------------------ rules and outcomes
    def facts(self, posts: np.ndarray) -> PostFacts:
        """What the rules read about ``posts`` now."""
        st = self.state_of()
        now = self.clock()
        authors = st.posts.author(posts)
        reports = np.array([len(self.ledger.reporters.get(int(p), ())) for p in posts.tolist()], np.float64)
        impressions = st.counters.totals(posts)[:, C["impression"]].astype(np.float64)
        since = now - self.policy.strike_window_days * DAY
        strikes = np.array([self.ledger.strike_count(int(a), since) for a in authors.tolist()], np.float64)
        scores = {}
        for name, arr in self.scores.items():
            inside = posts < len(arr)
            scores[name] = np.where(inside, arr[np.minimum(posts, max(len(arr) - 1, 0))], np.nan).astype(np.float64)
        return PostFacts(
            posts=posts,
            reports=reports,
            report_rate=reports / np.maximum(impressions, 1.0),
            account_age_days=(now - st.users.created(authors)) / DAY,
            strikes=strikes,
            labels=[st.posts.labels_of(int(p)) for p in posts.tolist()],
            scores=scores,
        )

    def _evaluate(self, posts: np.ndarray, log: bool) -> None:
        """Recompute and install the outcome of ``posts``; with ``log``, log each rule that newly fired."""
        st = self.state_of()
        posts = posts[(posts >= 1) & (posts <= st.posts.n)]
        if not len(posts):
            return
        facts = self.facts(posts)
        hits = fired(self.policy, facts)
        authors = st.posts.author(posts).tolist()
        new_firings: list[ModerationRecord] = []
        changed: dict[int, Outcome] = {}
        for i, p in enumerate(posts.tolist()):
            decision = self.ledger.effective_decision(p, authors[i])
            rules = [self.policy.rules[j] for j in np.flatnonzero(hits[i]).tolist()]
            if log:
                logged = self.ledger.automated.get(p, {})
                for rule in rules:
                    if rule.name not in logged:
                        new_firings.append(self._firing(p, authors[i], rule, facts, i))
            outcome = self._outcome(p, decision, rules)
            if outcome or p in self.outcomes:
                changed[p] = outcome
        with self.state_lock:
            for p, outcome in changed.items():
                st.visibility.install(p, outcome)
                if outcome:
                    self.outcomes[p] = outcome
                else:
                    self.outcomes.pop(p, None)
        if new_firings:
            self.ingestor.append_moderation(new_firings)

    def _outcome(self, post: int, decision: ModerationRecord | None, rules: list[Rule]) -> Outcome:
        """Per surface: the action, factor and reasons that apply. A moderator's decision (or an appeal that
        cleared the post) governs alone; otherwise the most severe action of the rules that fire, the smallest
        downrank factor among them."""
        if decision is not None:
            if decision.kind == "appeal_decision":
                return {}
            b = decision.body
            if b["action"] == "none":
                return {}
            reason = {
                "by": "decision",
                "statement": decision.seq,
                "category": b["category"],
                "reason": f"a moderator decided it is {ACTION_WORDS[b['action']]}: {b['grounds_explanation']}",
            }
            return {s: (b["action"], float(b.get("factor", 1.0)), [reason]) for s in b["surfaces"]}
        out: Outcome = {}
        for rule in rules:
            if rule.action == "review":
                continue
            logged = self.ledger.automated.get(post, {}).get(rule.name)
            reason = {"by": "rule", "rule": rule.name, "statement": logged, "category": rule.category}
            reason["reason"] = rule.reason
            for s in rule.surfaces:
                action, factor, reasons = out.get(s, ("none", 1.0, []))
                if ACTION_CODE[rule.action] > ACTION_CODE[action]:
                    action = rule.action
                if rule.action == "downrank":
                    factor = min(factor, rule.factor)
                out[s] = (action, factor, [*reasons, reason])
        return out

    def _firing(self, post: int, author: int, rule: Rule, facts: PostFacts, i: int) -> ModerationRecord:
        seen = {}
        for c in rule.when:
            v = c.value if c.field == "label" else float(facts.column(c.field)[i])
            seen[c.field] = v
        body = {
            "rule": rule.name,
            "action": rule.action,
            "surfaces": list(rule.surfaces),
            "factor": rule.factor,
            "category": rule.category,
            "reason": rule.reason,
            "facts": seen,
        }
        return ModerationRecord(0, "automated", self.clock(), post, author, "automated", None, body)

    # ------------------------------------------------------------------ notices and reports
    def _category(self, body: Mapping[str, Any], illegal_only: bool = False) -> str:
        cat = body.get("category")
        if not isinstance(cat, str) or cat not in self.policy.categories:
            raise ModerationError("category", f"must be one of: {', '.join(self.policy.categories)}")
        if illegal_only and not self.policy.categories[cat].illegal:
            legal = [k for k, c in self.policy.categories.items() if c.illegal]
            raise ModerationError(
                "category",
                f"a notice is about illegal content: one of {', '.join(legal)} (report what is against the terms "
                "with POST /v1/reports)",
            )
        return cat

    def _post_at(self, location: str) -> int:
        """The post at a notice's exact location: its id, or a URL ending with ``/<id>``."""
        idx = self.store.post_idx(location)
        if idx is None and "/" in location:
            idx = self.store.post_idx(location.rstrip("/").rsplit("/", 1)[-1])
        if idx is None:
            raise ModerationError("location", "no post at this location (give the post's id or its URL)", 404)
        return idx

    def file_notice(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A DSA Art. 16 notice of illegal content: every field of Art. 16(2) is required (a 4xx names each one
        missing). Returns the notice's id and a follow-up token (shown once) that lets the notifier read the
        decision's statement of reasons and appeal it."""
        pol = self.policy
        if unknown := set(body) - set(_NOTICE_FIELDS):
            raise ModerationError(sorted(unknown)[0], "unknown field")
        missing = [f for f in _NOTICE_FIELDS if body.get(f) in (None, "")]
        if missing:
            raise IngestError([ItemError(0, f, "is required (DSA Art. 16(2))") for f in missing])
        category = self._category(body, illegal_only=True)
        explanation = _text(body, "explanation", pol.max_text_chars)
        location = _text(body, "location", pol.max_text_chars)
        name = _text(body, "notifier_name", pol.max_name_chars)
        email = _text(body, "notifier_email", pol.max_name_chars)
        if not EMAIL.match(email):
            raise ModerationError("notifier_email", "must be an e-mail address")
        if body.get("good_faith") is not True:
            raise ModerationError(
                "good_faith", "must be true: a statement that the notice is accurate and complete in good faith"
            )
        post = self._post_at(location)
        token = secrets.token_urlsafe(24)
        author = self._author(post)
        rec = ModerationRecord(
            0,
            "notice",
            self.clock(),
            post,
            author,
            None,
            None,
            {
                "category": category,
                "explanation": explanation,
                "location": location,
                "notifier_name": name,
                "notifier_email": email.lower(),
                "good_faith": True,
                "trusted": email.lower() in pol.trusted_flaggers,
                "token_hash": hash_secret(token),
            },
        )
        (seq,), _ = self.ingestor.append_moderation([rec])
        return {"notice": seq, "token": token, "trusted_flagger": rec.body["trusted"], "status": "received"}

    def report(self, reporter: int, body: Mapping[str, Any]) -> dict[str, Any]:
        """A person's report of a post or an account against the terms (or the law). The report is also a
        ``report`` event, in the same transaction: the reporter stops seeing the post at once, and the report
        head learns from it."""
        if unknown := set(body) - {"post", "account", "category", "text"}:
            raise ModerationError(sorted(unknown)[0], "unknown field")
        category = self._category(body)
        text = _text(body, "text", self.policy.max_text_chars, required=False)
        post_id, account_id = body.get("post"), body.get("account")
        if (post_id is None) == (account_id is None):
            raise ModerationError("post", "give exactly one of post or account")
        post = target = None
        if post_id is not None:
            post = self.store.post_idx(post_id) if isinstance(post_id, str) else None
            if post is None:
                raise ModerationError("post", f"unknown post {post_id!r}", 404)
            subject_user = self._author(post)
        else:
            target = self.store.user_idx(account_id) if isinstance(account_id, str) else None
            if target is None:
                raise ModerationError("account", f"unknown account {account_id!r}", 404)
            subject_user = target
        now = self.clock()
        reporter_id = self._user_id(reporter)
        rec = ModerationRecord(
            0, "report", now, post, subject_user, reporter_id, None, {"category": category, "text": text}
        )
        event = EventBatch.from_columns(
            kind=[int(EventKind.REPORT)],
            user=[reporter],
            ts=[now],
            post=[post if post is not None else -1],
            target_user=[target if target is not None else -1],
        )
        (seq,), _ = self.ingestor.append_moderation([rec], events=event)
        return {"report": seq, "status": "received"}

    def _notice(self, notice: int, token: str) -> ModerationRecord:
        rec = self.ledger.records.get(notice)
        if rec is None or rec.kind != "notice":
            raise ModerationError("notice", f"no notice {notice}", 404)
        if not secrets.compare_digest(rec.body["token_hash"], hash_secret(token)):
            raise ModerationError("notice", "this token is not the notice's", 403)
        return rec

    def _resolving(self, case: int) -> list[int]:
        return [s for s, r in self.ledger.records.items() if r.kind == "decision" and case in r.body.get("cases", [])]

    def notice_status(self, notice: int, token: str) -> dict[str, Any]:
        """A notice's status for its notifier (Art. 16(5): they are told the decision and the redress open)."""
        with self.lock:
            rec = self._notice(notice, token)
            decided = self._resolving(notice)
        return {
            "notice": notice,
            "received_at": _iso(rec.ts),
            "category": rec.body["category"],
            "status": "decided" if decided else "open",
            "statements": [self.statement(s) for s in decided],
        }

    def notice_decision(self, notice: int, token: str) -> int:
        """The newest decision that resolved the notice (what its notifier can appeal)."""
        with self.lock:
            self._notice(notice, token)
            decided = self._resolving(notice)
        if not decided:
            raise ModerationError("notice", "no decision on this notice yet", 409)
        return max(decided)

    # ------------------------------------------------------------------ the review queue
    def queue(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Open cases, one per subject, ordered: trusted flaggers' first (``[queue] trusted_first``), then by
        priority = severity x expected reach, then oldest first."""
        st = self.state_of()
        items = []
        with self.lock:
            for subj, seqs in self.ledger.open_cases.items():
                recs = [self.ledger.records[s] for s in seqs]
                items.append(self._case(st, subj, recs))
        key: Callable[[dict[str, Any]], tuple[Any, ...]] = lambda c: (  # noqa: E731
            -(c["trusted_flagger"] and self.policy.trusted_first),
            -c["priority"],
            c["opened_at"],
        )
        items.sort(key=key)
        return items[: limit or self.settings.queue_limit]

    def _case(self, st: ServingState, subj: Subject, recs: list[ModerationRecord]) -> dict[str, Any]:
        cats = self.policy.categories
        kind, idx = subj
        severity = max(cats[r.body["category"]].severity for r in recs)
        scores = {}
        if kind == "post":
            for name, arr in self.scores.items():
                if idx < len(arr) and not np.isnan(arr[idx]):
                    scores[name] = float(arr[idx])
            severity = max([severity, *scores.values()])
            author = int(st.posts.author(np.array([idx]))[0])
            impressions = float(st.counters.totals(np.array([idx]))[0, C["impression"]])
        else:
            author, impressions = idx, 0.0
        followers = float(st.graph.follower_count(np.array([author]))[0])
        reach = impressions + self.policy.reach_per_follower * followers
        return {
            "subject": {"type": kind, "id": self._id_of(kind, idx)},
            "author": self._user_id(author),
            "text": st.posts.text_of(idx) if kind == "post" else None,
            "cases": [self._case_view(r) for r in recs],
            "categories": sorted({r.body["category"] for r in recs}),
            "scores": scores,
            "severity": severity,
            "expected_reach": reach,
            "priority": severity * reach,
            "trusted_flagger": any(r.body.get("trusted") for r in recs),
            "opened_at": min(r.ts for r in recs),
            "visibility": self.outcome_view(idx) if kind == "post" else {},
        }

    def _case_view(self, r: ModerationRecord) -> dict[str, Any]:
        b = r.body
        view = {"id": r.seq, "kind": r.kind, "at": r.ts, "category": b["category"]}
        if r.kind == "notice":
            view |= {"explanation": b["explanation"], "notifier": b["notifier_name"], "trusted": b["trusted"]}
        elif r.kind == "report":
            view |= {"reporter": r.actor, "text": b["text"]}
        else:
            view |= {"rule": b["rule"], "reason": b["reason"]}
        return view

    def _loaded(self, post: int) -> ServingState:
        """The serving state, holding ``post`` (posts another worker created are read in first)."""
        st = self.state_of()
        if post > st.posts.n:
            with self.state_lock:
                st.add_users(self.store.load_users(since_idx=st.users.n))
                st.add_posts_from_store(self.store)
        return st

    def _author(self, post: int) -> int:
        return self._loaded(post).posts.author_of(post)

    def _post_id(self, post: int) -> str | None:
        return self._loaded(post).posts.id_of(post)

    def _user_id(self, user: int) -> str | None:
        st = self.state_of()
        if user > st.users.n:
            with self.state_lock:
                st.add_users(self.store.load_users(since_idx=st.users.n))
        return st.users.id_of(user)

    def _id_of(self, kind: str, idx: int) -> str | None:
        return self._post_id(idx) if kind == "post" else self._user_id(idx)

    def outcome_view(self, post: int) -> dict[str, Any]:
        with self.lock:
            return {s: {"action": a, "factor": f, "reasons": r} for s, (a, f, r) in self.outcomes.get(post, {}).items()}

    # ------------------------------------------------------------------ decisions
    def decide(self, moderator: str, decisions: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Decide one or more subjects (bulk: all or none), each with its statement of reasons. Returns the
        statements."""
        if not decisions:
            raise ModerationError("decisions", "at least one decision")
        recs = []
        with self.lock:
            for i, body in enumerate(decisions):
                try:
                    recs.append(self._decision(moderator, body))
                except IngestError as e:
                    raise IngestError([ItemError(i, x.field, x.reason) for x in e.errors], e.status) from None
            seqs, _ = self.ingestor.append_moderation(recs)
        return [self.statement(s) for s in seqs]

    def _decision(self, moderator: str, body: Mapping[str, Any]) -> ModerationRecord:
        allowed = {"post", "account", "action", "surfaces", "factor", "ground", "grounds_explanation", "category"}
        allowed |= {"facts", "territorial_scope", "cases"}
        if unknown := set(body) - allowed:
            raise ModerationError(sorted(unknown)[0], "unknown field")
        post_id, account_id = body.get("post"), body.get("account")
        if (post_id is None) == (account_id is None):
            raise ModerationError("post", "give exactly one of post or account")
        if post_id is not None:
            post = self.store.post_idx(post_id) if isinstance(post_id, str) else None
            if post is None:
                raise ModerationError("post", f"unknown post {post_id!r}", 404)
            subj: Subject = ("post", post)
            user = self._author(post)
        else:
            account = self.store.user_idx(account_id) if isinstance(account_id, str) else None
            if account is None:
                raise ModerationError("account", f"unknown account {account_id!r}", 404)
            subj, post, user = ("account", account), None, account
        action = body.get("action")
        if action not in ACTIONS:
            raise ModerationError("action", f"must be one of {', '.join(ACTIONS)}")
        surfaces = body.get("surfaces", list(SURFACES))
        if not isinstance(surfaces, list) or not surfaces or any(s not in SURFACES for s in surfaces):
            raise ModerationError("surfaces", f"a non-empty list of: {', '.join(SURFACES)}")
        factor = body.get("factor", 1.0)
        if action == "downrank" and not (isinstance(factor, int | float) and 0 < factor < 1):
            raise ModerationError("factor", "a downrank needs a factor in (0, 1)")
        ground = body.get("ground")
        if ground not in GROUNDS:
            raise ModerationError("ground", f"must be one of {', '.join(GROUNDS)}")
        category = self._category(body, illegal_only=ground == "illegal")
        grounds = _text(body, "grounds_explanation", self.policy.max_text_chars)
        facts = _text(body, "facts", self.policy.max_text_chars)
        scope = body.get("territorial_scope", ["EU"])
        if not isinstance(scope, list) or not scope or not all(isinstance(c, str) and 2 <= len(c) <= 3 for c in scope):
            raise ModerationError("territorial_scope", "a non-empty list of country codes (ISO 3166) or EU / EEA")
        open_cases = self.ledger.open_cases.get(subj, [])
        cases = body.get("cases", open_cases)
        if not isinstance(cases, list) or any(c not in open_cases for c in cases):
            raise ModerationError("cases", f"must be among the subject's open cases: {open_cases}")
        sources = [self.ledger.records[c] for c in cases]
        source_type = (
            "SOURCE_TRUSTED_FLAGGER"
            if any(r.body.get("trusted") for r in sources)
            else "SOURCE_ARTICLE_16"
            if any(r.kind == "notice" for r in sources)
            else "SOURCE_TYPE_OTHER_NOTIFICATION"
            if any(r.kind == "report" for r in sources)
            else "SOURCE_VOLUNTARY"
        )
        out = {
            "action": action,
            "surfaces": surfaces,
            "factor": float(factor) if action == "downrank" else 1.0,
            "ground": ground,
            "grounds_explanation": grounds,
            "category": category,
            "facts": facts,
            "territorial_scope": [c.upper() for c in scope],
            "cases": cases,
            "strike": action == "drop",
            "source_type": source_type,
            "automated_detection": any(r.kind == "automated" for r in sources),
        }
        return ModerationRecord(0, "decision", self.clock(), post, user, moderator, None, out)

    # ------------------------------------------------------------------ statements of reasons
    def statement(self, seq: int) -> dict[str, Any]:
        """The statement of reasons (DSA Art. 17, in the DSA Transparency Database's fields) of a decision or an
        automated action, with its appeals and how to seek redress."""
        rec = self.ledger.records.get(seq)
        if rec is None or rec.kind not in ("decision", "automated"):
            raise ModerationError("statement", f"no statement {seq}", 404)
        b = rec.body
        automated = rec.kind == "automated"
        ground = "incompatible" if automated else b["ground"]
        explanation = b["reason"] if automated else b["grounds_explanation"]
        deadline = rec.ts + self.policy.appeal_window_days * DAY
        appeals = [self._appeal_view(a) for a in self.ledger.appeals.get(seq, [])]
        kind, idx = subject_of(rec) or ("post", 0)
        out = {
            "id": seq,
            "uuid": f"glassfeed-sor-{seq}",
            "subject": {"type": kind, "id": self._id_of(kind, idx)},
            "author": self._user_id(rec.user) if rec.user is not None else None,
            "decision_visibility": [DECISION_VISIBILITY[b["action"]]] if b["action"] in DECISION_VISIBILITY else [],
            "action": b["action"],
            "action_words": ACTION_WORDS[b["action"]],
            "surfaces": b["surfaces"],
            "factor": b.get("factor", 1.0),
            "decision_ground": GROUNDS[ground],
            "illegal_content_legal_ground": explanation if ground == "illegal" else None,
            "illegal_content_explanation": b.get("facts") if ground == "illegal" else None,
            "incompatible_content_ground": explanation if ground == "incompatible" else None,
            "incompatible_content_explanation": (b["reason"] if automated else b["facts"])
            if ground == "incompatible"
            else None,
            "category": b["category"],
            "category_label": self.policy.categories[b["category"]].label,
            "content_type": ["CONTENT_TYPE_TEXT"],
            "decision_facts": b.get("facts") if not automated else f"rule {b['rule']}: {b['reason']} ({b['facts']})",
            "source_type": "SOURCE_VOLUNTARY" if automated else b["source_type"],
            "automated_detection": True if automated else bool(b["automated_detection"]),
            "automated_decision": "AUTOMATED_DECISION_FULLY" if automated else "AUTOMATED_DECISION_NOT_AUTOMATED",
            "territorial_scope": b.get("territorial_scope", ["EU"]),
            "application_date": _iso(rec.ts),
            "decided_by": "automated rule" if automated else "a moderator",
            "reversed": seq in self.ledger.reversed,
            "appeals": appeals,
            "redress": {
                "internal_complaint": f"appeal until {_iso(deadline)}: the author with POST "
                f"/v1/users/<you>/statements/{seq}/appeals, a notifier with POST /v1/notices/<notice>/appeals",
                "appeal_deadline": _iso(deadline),
                "out_of_court_settlement": "a certified out-of-court dispute settlement body (DSA Art. 21)",
                "judicial_redress": "the courts of your member state",
            },
        }
        if kind == "post":
            out["content_date"] = _iso(float(self.state_of().posts.created(np.array([idx]))[0]))
        return out

    def statements_about(self, user: int) -> list[dict[str, Any]]:
        """Every statement of reasons about a person's posts or account, newest first."""
        with self.lock:
            seqs = [
                s
                for s, r in self.ledger.records.items()
                if r.kind in ("decision", "automated") and r.user == user and r.body["action"] != "review"
            ]
        return [self.statement(s) for s in sorted(seqs, reverse=True)]

    def can_read(self, seq: int, *, user: int | None = None, notice_token: str | None = None) -> bool:
        """Whether a person (the subject's author, or someone whose report it resolved) or a notifier (the token
        their notice returned) may read the statement ``seq``."""
        rec = self.ledger.records.get(seq)
        if rec is None:
            return False
        if user is not None and rec.user == user:
            return True
        cases = [self.ledger.records[c] for c in rec.body.get("cases", [])]
        if user is not None:
            uid = self._user_id(user)
            if any(c.kind == "report" and c.actor == uid for c in cases):
                return True
        if notice_token is not None:
            h = hash_secret(notice_token)
            return any(c.kind == "notice" and secrets.compare_digest(c.body["token_hash"], h) for c in cases)
        return False

    # ------------------------------------------------------------------ appeals (DSA Art. 20)
    def appeal(
        self, seq: int, text: Any, *, user: int | None = None, notice_token: str | None = None
    ) -> dict[str, Any]:
        """Contest the decision ``seq`` (by its author, a reporter or notifier whose case it resolved), within the
        policy's window; one open appeal per decision."""
        with self.lock:
            rec = self.ledger.records.get(seq)
            if rec is None or rec.kind not in ("decision", "automated"):
                raise ModerationError("statement", f"no statement {seq}", 404)
            if not self.can_read(seq, user=user, notice_token=notice_token):
                raise ModerationError(
                    "statement", "only the author, or whoever notified or reported it, can appeal", 403
                )
            now = self.clock()
            if now > rec.ts + self.policy.appeal_window_days * DAY:
                raise ModerationError(
                    "statement",
                    f"the appeal window closed on {_iso(rec.ts + self.policy.appeal_window_days * DAY)}",
                    409,
                )
            if any(a in self.ledger.open_appeals for a in self.ledger.appeals.get(seq, [])):
                raise ModerationError("statement", "this decision already has an open appeal", 409)
            body = {"text": _text({"text": text}, "text", self.policy.max_text_chars)}
            by = "author" if user is not None and rec.user == user else "notifier" if notice_token else "reporter"
            body["by"] = by
            actor = self._user_id(user) if user is not None else "notifier"
            appeal = ModerationRecord(0, "appeal", now, rec.post, rec.user, actor, seq, body)
            (a_seq,), _ = self.ingestor.append_moderation([appeal])
        return self._appeal_view(a_seq)

    def appeals_queue(self, moderator: str) -> list[dict[str, Any]]:
        """Open appeals, oldest first, each saying whether ``moderator`` may decide it (not its decider)."""
        with self.lock:
            out = []
            for a in sorted(self.ledger.open_appeals):
                view = self._appeal_view(a)
                view["statement"] = self.statement(int(self.ledger.records[a].ref or 0))
                view["you_may_decide"] = self._decider(a) != moderator
                out.append(view)
        return out

    def _decider(self, appeal: int) -> str | None:
        decision = self.ledger.records[int(self.ledger.records[appeal].ref or 0)]
        return decision.actor if decision.kind == "decision" else None

    def decide_appeal(self, moderator: str, appeal: int, body: Mapping[str, Any]) -> dict[str, Any]:
        """Uphold or reverse the decision an appeal contests; another moderator than the one who decided it must
        (Art. 20(6): not solely automated, and here never the same person). A reversal restores the post's reach
        and takes back a strike."""
        with self.lock:
            rec = self.ledger.records.get(appeal)
            if rec is None or rec.kind != "appeal":
                raise ModerationError("appeal", f"no appeal {appeal}", 404)
            if appeal not in self.ledger.open_appeals:
                raise ModerationError("appeal", "this appeal is already decided", 409)
            if self._decider(appeal) == moderator:
                raise ModerationError(
                    "appeal", "a different moderator than the one who decided must decide the appeal", 403
                )
            if unknown := set(body) - {"outcome", "explanation"}:
                raise ModerationError(sorted(unknown)[0], "unknown field")
            outcome = body.get("outcome")
            if outcome not in APPEAL_OUTCOMES:
                raise ModerationError("outcome", f"must be one of {', '.join(APPEAL_OUTCOMES)}")
            explanation = _text(body, "explanation", self.policy.max_text_chars)
            out = ModerationRecord(
                0,
                "appeal_decision",
                self.clock(),
                rec.post,
                rec.user,
                moderator,
                appeal,
                {"outcome": outcome, "explanation": explanation, "decision": rec.ref},
            )
            self.ingestor.append_moderation([out])
            return self._appeal_view(appeal)

    def _appeal_view(self, a: int) -> dict[str, Any]:
        rec = self.ledger.records[a]
        view: dict[str, Any] = {
            "id": a,
            "statement": rec.ref,
            "by": rec.body["by"],
            "text": rec.body["text"],
            "filed_at": _iso(rec.ts),
            "status": "open",
        }
        done = self.ledger.appeal_outcome.get(a)
        if done is not None:
            d = self.ledger.records[done]
            view |= {"status": d.body["outcome"], "explanation": d.body["explanation"], "decided_at": _iso(d.ts)}
        return view

    # ------------------------------------------------------------------ the audit log
    def log(self, since: int = 0, limit: int = 200) -> list[dict[str, Any]]:
        """Every moderation record after ``since`` (oldest first): the audit log of every action. Notifiers'
        e-mail addresses and token hashes are left out."""
        rows = self.store.moderation_log(since, limit=limit)
        out = []
        for r in rows:
            body = {k: v for k, v in r.body.items() if k not in ("notifier_email", "token_hash")}
            kind, idx = subject_of(r) or ("", 0)
            out.append(
                {
                    "seq": r.seq,
                    "kind": r.kind,
                    "at": _iso(r.ts),
                    "subject": {"type": kind, "id": self._id_of(kind, idx)} if kind else None,
                    "actor": r.actor,
                    "ref": r.ref,
                    "body": body,
                }
            )
        return out

    # ------------------------------------------------------------------ community notes
    def add_note(self, writer: int, post_id: Any, text: Any) -> dict[str, Any]:
        post = self.store.post_idx(post_id) if isinstance(post_id, str) else None
        if post is None:
            raise ModerationError("post", f"unknown post {post_id!r}", 404)
        body = {"text": _text({"text": text}, "text", self.policy.max_text_chars)}
        rec = ModerationRecord(0, "note", self.clock(), post, self._author(post), self._user_id(writer), None, body)
        (seq,), _ = self.ingestor.append_moderation([rec])
        return {"note": seq, "post": post_id, "status": "needs_more_ratings"}

    def rate_note(self, rater: int, note: int, value: Any) -> dict[str, Any]:
        if value not in RATING_LABELS:
            raise ModerationError("value", f"must be one of {', '.join(RATING_LABELS)}")
        with self.lock:
            rec = self.ledger.notes.get(note)
        if rec is None:
            raise ModerationError("note", f"no note {note}", 404)
        rater_id = self._user_id(rater)
        if rater_id == rec.actor:
            raise ModerationError("note", "you cannot rate your own note", 403)
        r = ModerationRecord(0, "note_rating", self.clock(), rec.post, rec.user, rater_id, note, {"value": value})
        self.ingestor.append_moderation([r])
        return {"note": note, "value": value}

    def refresh_notes(self) -> bool:
        """Refit the bridging model when notes or ratings arrived since the last fit, and install the notes it
        shows. Returns whether it refit."""
        with self.lock:
            if self.ledger.ratings_seq == self._notes_fit_seq:
                return False
            self._notes_fit_seq = self.ledger.ratings_seq
            self.notes_model, shown = fit_notes(self.ledger, self._post_id)
            self._notes_shown = shown
        with self.state_lock:
            self.state_of().visibility.set_notes(shown)
        return True

    def notes_for(self, post_id: Any) -> list[dict[str, Any]]:
        post = self.store.post_idx(post_id) if isinstance(post_id, str) else None
        if post is None:
            raise ModerationError("post", f"unknown post {post_id!r}", 404)
        self.refresh_notes()
        with self.lock:
            return note_views(self.ledger, self.notes_model, post)

    # ------------------------------------------------------------------ transparency (Art. 15/24)
    def transparency(self, t_from: float, t_to: float) -> dict[str, Any]:
        """The transparency report's counts for ``[t_from, t_to)`` (``glassfeed.moderation.report``)."""
        if not t_from < t_to:
            raise ModerationError("from", "must be before to")
        return transparency_report(self.store.moderation_log(), t_from, t_to)
