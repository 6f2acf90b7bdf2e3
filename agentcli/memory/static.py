"""A static embedder distilled from the built-in MiniLM: one vector per WordPiece token.

Why: MiniLM runs a 6-layer transformer over every token of every chunk, ~26 full
160-token chunks/s on 2 cores; ingesting a repository of 10,000 chunks took minutes.
A static model (the model2vec method) looks each token up in a table and averages:
hundreds to thousands of chunks per second, at a measured cost in retrieval quality:
on bench/memory_quality.py's set (a real project's docs and code, 43 questions with known
answers), with the BM25 full-text search beside the vectors, recall@5 0.67 / MRR 0.51
against MiniLM's 0.81 / 0.66, at ~3,000 chunks/s against MiniLM's 3-26 (bench/RESULTS.md).
So chunks use it by default (``memory.chunk_embedding_model = "auto"``) and episodes, a
few short texts a day, keep MiniLM.

The table is *distilled*, not trained: every token of MiniLM's vocabulary is embedded
alone (``[CLS] token [SEP]``, mean-pooled, as MiniLM embeds a one-token text), the
384-d vectors are centred on their mean, and each row is weighted by SIF
(``a / (a + p(token))``, ``p`` from Zipf's law over the vocabulary's frequency order), so
that frequent tokens ("the", punctuation) weigh little in a mean. That is model2vec's
``distill`` recipe (less its PCA), run on the pinned, sha256-checked MiniLM files: no
other model, no hub, no training data. The result is cached per user
(``$XDG_CACHE_HOME/agentcli``, else ``~/.cache/agentcli``): built once, in ~10-30 s on 2
cores, then loaded in milliseconds. Rebuilding gives the same table on the same
onnxruntime; :data:`RECIPE` names the recipe, and is part of the embedder's name so that a
change of recipe is a change of vector space (``agent memory reindex``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentcli.errors import ConfigError

if TYPE_CHECKING:
    from agentcli.memory.embeddings import Matrix

#: Output dimension: MiniLM's own (principal components were measured too: 256 and 128 of
#: them lost recall@5 on bench/memory_quality.py's set, 0.51 / 0.47 against 0.56).
DIM = 384
#: SIF smoothing constant ``a``: measured on bench/memory_quality.py's set, 1e-5..1 (model2vec
#: uses 1e-4; 3e-3 ranked best, recall@5 0.56, MRR 0.42 with vectors alone).
SIF_A = 3e-3
#: The first id of a real word in the BERT uncased vocabulary ("the"); ids before it are
#: [PAD], [unused*], [CLS], [SEP], [MASK] and single characters.
FIRST_WORD_ID = 1996
#: Tokens of a text that are averaged at most (a chunk is ~160 cl100k tokens, ~250 WordPieces).
MAX_TOKENS = 1024
#: Tokens per forward pass while distilling.
DISTILL_BATCH = 512
RECIPE = "m2v-minilm-l6-sif3e3-v3"
NAME = f"builtin:static-{RECIPE}"

_CLS, _SEP = 101, 102


def cache_dir() -> Path:
    """Where the distilled table is kept: ``$XDG_CACHE_HOME/agentcli`` or ``~/.cache/agentcli``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agentcli"


def table_path() -> Path:
    return cache_dir() / f"{RECIPE}.npy"


def distill(session: Any, vocab_size: int, *, progress: Callable[[int, int], None] | None = None) -> Matrix:
    """The static table from a MiniLM ONNX session: ``vocab_size x DIM`` float32 (see the module)."""
    import numpy as np

    inputs = {i.name for i in session.get_inputs()}
    vecs = np.zeros((vocab_size, 384), dtype=np.float32)
    for start in range(0, vocab_size, DISTILL_BATCH):
        ids = np.arange(start, min(start + DISTILL_BATCH, vocab_size), dtype=np.int64)
        batch = np.stack([np.full_like(ids, _CLS), ids, np.full_like(ids, _SEP)], axis=1)
        feeds = {"input_ids": batch, "attention_mask": np.ones_like(batch)}
        if "token_type_ids" in inputs:
            feeds["token_type_ids"] = np.zeros_like(batch)
        hidden = session.run(None, feeds)[0]
        vecs[ids] = hidden.mean(axis=1)
        if progress is not None:
            progress(int(ids[-1]) + 1, vocab_size)
    # Centred on the real tokens' mean (the unused slots would skew it): what every token
    # shares says nothing about a text.
    proj = (vecs - vecs[FIRST_WORD_ID:].mean(axis=0)).astype(np.float32)
    # SIF weights by Zipf's law over frequency rank (BERT's vocabulary is in frequency order
    # from FIRST_WORD_ID on; the characters before it are treated as the most frequent).
    rank = np.maximum(np.arange(vocab_size, dtype=np.float64) - FIRST_WORD_ID, 0.0) + 1.0
    p = (1.0 / rank) / np.sum(1.0 / rank[FIRST_WORD_ID:])
    weights = SIF_A / (SIF_A + p)
    proj *= weights[:, None].astype(np.float32)
    proj[:FIRST_WORD_ID - 999] = 0.0  # [PAD], [unused], [CLS]/[SEP]/[MASK]: no meaning in a text
    out: Matrix = proj.astype(np.float32)
    return out


