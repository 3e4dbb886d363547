"""Post text -> unit vector, with a static (model2vec-style) embedding model shipped inside a PyPI package.

A static model is a table of one vector per token: a text's vector is the mean of its tokens' rows, L2-normalised.
No network and no model hub are involved: the files are read from the installed package (``importlib.resources``),
so the model loads offline (``tests/test_content.py`` checks it with the network closed). The measured choice
against a transformer and other static models is in docs/content.md.

Models (``[state.content] model``):

- ``wordllama-l2-supercat``: WordLlama's ``l2_supercat`` token embeddings (MIT; PyPI ``wordllama``), the Llama 2
  tokenizer's 32,000 tokens x 256 dimensions in float16, trained so that the first 64 or 128 dimensions are
  themselves a usable embedding (``dims`` truncates: smaller, faster, somewhat less accurate).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Self

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load as load_safetensors
from tokenizers import Tokenizer


@dataclass(frozen=True)
class StaticModel:
    """Where a static model's files live inside an installed package."""

    package: str
    weights: str  # a safetensors file, relative to the package
    tensor: str  # the (vocabulary, dims) tensor's name in it
    tokenizer: str  # a Hugging Face ``tokenizers`` JSON file, relative to the package
    max_dims: int
    dims: tuple[int, ...]  # the truncations the model was trained for


#: The models ``[state.content] model`` may name.
MODELS: dict[str, StaticModel] = {
    "wordllama-l2-supercat": StaticModel(
        package="wordllama",
        weights="weights/l2_supercat_256.safetensors",
        tensor="embedding.weight",
        tokenizer="tokenizers/l2_supercat_tokenizer_config.json",
        max_dims=256,
        dims=(64, 128, 256),
    ),
}


class StaticEmbedder:
    """``embed(texts) -> float32 (n, dims)``, each row L2-normalised (an empty or untokenisable text: zeros).

    The model is loaded on first use (``load``) and shared by every embedder of the same model and dims in the
    process. Learned by ``load``: ``table_`` (the (vocabulary, dims) float32 token table), ``tokenizer_``.
    """

    def __init__(self, model: str = "wordllama-l2-supercat", dims: int = 256, batch_size: int = 4096) -> None:
        self.model = model
        self.dims = dims
        self.batch_size = batch_size

    def load(self) -> Self:
        if not hasattr(self, "table_"):
            self.tokenizer_, self.table_ = _load(self.model, self.dims)
        return self

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors for ``texts`` (float32, ``(len(texts), dims)``), in batches of ``batch_size``."""
        self.load()
        out = np.zeros((len(texts), self.dims), np.float32)
        for a in range(0, len(texts), self.batch_size):
            out[a : a + self.batch_size] = self._embed(texts[a : a + self.batch_size])
        return out

    def _embed(self, texts: list[str]) -> np.ndarray:
        ids = [e.ids for e in self.tokenizer_.encode_batch(texts, add_special_tokens=False)]
        n = np.fromiter(map(len, ids), np.int64, len(ids))
        flat = np.fromiter((i for row in ids for i in row), np.int64, int(n.sum()))
        # one sparse (texts x vocabulary) count matrix times the token table: the sum of each text's token rows
        counts = sp.csr_matrix(
            (np.ones(len(flat), np.float32), flat, np.r_[0, np.cumsum(n)]), shape=(len(texts), len(self.table_))
        )
        v = np.asarray(counts @ self.table_, np.float32)
        norm = np.linalg.norm(v, axis=1, keepdims=True)
        return np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)

    @property
    def nbytes(self) -> int:
        """Bytes the loaded token table holds in memory."""
        return int(self.load().table_.nbytes)

    def files_bytes(self) -> int:
        """Bytes of the model's files on disk (weights and tokenizer)."""
        m = MODELS[self.model]
        root = resources.files(m.package)
        return sum(len(root.joinpath(f).read_bytes()) for f in (m.weights, m.tokenizer))


@cache
def _load(model: str, dims: int) -> tuple[Tokenizer, np.ndarray]:
    if model not in MODELS:
        raise ValueError(f"unknown content model {model!r}; expected one of {', '.join(MODELS)}")
    m = MODELS[model]
    if dims not in m.dims:
        raise ValueError(f"content model {model!r} has dims {m.dims}, not {dims}")
    root = resources.files(m.package)
    table = load_safetensors(root.joinpath(m.weights).read_bytes())[m.tensor][:, :dims]
    tok = Tokenizer.from_str(root.joinpath(m.tokenizer).read_text("utf-8"))
    tok.no_padding()
    tok.no_truncation()
    return tok, np.ascontiguousarray(table, np.float32)
