"""Spyne 2.14 on Python 3.12 and later.

Spyne 2.14 (its newest release) bundles an old ``six`` whose lazy
``six.moves`` modules are served by an import hook that has only
``find_module``, which Python 3.12 no longer calls: ``import spyne`` fails
with "No module named 'spyne.util.six.moves'".  :func:`install` puts a
finder in front that asks that same hook through the interface 3.12 uses, so
Spyne's own ``six`` serves its moves unchanged.  It must run before Spyne
is first imported (``service/__init__.py`` calls it).  Remove this module
when a Spyne release fixes arskom/spyne#700.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Any

_MOVES = "spyne.util.six.moves"


class _BundledSixLoader(importlib.abc.Loader):
    def __init__(self, importer: Any) -> None:
        self.importer = importer

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self.importer.load_module(spec.name)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the bundled ``six`` built the module in :meth:`create_module`."""


class BundledSixMovesFinder(importlib.abc.MetaPathFinder):
    """Find ``spyne.util.six.moves`` and its submodules through the bundled ``six``'s hook."""

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _MOVES and not fullname.startswith(_MOVES + "."):
            return None
        importer = getattr(sys.modules.get("spyne.util.six"), "_importer", None)
        if importer is None or importer.find_module(fullname) is None:
            return None
        return importlib.util.spec_from_loader(
            fullname, _BundledSixLoader(importer), is_package=fullname == _MOVES
        )


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once) when this Python needs it."""
    if sys.version_info < (3, 12):
        return
    if not any(isinstance(f, BundledSixMovesFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, BundledSixMovesFinder())
