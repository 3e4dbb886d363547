"""Audit: metrics that read impression logs (simulated or live) and say what a feed did to its users."""

from glassfeed.audit.metrics import (
    amplification_ratio,
    bimodality_coefficient,
    divisive_share,
    engagement_rate,
    exposure_matrix,
    gini,
    group_mean,
    group_sum,
    jaccard_homogenisation,
    nearest_neighbours,
    pair_jaccard,
    polarisation,
    time_spent,
    topic_entropy,
)

__all__ = [
    "amplification_ratio",
    "bimodality_coefficient",
    "divisive_share",
    "engagement_rate",
    "exposure_matrix",
    "gini",
    "group_mean",
    "group_sum",
    "jaccard_homogenisation",
    "nearest_neighbours",
    "pair_jaccard",
    "polarisation",
    "time_spent",
    "topic_entropy",
]
