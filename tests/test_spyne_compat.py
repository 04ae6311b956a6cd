"""The shim that lets Spyne 2.14's bundled six serve its moves on Python 3.12+."""

from __future__ import annotations

import importlib
import sys

import pytest

from service.spyne_compat import BundledSixMovesFinder, install


def test_install_puts_the_finder_first_once_where_python_needs_it() -> None:
    install()
    install()
    finders = [f for f in sys.meta_path if isinstance(f, BundledSixMovesFinder)]
    assert len(finders) == (1 if sys.version_info >= (3, 12) else 0)
    if finders:
        assert isinstance(sys.meta_path[0], BundledSixMovesFinder)


@pytest.mark.parametrize(
    ("name", "attribute"),
    [
        ("spyne.util.six.moves", "collections_abc"),
        ("spyne.util.six.moves.collections_abc", "MutableSet"),
        ("spyne.util.six.moves.urllib.parse", "quote"),
    ],
)
def test_the_finder_serves_the_bundled_moves(name: str, attribute: str) -> None:
    import spyne.util.six  # noqa: F401  (the bundled six registers its hook)

    spec = BundledSixMovesFinder().find_spec(name)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    assert hasattr(module, attribute)


def test_the_finder_leaves_other_names_alone() -> None:
    assert BundledSixMovesFinder().find_spec("json") is None
    assert BundledSixMovesFinder().find_spec("spyne.util.six") is None
    assert BundledSixMovesFinder().find_spec("spyne.util.six.moves.no_such_move") is None
