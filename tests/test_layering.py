"""The request path can be drawn in one line, and the imports say so.

transport (``service.worker``, ``service.serving``) -> app (``service.app``) ->
gateway (``service.soap_gateway``) -> operation (``service.handlers``) ->
billing (``service.billing``).  Trust (``service.signing``) and the contract
(``service.wsdl``) are used from above and reach up to nothing.  There are no
import cycles among the service's modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parent.parent / "service"

#: Modules at the bottom that any layer may use: they import no other service module
#: (or only each other).
FOUNDATIONS = {
    "service",
    "service.errors",
    "service.namespaces",
    "service.settings",
    "service.cooperative",
    "service.spyne_compat",
    "service.client_address",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SERVICE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def service_imports(path: Path) -> set[str]:
    """Return the service modules a file imports (at any depth of the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    modules = {module_name(p) for p in SERVICE.rglob("*.py")}
    return {name for name in found if name in modules and name.startswith("service")}


GRAPH = {module_name(p): service_imports(p) for p in SERVICE.rglob("*.py")}


def reaches(start: str) -> set[str]:
    seen: set[str] = set()
    pending = [start]
    while pending:
        for target in GRAPH.get(pending.pop(), set()):
            if target not in seen:
                seen.add(target)
                pending.append(target)
    return seen


@pytest.mark.parametrize(
    ("package", "may_use"),
    [
        ("service.signing", {"service.signing"}),
        ("service.wsdl", {"service.wsdl"}),
        ("service.billing", {"service.billing"}),
        (
            "service.handlers",
            {"service.handlers", "service.billing", "service.wsdl", "service.audit",
             "service.registry",
             "service.identifiers", "service.statement", "service.status_messages",
             "service.xroad"},
        ),
    ],
)  # fmt: skip
def test_lower_layers_reach_up_to_nothing(package: str, may_use: set[str]) -> None:
    for module, imports in GRAPH.items():
        if module != package and not module.startswith(package + "."):
            continue
        for target in imports - FOUNDATIONS:
            assert any(target == p or target.startswith(p + ".") for p in may_use), (
                f"{module} imports {target}"
            )


@pytest.mark.parametrize("module", ["service.handlers.billing_statement", "service.soap_gateway"])
def test_the_gateway_and_the_operation_know_nothing_of_http_serving(module: str) -> None:
    assert not reaches(module) & {"service.app", "service.worker", "service.serving"}


def test_no_import_cycles() -> None:
    for module in GRAPH:
        assert module not in reaches(module) - {"service"}, f"{module} imports itself back"


def test_the_verification_page_reaches_down_to_the_registry_not_up_to_the_gateway() -> None:
    reached = reaches("service.verification.endpoint")
    assert "service.registry" in reached and "service.audit" in reached
    assert not reached & {
        "service.soap_gateway",
        "service.handlers",
        "service.handlers.billing_statement",
        "service.app",
        "service.worker",
        "service.serving",
    }
