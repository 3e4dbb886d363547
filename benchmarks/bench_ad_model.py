"""The ad ranker's model (``glassfeed.ads.model``) on a synthetic ad log whose truth is known: holdout quality beside
the empirical-Bayes baseline (each campaign's smoothed rates, the same for everyone), the truth of the auction's
winners under each, and what the model costs a page.

The world: ``--users`` people with one or two of ``--topics`` interests, ``--campaigns`` campaigns (one creative
each, of one topic; objectives clicks, engagement and reach in turn; bids per click 0.5-2.0) and ``--impressions``
impressions over ``--days`` days, one or two ads a page. A person's true P(click) of a campaign's ad is the
campaign's base rate (log-normal around 2%) times ``--lift`` when the ad's topic is one of theirs and times 1.5 when
they follow its author; P(engagement) is 0.6 of it, drawn apart. These effects are chosen here, so the numbers show
what the machinery recovers from a log with such effects, not what real people do.

It prints the machine, ``train_ad_model``'s report (holdout AUC and log-loss of both heads beside the baseline's,
mean prediction, observed rate, reliability by fifths of the prediction), the training time, the holdout AUC of
the true P(click) itself (the ceiling any model could reach on this log); then, for
``--auctions`` people at the end of the log with every CPC campaign bidding, the mean *true* P(click) and true value
(bid x true P(click)) of the winner chosen by the model against the one chosen by the baseline; then the median
wall time of ``AdService.place`` for a page with the model and without, in alternating blocks.

Usage: python -m benchmarks.bench_ad_model [--users 2000] [--campaigns 40] [--impressions 100000] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine
from glassfeed.ads.campaigns import CampaignSpec
from glassfeed.ads.model import AdModel, examples, train_ad_model
from glassfeed.ads.policy import load_ad_policy
from glassfeed.ads.service import AdService
from glassfeed.ads.targeting import person
from glassfeed.feed.service import FeedService
from glassfeed.feed.train import auc
from glassfeed.ingest import Ingestor
from glassfeed.store import AdCampaignRow, AdLogRow, open_store

TOPICS = ("cooking", "cycling", "gardening", "chess", "jazz", "hiking", "photography", "baking", "football", "poetry")
OBJECTIVES = ("clicks", "engagement", "reach")
T0 = 1_700_000_000.0


def build(folder: Path, a: argparse.Namespace) -> tuple[Ingestor, dict[str, np.ndarray]]:
    """The synthetic store and its truth: ``topic`` per campaign, ``base`` click rate per campaign, ``bid``,
    ``interests`` (users x topics, bool), ``follows`` (users x campaigns, bool, at the end of the log)."""
    rng = np.random.default_rng(a.seed)
    nt = min(a.topics, len(TOPICS))
    end = T0 + a.days * 86400.0
    ing = Ingestor(open_store(folder / "ads.db"), clock=lambda: end + 60.0)
    interests = np.zeros((a.users, nt), bool)
    interests[np.arange(a.users), rng.integers(nt, size=a.users)] = True
    two = rng.random(a.users) < 0.4
    interests[np.flatnonzero(two), rng.integers(nt, size=int(two.sum()))] = True
    ing.create_users(
        [
            {"id": f"u{i}", "created_at": T0 - 30 * 86400.0, "interests": [TOPICS[t] for t in np.flatnonzero(row)]}
            for i, row in enumerate(interests)
        ]
        + [{"id": f"brand{k}", "created_at": T0 - 30 * 86400.0} for k in range(a.campaigns)],
        with_tokens=False,
    )
    topic = np.arange(a.campaigns) % nt
    ing.create_posts(
        [
            {"id": f"ad{k}", "author": f"brand{k}", "text": f"#{TOPICS[topic[k]]} new", "created_at": T0 - 3600.0}
            for k in range(a.campaigns)
        ]
    )
    base = np.clip(rng.lognormal(np.log(0.02), 0.4, a.campaigns), 0.002, 0.1)
    bid = np.round(rng.uniform(0.5, 2.0, a.campaigns), 2)
    for k in range(a.campaigns):
        spec = CampaignSpec(
            name=f"campaign {k}",
            on_behalf_of=f"Brand {k}",
            paid_by=f"Brand {k}",
            objective=OBJECTIVES[k % 3],
            bid=float(bid[k]) if OBJECTIVES[k % 3] != "reach" else 5.0,
            daily_budget=1e9,
            lifetime_budget=1e10,
            start=T0 - 86400.0,
            creatives=[f"ad{k}"],
        )
        body = spec.model_dump(mode="json")
        body["targeting"] = {}
        ing.put_ad_campaign(AdCampaignRow(f"c{k}", f"brand{k}", body, T0 - 86400.0, T0 - 86400.0))
    # follows of brands of one's topics, made over the log's days (before: the rows start followed)
    fu, fk = np.nonzero(interests[:, topic] & (rng.random((a.users, a.campaigns)) < 0.2))
    ft = rng.uniform(T0 - 7 * 86400.0, end, len(fu))
    events = [
        {"kind": "follow", "user": f"u{u}", "target_user": f"brand{k}", "ts": float(t)}
        for u, k, t in zip(fu.tolist(), fk.tolist(), ft.tolist())
    ]
    for at in range(0, len(events), 5000):
        ing.ingest_events(events[at : at + 5000])
    followed_at = np.full((a.users, a.campaigns), np.inf)
    followed_at[fu, fk] = ft
    rows: list[AdLogRow] = []
    times = np.sort(rng.uniform(T0, end, a.impressions))
    for j, t in enumerate(times.tolist()):
        u = int(rng.integers(a.users))
        ks = rng.choice(a.campaigns, 2 if rng.random() < 0.2 else 1, replace=False)
        for k in ks.tolist():
            p = base[k] * (a.lift if interests[u, topic[k]] else 1.0) * (1.5 if followed_at[u, k] < t else 1.0)
            req = f"engagement:s{j}.1"
            rows.append(AdLogRow(0, "impression", t, f"c{k}", u + 1, k + 1, 0, req, None, None))
            if rng.random() < p:
                rows.append(AdLogRow(0, "click", t + 3.0, f"c{k}", u + 1, k + 1, 0, req, None, None))
            if rng.random() < 0.6 * p:
                rows.append(AdLogRow(0, "engagement", t + 8.0, f"c{k}", u + 1, k + 1, 0, req, None, None))
    rows.sort(key=lambda r: r.ts)
    for at in range(0, len(rows), 50_000):
        ing.append_ad_log(rows[at : at + 50_000])
    truth = {
        "topic": topic,
        "base": base,
        "bid": bid,
        "interests": interests,
        "follows": np.isfinite(followed_at),
        "followed_at": followed_at,
    }
    return ing, truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--topics", type=int, default=10)
    ap.add_argument("--campaigns", type=int, default=40)
    ap.add_argument("--impressions", type=int, default=100_000)
    ap.add_argument("--days", type=float, default=14.0)
    ap.add_argument("--lift", type=float, default=4.0)
    ap.add_argument("--auctions", type=int, default=2000)
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--pages", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    print(machine())
    print(json.dumps(vars(a)))
    policy = load_ad_policy()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        ing, truth = build(Path(tmp), a)
        print(f"built the store in {time.perf_counter() - t:.1f} s")
        end = T0 + a.days * 86400.0
        t = time.perf_counter()
        model, report = train_ad_model(ing.store, policy, end + 3600.0, 0.2, model=AdModel())
        print(f"train_ad_model (examples, holdout fit, refit on all): {time.perf_counter() - t:.1f} s")
        print(json.dumps(report, indent=1))
        # the ceiling: the true P(click) of each holdout impression, as a score
        ex = examples(ing.store, policy, end + 3600.0)
        cut = round(len(ex.ts) * 0.8)
        u = ex.users[cut:] - 1
        k = np.array([int(c[1:]) for c in ex.campaigns[cut:].tolist()])
        true = truth["base"][k] * np.where(truth["interests"][u, truth["topic"][k]], a.lift, 1.0)
        true = true * np.where(truth["followed_at"][u, k] < ex.ts[cut:], 1.5, 1.0)
        print(f"holdout AUC of the true P(click) itself (the ceiling): {auc(ex.y_click[cut:], true):.4f}")

        feed = FeedService(ing, clock="data")
        svc = AdService(feed, install=False)
        try:
            now = end + 600.0
            st = feed.state
            camps = [svc.campaigns[f"c{k}"] for k in range(a.campaigns)]
            cpc = [k for k, c in enumerate(camps) if c.objective == "clicks"]
            posts = [int(svc.store.post_idx(c.creatives[0]) or 0) for c in camps]
            place = feed.policies["engagement"].ads.first_position - 1
            rng = np.random.default_rng(a.seed + 1)
            won: dict[str, list[tuple[float, float]]] = {"model": [], "baseline": []}
            for u in rng.choice(a.users, min(a.auctions, a.users), replace=False).tolist():
                who = person(st, u + 1, policy, now)
                stats = [svc.stats[camps[k].id] for k in cpc]
                mine = svc.person_stats[u + 1]
                X = svc.ranker.features(
                    st, who, [camps[k] for k in cpc], [posts[k] for k in cpc], stats, mine, now, place
                )
                p_model, _ = model.predict(X)
                p_base, _ = svc.ranker.rates(stats)
                quality = svc.ranker.quality(stats)
                ks = np.array(cpc)
                true = truth["base"][ks] * np.where(truth["interests"][u, truth["topic"][ks]], a.lift, 1.0)
                true = true * np.where(truth["follows"][u, ks], 1.5, 1.0)
                for name, p in (("model", p_model), ("baseline", p_base)):
                    w = int(np.argmax(truth["bid"][ks] * p * quality))
                    won[name].append((float(true[w]), float(truth["bid"][ks][w] * true[w])))
            for name, xs in won.items():
                arr = np.array(xs)
                print(
                    f"winner by {name:8s}: mean true P(click) {arr[:, 0].mean():.4f}, "
                    f"mean true value per impression (bid x true P(click)) {arr[:, 1].mean():.4f} "
                    f"over {len(arr)} auctions of {len(cpc)} CPC campaigns"
                )
            pol = feed.policies["engagement"]
            items = [{"post": f"x{i}"} for i in range(50)]
            times: dict[str, list[float]] = {"model": [], "rates": []}
            user = 0
            for b in range(a.blocks):
                for side in ("model", "rates") if b % 2 == 0 else ("rates", "model"):
                    svc.ranker.model = model if side == "model" else None
                    for _ in range(a.pages):
                        user = user % a.users + 1
                        t0 = time.perf_counter()
                        svc.place(user, pol, items, now, f"engagement:b{b}{side}{user}.1", np.zeros(0, np.int64))
                        times[side].append(time.perf_counter() - t0)
            med = {k: float(np.median(v)) * 1000 for k, v in times.items()}
            print(
                f"AdService.place, a 50-item page, {a.campaigns} campaigns bidding: median {med['model']:.2f} ms with "
                f"the model, {med['rates']:.2f} ms with the campaigns' rates ({a.blocks} alternating blocks of "
                f"{a.pages} pages)"
            )
        finally:
            svc.close()
            feed.close()
            ing.store.close()


if __name__ == "__main__":
    main()
