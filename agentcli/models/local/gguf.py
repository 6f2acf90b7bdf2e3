"""Reading a GGUF file's metadata (its key/value header) without loading the model.

The local backend builds a model's profile from it (parameter count, context length) in
milliseconds: loading the weights with llama.cpp to learn the same would cost a second or more
for a 7B model. Only the header is read; tensors are never touched.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["GGUFError", "parameter_count", "read_metadata"]

_MAGIC = b"GGUF"
# value type -> struct format of a scalar
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_MAX_STRING = 1 << 24  # a corrupt length must not make us allocate gigabytes


class GGUFError(ValueError):
    """The file is not a GGUF file this reader understands."""


def _read(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise GGUFError("truncated GGUF header")
    return data


def _string(f: BinaryIO) -> str:
    (n,) = struct.unpack("<Q", _read(f, 8))
    if n > _MAX_STRING:
        raise GGUFError("implausible string length in GGUF header")
    return _read(f, n).decode("utf-8", "replace")


def _value(f: BinaryIO, kind: int, keep: bool) -> Any:
    if kind in _SCALARS:
        fmt = _SCALARS[kind]
        return struct.unpack(fmt, _read(f, struct.calcsize(fmt)))[0]
    if kind == _STRING:
        return _string(f)
    if kind == _ARRAY:
        item_kind, count = struct.unpack("<IQ", _read(f, 12))
        if item_kind in _SCALARS:
            size = struct.calcsize(_SCALARS[item_kind]) * count
            f.seek(size, 1)  # arrays (the vocabulary, merges) are skipped, not decoded
            return None
        for _ in range(count):
            _value(f, item_kind, False)
        return None
    raise GGUFError(f"unknown GGUF value type {kind}")


def read_metadata(path: Path, *, stop_at: str | None = None) -> dict[str, Any]:
    """The scalar and string key/values of a GGUF file's header (arrays are skipped).

    ``stop_at``: stop at the first key with this prefix. llama.cpp's converters write the
    ``general.*`` and architecture keys first and the tokenizer (a vocabulary of ~50k-150k
    strings) last, so ``stop_at="tokenizer."`` reads what a profile needs in well under a ms.
    """
    with open(path, "rb") as f:
        if _read(f, 4) != _MAGIC:
            raise GGUFError(f"{path.name} is not a GGUF file")
        (version,) = struct.unpack("<I", _read(f, 4))
        if version < 2:
            raise GGUFError(f"GGUF version {version} is not supported")
        _tensors, kv_count = struct.unpack("<QQ", _read(f, 16))
        out: dict[str, Any] = {}
        for _ in range(kv_count):
            key = _string(f)
            if stop_at is not None and key.startswith(stop_at):
                break
            (kind,) = struct.unpack("<I", _read(f, 4))
            value = _value(f, kind, True)
            if value is not None:
                out[key] = value
        return out


_SIZE_LABEL = re.compile(r"^(?:(\d+)x)?(\d+(?:\.\d+)?)([KMBT])$", re.I)
_UNIT = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def parameter_count(meta: dict[str, Any]) -> int | None:
    """The model's parameter count from ``general.parameter_count`` or ``general.size_label`` (``135M``,
    ``7B``, ``8x7B``), or None."""
    count = meta.get("general.parameter_count")
    if isinstance(count, int) and count > 0:
        return count
    label = str(meta.get("general.size_label") or "").strip()
    m = _SIZE_LABEL.match(label)
    if not m:
        return None
    experts = int(m.group(1) or 1)
    return int(experts * float(m.group(2)) * _UNIT[m.group(3).upper()])
