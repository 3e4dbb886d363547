"""Moderation rules as simulator arms: a feed policy plus a moderation policy TOML, run beside plain policies.

Synthetic posts are template text (``sim/text.py``), so the real text classifiers say nothing about them. This
module gives each post a **ground truth** and a **classifier stand-in** instead, and then drives the real lever:

- Ground truth (``HarmParams``): post ``i`` is toxic when ``u_i < sigmoid(bias + divisive * div_i + quality *
  quality_i)``, with ``u_i`` a counter-based uniform of ``(seed, i)`` (a SplitMix64 hash, not a random stream):
  no generator draw is added or moved, so every existing result for a seed is unchanged, and a post has the same
  truth in every arm.
- Classifier stand-in (``ClassifierParams``): the score's logit is Normal(``mean_toxic``, ``sd_toxic``) for toxic
  posts and Normal(``mean_clean``, ``sd_clean``) otherwise (plus ``divisive_bias`` x divisiveness, 0 by default),
  the normal again hashed from ``(seed, i)``. The defaults are the moments of the logit of the shipped
  ``offensive`` head's scores on TweetEval offensive test, per class (measured; docs/sim_moderation.md).
- The path is the real one: the arm's world sets the stand-in as its Ingestor's ``text_scorer`` (new posts are
  scored inside the transaction that creates them), scores the generated history with ``Ingestor.score_posts``
  (as ``glassfeed moderation score`` does for posts older than the classifier), and runs a ``ModerationService``
  with the arm's policy beside its ``FeedService``: the service logs each automated action and installs the
  outcome into the serving state's ``visibility``, which ``feed.pipeline.rank`` reads on the ``home`` surface.

Per arm, besides every simulator metric: toxic exposure (share of scanned / top-10 items that are toxic in ground
truth) each step, and at the end the share of posts actioned on ``home``, the false-discovery share (actioned
posts that are not toxic), the false-positive rate (clean posts actioned), and recall (toxic posts actioned).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from glassfeed.audit import metrics as M
from glassfeed.moderation.policy import ModerationPolicy, load_moderation_policy
from glassfeed.moderation.service import ModerationService
from glassfeed.settings import Settings
from glassfeed.sim.loop import (
    Base,
    Collector,
    Progress,
    SimConfig,
    SimResult,
    StepData,
    World,
    run_simulation,
)
from glassfeed.sim.population import Population, PostTable
from glassfeed.state.visibility import ACTIONS

#: Separates the feed policy from the moderation policy in an arm's name (``engagement+sim_downrank``).
ARM_SEP = "+"
#: The moderation name meaning "no moderation service" (the plain feed policy).
NO_MODERATION = "none"
#: The surface the simulator's feeds are ranked for (``World._rank_batch`` uses ``rank``'s default).
SURFACE = "home"
#: Hash streams of the counter-based draws (ground truth, and the stand-in's two Box-Muller uniforms).
_TRUTH, _NOISE_A, _NOISE_B = 1, 2, 3


@dataclass(frozen=True)
class HarmParams:
    """Ground truth: P(toxic) = sigmoid(bias + divisive * divisiveness + quality * quality). A modelling choice,
    not a measurement: harm concentrates in divisive, low-quality posts (6-10% of posts are toxic at these values
    in the runs of docs/sim_moderation.md)."""

    bias: float = -3.5
    divisive: float = 6.0
    quality: float = -3.0


@dataclass(frozen=True)
class ClassifierParams:
    """The stand-in classifier: logit(score) ~ Normal(mean, sd) per ground-truth class, + divisive_bias * div.

    Defaults: per-class mean and standard deviation of logit(score) of the shipped ``offensive`` head on the 860
    TweetEval offensive test posts (240 offensive), measured: AUC 0.817; at 0.34 TPR 0.617 / FPR 0.174, at 0.8
    TPR 0.267 / FPR 0.008, at 0.9 TPR 0.154 / FPR 0.003. ``divisive_bias`` > 0 models a classifier that mistakes
    heated-but-civil posts for toxic ones (not measured; 0 by default)."""

    name: str = "offensive"  # the score the rules read: ``score.<name>``
    mean_toxic: float = 0.263
    sd_toxic: float = 1.955
    mean_clean: float = -1.804
    sd_clean: float = 1.274
    divisive_bias: float = 0.0


# --------------------------------------------------------------------------- counter-based draws


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def hashed_uniform(seed: int, idx: np.ndarray, stream: int) -> np.ndarray:
    """A uniform in [0, 1) per ``idx``, a pure function of (seed, idx, stream): no random state is consumed."""
    key = int(_splitmix(np.array([(seed * 0x9E3779B97F4A7C15 + stream) % (1 << 64)], np.uint64))[0])
    x = np.asarray(idx, np.int64).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(key)
    return (_splitmix(x) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def hashed_normal(seed: int, idx: np.ndarray) -> np.ndarray:
    """A standard normal per ``idx`` (Box-Muller on two hashed uniforms)."""
    u1 = hashed_uniform(seed, idx, _NOISE_A)
    u2 = hashed_uniform(seed, idx, _NOISE_B)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def toxic_probability(quality: np.ndarray, divisiveness: np.ndarray, p: HarmParams) -> np.ndarray:
    z = p.bias + p.divisive * np.asarray(divisiveness, np.float64) + p.quality * np.asarray(quality, np.float64)
    return 1.0 / (1.0 + np.exp(-z))


def toxic_truth(seed: int, idx: np.ndarray, quality: np.ndarray, divisiveness: np.ndarray, p: HarmParams) -> np.ndarray:
    """Ground truth per post (sim post index ``idx`` with its quality and divisiveness): bool."""
    return hashed_uniform(seed, idx, _TRUTH) < toxic_probability(quality, divisiveness, p)


def classifier_scores(
    seed: int, idx: np.ndarray, toxic: np.ndarray, divisiveness: np.ndarray, p: ClassifierParams
) -> np.ndarray:
    """The stand-in classifier's P(toxic) per post (float64 in (0, 1))."""
    toxic = np.asarray(toxic, bool)
    mean = np.where(toxic, p.mean_toxic, p.mean_clean) + p.divisive_bias * np.asarray(divisiveness, np.float64)
    logit = mean + np.where(toxic, p.sd_toxic, p.sd_clean) * hashed_normal(seed, idx)
    return 1.0 / (1.0 + np.exp(-logit))


