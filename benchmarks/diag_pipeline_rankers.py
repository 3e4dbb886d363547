"""The full pipeline on ms-ml100k under each ranker, beside its own collaborative score (docs/evaluation.md,
"Heads that see retrieval").

Imports the protocol's training split through ``pipeline_eval.import_events`` by an import recipe (``"recipe"``,
default ``pipeline_eval.DEFAULT_RECIPE``) with the keyword arguments given as one JSON object over it, e.g.
``'{"seed": 1, "train": {"sampled_negatives": 4}, "retrieval": {"collaborative_model": "als"}}'`` (``train``
holds ``[train]`` settings, ``state`` ``[state]`` ones), trains the feed, then prints nDCG@10 of:

- ``pipeline.rank`` with the policy's ``heads`` and with ``ranker = "lambdarank"``;
- each test user's candidates (sources, after the seen filter, no light ranker) ordered by ``collab_score``, by the
  heads' policy score and by the request ranker, to show what the candidates hold and what each scorer keeps;
- the held-out requests inside training (``train_report.json`` ``ranking``).

Run: ``python -m benchmarks.diag_pipeline_rankers '<json>'``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time

import numpy as np

from benchmarks.common import machine
from glassfeed.evaluate import pipeline_eval as pe
from glassfeed.evaluate.metrics import evaluate_topk
from glassfeed.evaluate.protocols import PROTOCOLS
from glassfeed.feed import pipeline
from glassfeed.feed.features import F, pair_context, pair_features
from glassfeed.settings import packaged_settings


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = argv if argv is not None else sys.argv[1:]
    kw = json.loads(args[0]) if args else {}
    proto = PROTOCOLS[kw.pop("protocol", "ms-ml100k")]
    print(machine())
    t0 = time.perf_counter()
    split = proto.build(None)
    frames = pe.event_frames(proto.name, None)
    n_users, n_items = split.train.shape
    keep = np.arange(n_users)
    test_rows = np.flatnonzero(np.diff(split.test.indptr))
    recipe = pe.import_recipes()[kw.pop("recipe", pe.DEFAULT_RECIPE)]  # then the JSON's keys over it
    settings = packaged_settings().replace(**recipe.settings)
    settings = settings.replace(train=kw.pop("train", {}), state=kw.pop("state", {}))
    kw = recipe.import_kwargs() | kw
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="glassfeed-rankers-") as tmp:
        imp = pe.import_events(frames, keep, n_items, tmp, say=print, settings=settings, **kw)
        svc = imp.service
        print("in training (held-out requests):", imp.train_report.get("ranking"))
        trees = {h["head"]: h.get("trees") for h in imp.train_report.get("heads", [])}
        print("trees:", trees, "ranker", imp.train_report.get("ranker_trees"))
        base = svc.policies["engagement"]
        test = split.test[test_rows]
        masked = pe.masked_beyond_training(split, test_rows)  # recbole-ml1m's validation items: never ranked
        for ranker in ("heads", "lambdarank"):
            pol = pe.eval_policy(dataclasses.replace(base, ranker=ranker), imp, keep[test_rows], 1000, None)
            r = pe.rank_users(imp, keep[test_rows], pol, proto.k, 500, masked)
            out[f"pipeline {ranker}"] = evaluate_topk(r.recs, test, proto.k)[f"ndcg@{proto.k}"]
        pol = pe.eval_policy(base, imp, keep[test_rows], 1000, None)
        st, models, users = svc.state, svc.models, imp.user_idx[keep[test_rows]]
        recs = {k: np.full((len(users), proto.k), -1) for k in ("collab_score", "heads", "lambdarank")}
        for a in range(0, len(users), 300):
            ub = users[a : a + 300]
            c = pipeline.candidates(st, models, ub, pol, imp.now)
            skip = [set(st.feedback.seen(int(u)).tolist()) for u in ub]
            if masked is not None:
                skip = [s | set(imp.item_post[list(masked[a + r_])].tolist()) for r_, s in enumerate(skip)]
            unseen = np.flatnonzero([p not in skip[r_] for r_, p in zip(c.row, c.post, strict=True)])
            c = c.take(unseen)
            X = pair_features(st, pair_context(st, ub, c.row, c.post, c.extra), imp.now, scorer=models.scorer)
            scores = {
                "collab_score": X[:, F["collab_score"]].astype(np.float64),
                "heads": models.heads.predict(X) @ np.asarray(pol.weight_vector()),
                "lambdarank": models.ranker.score(X) if models.ranker.trained else np.zeros(len(X)),
            }
            for name, s in scores.items():
                for r_ in range(len(ub)):
                    m = np.flatnonzero(c.row == r_)
                    top = m[np.argsort(-s[m], kind="stable")[: proto.k]]
                    recs[name][a + r_, : len(top)] = imp.post_item[c.post[top]]
        for name, rec in recs.items():
            out[f"candidates by {name}"] = evaluate_topk(rec, test, proto.k)[f"ndcg@{proto.k}"]
        svc.close()
        svc.store.close()
    for k, v in out.items():
        print(f"{k}: nDCG@{proto.k} {v:.4f}")
    print(f"{time.perf_counter() - t0:.0f} s")
    return out


if __name__ == "__main__":
    main()
