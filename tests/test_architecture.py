"""Architecture as tests (issue 21). The import-linter contracts in pyproject.toml hold: the pipeline
never imports streamlit nor ui/, ui/ never imports kafka itself, markets are pure, no import cycle
among the modules and subpackages within pipeline/ (nor within ui/), and the pipeline's layers. pages/ and Home.py are Streamlit scripts,
not a package import-linter can see: an AST walk checks the two rules there."""

from __future__ import annotations

import ast
import textwrap

from importlinter.cli import lint_imports
from support.base import ROOT
from support.pages import PAGES

CONTRACTS = 6  # in pyproject.toml [tool.importlinter]


def test_the_import_contracts_hold(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    code = lint_imports(no_cache=True, no_logo=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"Contracts: {CONTRACTS} kept, 0 broken." in out, out


def test_a_cycle_breaks_the_acyclic_contract(tmp_path, monkeypatch, capsys):
    """The contract type we rely on for "no cycle" does report one (a check that can fail)."""
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "health.py").write_text("from cyclic import runtime\n")
    (package / "runtime.py").write_text("def explain():\n    from cyclic import health\n")
    (tmp_path / ".importlinter").write_text(
        textwrap.dedent("""
            [importlinter]
            root_package = cyclic

            [importlinter:contract:acyclic]
            name = No cycle
            type = acyclic_siblings
            ancestors = cyclic
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert lint_imports(no_cache=True, no_logo=True) == 1
    assert "No cycle BROKEN" in capsys.readouterr().out


def imports(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_pages_never_import_kafka_and_pipeline_never_imports_streamlit():
    for path in [ROOT / "Home.py", *PAGES.values(), *(ROOT / "ui").glob("*.py")]:
        assert "kafka" not in imports(path), path
    for path in (ROOT / "pipeline").rglob("*.py"):
        assert "streamlit" not in imports(path), path
