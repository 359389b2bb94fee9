"""The layers of DESIGN §9, held by import-linter's contracts (``[tool.importlinter]`` in
pyproject.toml): the suite runs ``lint-imports`` so CI fails when an import crosses a layer."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports() -> str:
    beside = Path(sys.executable).with_name("lint-imports")
    found = str(beside) if beside.exists() else shutil.which("lint-imports")
    assert found, "lint-imports is not installed (pip install -e '.[dev]')"
    return found


def test_import_contracts_hold() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(  # noqa: S603 (our own tool, no input from outside)
        [_lint_imports(), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


# Template tag libraries are imports import-linter cannot see: a template may load only the
# libraries of its own app or of an app below it (and Django's own), never one above it.
LIBRARY_OWNER = {"console": "identity", "static": "django"}
APP_RANK = {"django": 0, "organizations": 1, "identity": 2, "impersonation": 3, "myaccount": 4}
TEMPLATE_DIRS = {
    "templates": "identity",  # the shared templates (base, includes) are rendered by identity's pages
    "identity/templates": "identity",
    # organizations' templates are its Console pages, which sit with identity's core (as
    # organizations.console does in the import contracts).
    "organizations/templates": "identity",
    "impersonation/templates": "impersonation",
    "myaccount/templates": "myaccount",
}


def test_templates_load_only_libraries_from_their_layer_or_below() -> None:
    load = re.compile(r"{%\s*load\s+([^%]+?)\s*%}")
    problems = []
    for directory, dir_app in TEMPLATE_DIRS.items():
        for path in sorted((ROOT / directory).rglob("*.html")) + sorted((ROOT / directory).rglob("*.txt")):
            app = dir_app
            if directory == "templates" and path.relative_to(ROOT / directory).parts[0] in APP_RANK:
                app = path.relative_to(ROOT / directory).parts[0]  # templates/myaccount/… is myaccount's
            for match in load.finditer(path.read_text()):
                for library in match.group(1).split():
                    owner = LIBRARY_OWNER.get(library)
                    if owner is None or APP_RANK[owner] > APP_RANK[app]:
                        problems.append(f"{path.relative_to(ROOT)} loads {library!r}")
    assert not problems, problems
