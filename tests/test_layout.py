"""The house rules of ../shared/DESIGN.md and the README's Layout, checked on the code: which part may import
which, where TensorFlow may be imported, and that the PACS bridge and the client read no job tables.
Every import counts, also those inside functions."""
import ast
from pathlib import Path

import pytest

from tests.helpers import REPO

PARTS = ("shared", "web", "worker", "training", "pacs", "client")
# What each part may import of ours (besides itself). training imports worker/ for its runtimes only: an
# optimised variant must be checked with the code that will serve it (README, Layout).
ALLOWED = {
    "shared": set(),
    "web": {"shared"},
    "worker": {"shared"},
    "training": {"shared", "worker"},
    "pacs": {"shared", "client"},
    "client": set(),
}
HEAVY = {"tensorflow", "keras", "jax", "jaxlib", "torch", "openvino"}  # model runtimes: worker/ and training/ only
# The tables the PACS bridge may read through the ORM: its own cursor and instances. Jobs and their results
# reach it through the API, as its account sees them.
PACS_ORM_NAMES = {"PacsCursor", "PacsInstance", "utcnow"}


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names imported from it, line) for every absolute import in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [alias.name for alias in node.names], node.lineno))
    return found


def files_of(part: str) -> list[Path]:
    return sorted(p for p in (REPO / part).rglob("*.py") if "migrations/versions" not in str(p))


@pytest.mark.parametrize("part", PARTS)
def test_each_part_imports_only_what_the_design_allows(part):
    broken = []
    for path in files_of(part):
        for module, _, line in imports(path):
            top = module.split(".")[0]
            if top in PARTS and top != part and top not in ALLOWED[part]:
                broken.append(f"{path.relative_to(REPO)}:{line} imports {module}")
            if top in HEAVY and part not in ("worker", "training"):
                broken.append(f"{path.relative_to(REPO)}:{line} imports {module} (model runtimes: worker/ and training/ only)")
    assert not broken, "\n".join(broken)


def test_the_pacs_bridge_and_the_client_read_no_job_tables():
    broken = []
    for path in files_of("pacs") + files_of("client"):
        for module, names, line in imports(path):
            if module == "shared.db.models" and set(names) - PACS_ORM_NAMES:
                broken.append(f"{path.relative_to(REPO)}:{line} imports {sorted(set(names) - PACS_ORM_NAMES)}")
            if module.startswith("shared.jobs") or module == "web.queries":
                broken.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert not broken, "\n".join(broken)


def test_shared_holds_subpackages_not_a_flat_list():
    flat = sorted(p.name for p in (REPO / "shared").glob("*.py") if p.name != "__init__.py")
    assert flat == [], f"modules directly in shared/ (put each in the subpackage that changes with it): {flat}"


def test_the_rules_catch_a_forbidden_import(tmp_path):
    """The walk sees imports inside functions too (a guard against a check that checks nothing)."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from worker import engine\n    import tensorflow as tf\n")
    assert [(m, line) for m, _, line in imports(sample)] == [("worker", 2), ("tensorflow", 3)]