class StaticEmbedder:
    """Token lookup + mean over a text's WordPieces + L2 (``builtin-static``); thread-safe.

    The table is distilled from the built-in MiniLM on first use and cached (see the module).
    ``on_build(done, total)``, if set, is told how the one-time distillation goes.
    """

    def __init__(self, *, minilm: Any, path: Path | None = None) -> None:
        self._minilm = minilm  # a BuiltinEmbedder: its verified files and session
        self._path = path
        self._lock = threading.Lock()
        self._table: Any = None
        self._tokenizer: Any = None
        self.on_build: Callable[[int, int], None] | None = None

    @property
    def name(self) -> str:
        return NAME

    @property
    def dim(self) -> int:
        return DIM

    def _load(self) -> None:
        import numpy as np
        from tokenizers import Tokenizer

        with self._lock:
            if self._table is not None:
                return
            tok = Tokenizer.from_file(str(self._minilm.verified_tokenizer()))
            tok.no_padding()
            tok.no_truncation()
            path = self._path or table_path()
            table = None
            if path.is_file():
                try:
                    # Mapped, not read: a query touches a few dozen of its 30,522 rows, and reading
                    # all 47 MB cost ~20 ms of every cold search. The file is only ever replaced
                    # (os.replace), never written in place, so a mapping stays valid.
                    table = np.load(path, mmap_mode="r", allow_pickle=False)
                except (OSError, ValueError):
                    table = None  # a torn or foreign file: build it again
                if table is not None and (table.shape != (tok.get_vocab_size(), DIM) or table.dtype != np.float32
                                          or not table.flags.c_contiguous):
                    table = None
            if table is None:
                table = distill(self._minilm.session(), tok.get_vocab_size(), progress=self.on_build)
                _save_atomic(path, table)
            self._tokenizer = tok
            self._table = table

    def embed(self, texts: Sequence[str]) -> Matrix:
        import numpy as np

        if self._table is None:
            self._load()
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        # The ids only: encode_batch_fast skips the character offsets (~8% of the tokenizing,
        # which is most of a static embedding); older tokenizers lack it.
        encode = getattr(self._tokenizer, "encode_batch_fast", self._tokenizer.encode_batch)
        encodings = encode(list(texts), add_special_tokens=False)
        table = self._table
        # One text at a time: its ~250 rows (~400 KB) are gathered and summed in cache.
        # ``np.add.reduceat`` over a batch's concatenated rows gives the same sums but ran
        # 14x slower here (2,048 chunks: 2.2 s against 0.15 s): its axis-0 loop strides badly.
        for i, e in enumerate(encodings):
            ids = e.ids[:MAX_TOKENS]
            if ids:
                np.take(table, ids, axis=0).sum(axis=0, out=out[i])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 1e-12)
        return out


def _save_atomic(path: Path, table: Any) -> None:
    import numpy as np

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.save(f, table, allow_pickle=False)
        os.replace(tmp, path)
    except OSError as e:
        # A read-only home still works: the table is rebuilt per process instead of cached.
        if not isinstance(e, PermissionError) and e.errno not in (13, 30):
            raise ConfigError(f"cannot cache the static embedder table at {path}: {e.strerror}") from None


def table_digest(table: Any) -> str:
    """sha256 of a table's bytes (the bench records it: same recipe, same onnxruntime, same table)."""
    return hashlib.sha256(memoryview(table.tobytes())).hexdigest()