class QueuedScorer:
    """An ``Ingestor.text_scorer`` that returns the scores queued for the next ``create_posts`` batch (the
    simulator knows each post's ground truth, not anything its template text says)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._next: np.ndarray | None = None

    def queue(self, scores: np.ndarray) -> None:
        self._next = np.asarray(scores, np.float64)

    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        got, self._next = self._next, None
        if got is None or len(got) != len(texts):
            raise RuntimeError(f"stand-in classifier: {len(texts)} texts but {0 if got is None else len(got)} scores")
        return {self.name: got}


# --------------------------------------------------------------------------- arms


@dataclass(frozen=True)
class ModerationArm:
    """A feed policy with a moderation policy (``None``: no moderation service, the plain policy)."""

    feed_policy: str
    moderation: str = NO_MODERATION  # a packaged name (``policies/moderation/<name>.toml``) or a TOML path

    @property
    def name(self) -> str:
        if self.moderation == NO_MODERATION:
            return self.feed_policy
        return f"{self.feed_policy}{ARM_SEP}{Path(self.moderation).stem}"


def moderation_policy(name: str) -> ModerationPolicy:
    """A packaged moderation policy by name (``sim_downrank`` -> ``policies/moderation/sim_downrank.toml``), or the
    TOML file at ``name`` when it names one."""
    if name.endswith(".toml") or "/" in name:
        return load_moderation_policy(name)
    res = resources.files("glassfeed").joinpath(f"policies/moderation/{name}.toml")
    if not res.is_file():
        raise ValueError(f"unknown moderation policy {name!r}: no policies/moderation/{name}.toml and no such file")
    return load_moderation_policy(str(res))


def arms_for(policies: Sequence[str], moderations: Sequence[str]) -> list[ModerationArm]:
    """Every feed policy with every moderation policy (``none`` = the plain policy), policy-major."""
    return [ModerationArm(p, m) for p in policies for m in moderations]


# --------------------------------------------------------------------------- the arm's world


class ModerationCollector(Collector):
    """The simulator's metrics plus toxic exposure per step (ground truth of what was scanned / served)."""

    def __init__(self, cfg: SimConfig, pop: Population, posts: PostTable, panel: np.ndarray, harm: HarmParams):
        super().__init__(cfg, pop, posts, panel)
        self.seed, self.harm = cfg.seed, harm

    def toxic(self, posts: np.ndarray) -> np.ndarray:
        p = self.posts
        return toxic_truth(self.seed, posts, p.quality[posts], p.divisiveness[posts], self.harm)

    def step(self, d: StepData) -> None:
        super().step(d)
        valid, ex = d.pages >= 0, d.res.examined
        pp = np.maximum(d.pages, 0)
        k = self.cfg.divisive_top_k
        scanned = self.toxic(pp[ex])
        top = self.toxic(pp[:, :k][valid[:, :k]])
        self.add("toxic_share_consumed", float(scanned.mean()) if len(scanned) else np.nan)
        self.add("toxic_share_top10", float(top.mean()) if len(top) else np.nan)
        div = self.posts.divisiveness[pp[ex]]
        self.add("toxic_impressions", float(scanned.sum()))
        self.add("nontoxic_divisive_share_consumed", M.divisive_share(div[~scanned], self.cfg.divisive_threshold))


