"""The layers of docs/ARCHITECTURE.md hold: `lint-imports` (the contracts in pyproject.toml) passes on the
package, and fails, naming the contract, when a module breaks one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first: the copy under test, not the installed package, is what grimp reads.
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_package_keeps_every_import_contract() -> None:
    done = _lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_a_lake_module_that_imports_dagster_or_the_client_breaks_the_contracts(tmp_path: Path) -> None:
    shutil.copytree(
        REPO / "osipi_dagster", tmp_path / "osipi_dagster", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "osipi_dagster" / "lake" / "shortcut.py").write_text(
        "import dagster\n\nfrom osipi_dagster.pi import PIWebAPIClient\n"
    )

    done = _lint_imports(tmp_path)

    assert done.returncode != 0
    assert "Only the Dagster wiring imports Dagster" in done.stdout and "BROKEN" in done.stdout
    assert "osipi_dagster.lake.shortcut -> dagster" in done.stdout
    assert "osipi_dagster.lake.shortcut -> osipi_dagster.pi" in done.stdout
