"""python-xmlsec, imported once, as an untyped module.

python-xmlsec 1.3.17 ships type stubs that lack the ``Transform`` and
``KeyFormat`` constants the C extension has, so mypy rejects correct code.
The rest of the package imports ``xmlsec`` from here, typed as ``Any``.
"""

from __future__ import annotations

import importlib
from typing import Any

xmlsec: Any = importlib.import_module("xmlsec")