class ModeratedWorld(World):
    """A policy world whose feed runs beside a ``ModerationService`` fed by the stand-in classifier."""

    def __init__(
        self,
        cfg: SimConfig,
        arm: ModerationArm,
        db: Path,
        base: Base,
        settings: Settings | None = None,
        harm: HarmParams | None = None,
        classifier: ClassifierParams | None = None,
    ) -> None:
        super().__init__(cfg, arm.feed_policy, db, base, settings)
        self.policy_name, self.arm = arm.name, arm
        self.harm, self.clf = harm or HarmParams(), classifier or ClassifierParams()
        self.metrics = ModerationCollector(cfg, self.pop, self.posts, self.metrics.panel, self.harm)
        self.mod: ModerationService | None = None
        self.scorer: QueuedScorer | None = None
        if arm.moderation == NO_MODERATION:
            return
        self.scorer = QueuedScorer(self.clf.name)
        self.ing.text_scorer = self.scorer
        n = self.posts.n
        idx = np.arange(n)
        self.ing.score_posts({self.clf.name: (self.p2s[:n].tolist(), self._scores(idx).tolist())})
        self.mod = ModerationService(
            self.ing,
            self.settings,
            state_of=lambda: self.svc.state,
            state_lock=self.svc.lock,
            policy=moderation_policy(arm.moderation),
            clock=lambda: self.clock_t + 60.0,
        )
        self.svc.state_listeners.append(self.mod.install_into)  # retrains rebuild the state: keep the outcome

    def _scores(self, idx: np.ndarray) -> np.ndarray:
        p, s = self.posts, self.cfg.seed
        q, d = p.quality[idx], p.divisiveness[idx]
        return classifier_scores(s, idx, toxic_truth(s, idx, q, d, self.harm), d, self.clf)

    def _create_posts(self, cols: tuple[np.ndarray, ...]) -> int:
        k = len(cols[0])
        if k and self.scorer is not None:
            idx = np.arange(self.posts.n, self.posts.n + k)
            q, d = np.asarray(cols[3], np.float32), np.asarray(cols[4], np.float32)  # as the PostTable keeps them
            toxic = toxic_truth(self.cfg.seed, idx, q, d, self.harm)
            self.scorer.queue(classifier_scores(self.cfg.seed, idx, toxic, d, self.clf))
        return super()._create_posts(cols)

    def close(self) -> None:
        self.svc.close()  # stop the feed's tail thread before its store closes
        super().close()

    def final_extra(self) -> dict[str, Any]:
        """Ground-truth accounting of the arm's moderation over every post (history + simulated)."""
        m = self.metrics
        assert isinstance(m, ModerationCollector)
        n = self.posts.n
        toxic = m.toxic(np.arange(n))
        imp = m.post_impressions[:n]
        out: dict[str, Any] = {
            "toxic_prevalence": float(toxic.mean()) if n else None,
            "toxic_share_consumed_cumulative": float(imp[toxic].sum() / max(imp.sum(), 1)),
        }
        if self.mod is None:
            return out | dict.fromkeys(("actioned_share", "false_discovery", "false_positive_rate", "recall"))
        code = self.svc.state.visibility.action(self.p2s[:n], SURFACE)
        acted = code > 0
        out["actioned_share"] = float(acted.mean())
        out["false_discovery"] = float((acted & ~toxic).sum() / acted.sum()) if acted.any() else None
        out["false_positive_rate"] = float((acted & ~toxic).sum() / max((~toxic).sum(), 1))
        out["recall"] = float((acted & toxic).sum() / toxic.sum()) if toxic.any() else None
        for a in range(1, len(ACTIONS)):
            if (code == a).any():
                out[f"actioned_{ACTIONS[a]}"] = int((code == a).sum())
        out["automated_records"] = int(sum(len(v) for v in self.mod.ledger.automated.values()))
        return out


def run_moderation_simulation(
    cfg: SimConfig,
    arms: Sequence[ModerationArm],
    folder: Path,
    progress: Progress | None = None,
    settings: Settings | None = None,
    harm: HarmParams | None = None,
    classifier: ClassifierParams | None = None,
    base: Base | None = None,
) -> SimResult:
    """Run every arm on the same seeded society (``run_simulation`` with moderated worlds); the result's config
    names the arms and the ground-truth and classifier parameters."""
    by_name = {a.name: a for a in arms}
    if len(by_name) != len(arms):
        raise ValueError("two arms with the same name")
    for a in arms:
        if a.moderation != NO_MODERATION:
            moderation_policy(a.moderation)  # fail before any world runs
    harm, classifier = harm or HarmParams(), classifier or ClassifierParams()

    def make(c: SimConfig, name: str, db: Path, base: Base, s: Settings | None) -> World:
        return ModeratedWorld(c, by_name[name], db, base, s, harm, classifier)

    run_cfg = replace(cfg, policies=tuple(by_name))
    result = run_simulation(run_cfg, folder, progress, base=base, settings=settings, make_world=make)
    result.config["moderation"] = {
        "arms": {a.name: {"feed_policy": a.feed_policy, "moderation": a.moderation} for a in arms},
        "surface": SURFACE,
        "harm": asdict(harm),
        "classifier": asdict(classifier),
    }
    return result
