"""Import lancedb without its generated REST namespace client (~0.5 s of a cold search).

``import lancedb`` imports ``lance_namespace``, which imports the pydantic models of
``lance_namespace_urllib3_client``, an OpenAPI-generated REST client. That package's
``__init__`` also imports every one of its ``*_api`` modules, each method wrapped in
pydantic's ``validate_call`` (a schema built per method at import): about 0.5 s on an
idle 2-core machine, more than half of lancedb's import, for a client that a local or
S3 store never calls (only a ``rest`` namespace connection does).

:func:`install` puts a stand-in for that package in ``sys.modules`` before lancedb is
imported: a module object with the real package's ``__spec__`` and ``__path__``, so
``import lance_namespace_urllib3_client.models.x`` still loads the real submodule from
the real directory, and a module ``__getattr__`` that runs the real ``__init__`` into
it the first time a name it defines (``ApiClient``, ``TableApi``, ...) is asked for.
Nothing is replaced, only postponed: the same code runs, on first use.

The models that ``lance_namespace`` re-exports (~150 classes) are still imported, but
:func:`deferred_model_builds` (around ``import lancedb``) lets pydantic build each one's
validator on its first use instead of at class creation (pydantic's own ``defer_build``
setting, applied to the classes created meanwhile): another ~70 ms, for models a local
store never validates.

Guards: the stand-in is installed only if the package is not imported yet, its
``__init__.py`` is found on disk, and that file contains nothing but imports, a
docstring and ``__version__`` (checked by parsing it, so that a future version with
side effects in its ``__init__`` is imported normally). Anything unexpected means the
normal import. ``AGENTCLI_EAGER_LANCE=1`` turns it off.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import os
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

#: The generated client whose package ``__init__`` is postponed.
PACKAGE = "lance_namespace_urllib3_client"
#: Set to 1 to import lancedb the normal way (a fallback if the stand-in ever misbehaves).
ENV_OFF = "AGENTCLI_EAGER_LANCE"

_lock = threading.RLock()
#: Held while BaseModel's config is changed (its own lock: an import under it must not wait on _lock).
_config_lock = threading.RLock()


def _only_imports(source: str) -> bool:
    """True if a module body is only imports, a docstring and ``__version__ = "..."``:
    running it later instead of now changes nothing but when its imports happen."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "__version__" and isinstance(node.value, ast.Constant)):
            continue
        return False
    return True


class _Deferred(types.ModuleType):
    """The package, its ``__init__`` not run yet (see the module docstring)."""

    _agentcli_deferred_source: str | None

    def __getattr__(self, name: str) -> Any:
        # Only called for names the module lacks: submodules already imported are attributes.
        # Dunder probes (``__wrapped__``, ``__file__`` lookups by inspect, ...) must not run it;
        # the two the real ``__init__`` may define do.
        if (name.startswith("__") and name not in ("__version__", "__all__")) \
                or name == "_agentcli_deferred_source":
            raise AttributeError(name)
        load(self)
        try:
            return self.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}") from None

    def __dir__(self) -> list[str]:
        load(self)
        return sorted(self.__dict__)


def load(module: types.ModuleType) -> None:
    """Run the real ``__init__`` of a deferred package (once)."""
    with _lock:
        source = module.__dict__.get("_agentcli_deferred_source")
        if source is None:
            return
        module.__dict__["_agentcli_deferred_source"] = None
        spec = module.__spec__
        origin = spec.origin if spec is not None and spec.origin else "<deferred>"
        exec(compile(source, origin, "exec"), module.__dict__)


def is_deferred(name: str = PACKAGE) -> bool:
    """Whether ``name`` is in ``sys.modules`` as a stand-in whose ``__init__`` has not run."""
    mod = sys.modules.get(name)
    return isinstance(mod, _Deferred) and mod.__dict__.get("_agentcli_deferred_source") is not None


def install(name: str = PACKAGE) -> bool:
    """Put the stand-in for ``name`` in ``sys.modules``; True if it is there (now or already).
    False means the normal import will happen: turned off, already imported, not installed,
    or an ``__init__`` that does more than import."""
    if os.environ.get(ENV_OFF, "").strip() not in ("", "0"):
        return False
    with _lock:
        if name in sys.modules:
            return isinstance(sys.modules[name], _Deferred)
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return False
        if spec is None or not spec.submodule_search_locations or not spec.origin \
                or not spec.origin.endswith("__init__.py"):
            return False
        try:
            with open(spec.origin, encoding="utf-8") as f:
                source = f.read()
        except OSError:
            return False
        if not _only_imports(source):
            return False
        module = _Deferred(name, None)
        module.__spec__ = spec
        module.__file__ = spec.origin
        module.__path__ = list(spec.submodule_search_locations)
        module.__package__ = name
        module.__loader__ = spec.loader
        module.__dict__["_agentcli_deferred_source"] = source
        sys.modules[name] = module
        return True


@contextlib.contextmanager
def deferred_model_builds() -> Iterator[None]:
    """Pydantic models created inside this block build their validators on first use
    (``defer_build=True`` inherited from ``BaseModel``'s config, then restored). The models
    behave the same; only the moment their schema is built moves. Models of other threads
    created meanwhile are deferred too, which is equally harmless."""
    if os.environ.get(ENV_OFF, "").strip() not in ("", "0"):
        yield
        return
    try:
        from pydantic import BaseModel
    except ImportError:
        yield
        return
    with _config_lock:
        saved = BaseModel.__dict__.get("model_config")
        if not isinstance(saved, dict) or "defer_build" in saved:
            yield
            return
        BaseModel.model_config = {**saved, "defer_build": True}
        try:
            yield
        finally:
            BaseModel.model_config = saved  # type: ignore[assignment]
