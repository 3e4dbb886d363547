"""The generalised second-price auction with quality weighting (Edelman, Ostrovsky & Schwarz 2007; Varian 2007).

Every eligible campaign ``i`` has a bid ``b_i`` in its own unit (per 1,000 impressions, per click or per
engagement), an *action rate* ``a_i`` that turns the bid into money per impression (``1/1000`` for a CPM bid, the
calibrated P(click) for CPC, P(engagement) for CPE) and a quality ``q_i`` in (0, 1]. Its score is the expected
revenue of one impression, ``s_i = b_i * a_i * q_i``. Campaigns are ranked by score (ties: the lower campaign
index first, so equal bids are ordered deterministically) and the top ``slots`` whose score reaches the reserve
``r`` (money per impression) win; winner ``k`` pays, in its bid's unit, the least bid that would still have kept
its rank::

    price_k = max(s_{k+1}, r) / (a_k * q_k)

where ``s_{k+1}`` is the next campaign's score (0 when none). A price never exceeds its bid (``s_{k+1} <= s_k``),
and with one bidder it is the reserve. Batch-first: ``gsp`` runs one auction; the ad service calls it per page."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class AuctionResult:
    """The winners (indexes into the bidders, best first), each one's price in its bid's unit and its score,
    and the runner-up score each price was set by (the reserve when higher)."""

    winners: np.ndarray
    prices: np.ndarray
    scores: np.ndarray
    runner_up: np.ndarray


def gsp(bids: np.ndarray, rates: np.ndarray, quality: np.ndarray, reserve: float, slots: int) -> AuctionResult:
    """One generalised second-price auction for up to ``slots`` places (see the module docstring); ``reserve`` is
    money per impression. Bidders whose score is below the reserve cannot win; they still set prices above them."""
    bids = np.asarray(bids, np.float64)
    rates = np.asarray(rates, np.float64)
    quality = np.asarray(quality, np.float64)
    if not (len(bids) == len(rates) == len(quality)):
        raise ValueError("bids, rates and quality must have one value per bidder")
    if np.any(bids < 0) or np.any(rates < 0) or np.any(quality < 0) or reserve < 0:
        raise ValueError("bids, rates, quality and the reserve must not be negative")
    score = bids * rates * quality
    order = np.lexsort((np.arange(len(score)), -score))  # best score first, ties by index
    ranked = score[order]
    eligible = int(np.count_nonzero(ranked >= reserve)) if reserve > 0 else int(np.count_nonzero(ranked > 0))
    n = min(max(slots, 0), eligible)
    winners = order[:n]
    nxt = np.append(ranked[1:], 0.0)[:n]
    setter = np.maximum(nxt, reserve)
    denom = rates[winners] * quality[winners]
    prices = np.minimum(setter / denom, bids[winners]) if n else np.zeros(0)
    return AuctionResult(winners, prices, ranked[:n], setter)


__all__ = ["AuctionResult", "gsp"]
