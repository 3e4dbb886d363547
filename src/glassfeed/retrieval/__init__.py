"""Retrieval models behind one fit / score / recommend API, plus an ANN index over item factors.

``MODELS`` maps a registry name to its class; every class is ``Cls(**hyperparams).fit(X)`` with ``X`` a CSR
users x items confidence matrix, then ``recommend(userids, X, N)`` or ``score(userids, X)``.
"""

from glassfeed.retrieval.ann import ANNIndex
from glassfeed.retrieval.base import Recommender, topk
from glassfeed.retrieval.blend import Blend
from glassfeed.retrieval.dlae import DLAE
from glassfeed.retrieval.ease import EASE
from glassfeed.retrieval.factor import ALS, BPR
from glassfeed.retrieval.gfcf import GFCF
from glassfeed.retrieval.ials import IALS
from glassfeed.retrieval.itemknn import ItemKNN
from glassfeed.retrieval.popularity import Popularity
from glassfeed.retrieval.rp3beta import RP3beta
from glassfeed.retrieval.social import SocialRecommender
from glassfeed.retrieval.trustwalk import TrustWalk

MODELS: dict[str, type[Recommender]] = {
    "pop": Popularity,
    "itemknn": ItemKNN,
    "als": ALS,
    "bpr": BPR,
    "ials": IALS,
    "ease": EASE,
    "dlae": DLAE,
    "rp3beta": RP3beta,
    "gfcf": GFCF,
    "social": SocialRecommender,
    "trustwalk": TrustWalk,
    "blend": Blend,
}

__all__ = [
    "MODELS",
    "ANNIndex",
    "Recommender",
    "topk",
    "Popularity",
    "ItemKNN",
    "ALS",
    "BPR",
    "IALS",
    "EASE",
    "DLAE",
    "RP3beta",
    "GFCF",
    "SocialRecommender",
    "TrustWalk",
    "Blend",
]
