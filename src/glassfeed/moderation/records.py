"""The moderation log's records as the lever reads them: which subject each names, and the fold that turns the log
into open cases, decisions, appeals, strikes and notes (``Ledger``).

Each record is a ``store.ModerationRecord``; ``body`` holds the kind's fields:

- ``notice`` (DSA Art. 16; ``actor`` None): category, explanation, location, notifier_name, notifier_email,
  good_faith, trusted, token_hash (the notifier's follow-up token, hashed);
- ``report`` (``actor``: the reporter's user id): category, text;
- ``automated`` (``actor`` "automated"): rule, action, surfaces, factor, category, reason, facts;
- ``decision`` (``actor``: the moderator): action, surfaces, factor, ground, grounds_explanation, category, facts,
  territorial_scope, cases, strike, source_type, automated_detection;
- ``appeal`` (``ref``: the decision or automated record; ``actor``: who appealed): by, text;
- ``appeal_decision`` (``ref``: the appeal; ``actor``: the moderator): outcome (upheld | reversed), explanation,
  decision;
- ``note`` (``actor``: the writer): text; ``note_rating`` (``ref``: the note; ``actor``: the rater): value.

The ledger is rebuilt from the whole log at start and extended record by record; it never reads the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from glassfeed.store import ModerationRecord

#: A case's or decision's subject: ("post", idx) or ("account", idx).
Subject = tuple[str, int]


def subject_of(rec: ModerationRecord) -> Subject | None:
    """What a notice, report, automated action or decision is about (None for other kinds)."""
    if rec.post is not None:
        return ("post", rec.post)
    if rec.user is not None:
        return ("account", rec.user)
    return None


@dataclass
class Ledger:
    """The moderation log folded into what the lever needs at hand (see the module docstring)."""

    records: dict[int, ModerationRecord] = field(default_factory=dict)
    last_seq: int = 0
    open_cases: dict[Subject, list[int]] = field(default_factory=dict)  # unresolved notices, reports, reviews
    reporters: dict[int, set[str]] = field(default_factory=dict)  # post -> who reported or notified it
    decisions: dict[Subject, list[int]] = field(default_factory=dict)
    automated: dict[int, dict[str, int]] = field(default_factory=dict)  # post -> rule -> the record logging it
    appeals: dict[int, list[int]] = field(default_factory=dict)  # decision -> its appeals
    open_appeals: set[int] = field(default_factory=set)
    appeal_outcome: dict[int, int] = field(default_factory=dict)  # appeal -> its appeal_decision
    reversed: set[int] = field(default_factory=set)  # decisions and automated actions reversed on appeal
    cleared: dict[int, int] = field(default_factory=dict)  # post -> the newest appeal_decision reversing a restriction
    strikes: dict[int, list[int]] = field(default_factory=dict)  # author -> decisions that count as strikes
    notes: dict[int, ModerationRecord] = field(default_factory=dict)
    ratings: dict[tuple[str, int], str] = field(default_factory=dict)  # (rater, note) -> answer (newest wins)
    ratings_seq: int = 0  # the newest note_rating or note folded (the notes model refits when it moves)

    def fold(self, rec: ModerationRecord) -> None:
        """Apply one record (records arrive in ``seq`` order; one already folded is ignored)."""
        if rec.seq <= self.last_seq:
            return
        self.last_seq = rec.seq
        self.records[rec.seq] = rec
        kind, subj = rec.kind, subject_of(rec)
        if kind in ("notice", "report") and subj is not None:
            self.open_cases.setdefault(subj, []).append(rec.seq)
            if rec.post is not None:
                self.reporters.setdefault(rec.post, set()).add(rec.actor or f"notice:{rec.seq}")
        elif kind == "automated" and rec.post is not None:
            rules = self.automated.setdefault(rec.post, {})
            if str(rec.body["rule"]) in rules:  # two workers starting at once may both log one firing
                return
            rules[str(rec.body["rule"])] = rec.seq
            if rec.body["action"] == "review":
                self.open_cases.setdefault(("post", rec.post), []).append(rec.seq)
        elif kind == "decision" and subj is not None:
            resolved = set(rec.body.get("cases", []))
            for key in list(self.open_cases):
                self.open_cases[key] = [c for c in self.open_cases[key] if c not in resolved]
                if not self.open_cases[key]:
                    del self.open_cases[key]
            self.decisions.setdefault(subj, []).append(rec.seq)
            if rec.body.get("strike") and rec.user is not None:
                self.strikes.setdefault(rec.user, []).append(rec.seq)
        elif kind == "appeal" and rec.ref is not None:
            self.appeals.setdefault(rec.ref, []).append(rec.seq)
            self.open_appeals.add(rec.seq)
        elif kind == "appeal_decision" and rec.ref is not None:
            self.open_appeals.discard(rec.ref)
            self.appeal_outcome[rec.ref] = rec.seq
            if rec.body["outcome"] == "reversed":
                target = self.records[int(rec.body["decision"])]
                self.reversed.add(target.seq)
                if target.post is not None:
                    self.cleared[target.post] = rec.seq
        elif kind == "note":
            self.notes[rec.seq] = rec
            self.ratings_seq = rec.seq
        elif kind == "note_rating" and rec.ref is not None and rec.actor is not None:
            self.ratings[(rec.actor, rec.ref)] = str(rec.body["value"])
            self.ratings_seq = rec.seq

    def effective_decision(self, post: int, author: int) -> ModerationRecord | None:
        """The decision that governs ``post`` now: the newest of the decisions on it or on its author's account,
        and of the appeal outcomes that cleared it, leaving out decisions reversed on appeal. An appeal_decision
        returned means "cleared: no restriction"."""
        seqs = [s for s in self.decisions.get(("post", post), []) if s not in self.reversed]
        seqs += [s for s in self.decisions.get(("account", author), []) if s not in self.reversed]
        if post in self.cleared:
            seqs.append(self.cleared[post])
        return self.records[max(seqs)] if seqs else None

    def strike_count(self, author: int, since: float) -> int:
        """Strikes against ``author`` decided at or after ``since`` and not reversed."""
        return sum(1 for s in self.strikes.get(author, []) if s not in self.reversed and self.records[s].ts >= since)
