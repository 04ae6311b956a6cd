"""python-xmlsec, imported once, as an untyped module.

python-xmlsec 1.3.17 ships type stubs that lack the ``Transform`` and
``KeyFormat`` constants the C extension has, so mypy rejects correct code.
The tests import ``xmlsec`` from here, typed as ``Any`` (the service itself
does not use python-xmlsec: see service.signing.xmldsig).
"""

from __future__ import annotations

import importlib
from typing import Any

xmlsec: Any = importlib.import_module("xmlsec")
