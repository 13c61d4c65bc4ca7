"""pyproject.toml and environment.yml agree; the README commands are the contract."""

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
# Package names differ between PyPI and conda for a few packages.
CONDA_NAMES = {"torch": "pytorch", "pillow": "pillow"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower()


def _pyproject_packages() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        names |= {_name(r) for r in extra if not r.startswith(project["name"])}
    return {CONDA_NAMES.get(n, n) for n in names}


def _conda_packages() -> set[str]:
    names, in_dependencies = set(), False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if re.match(r"^\S", line):  # a top-level key: name, channels, dependencies
            in_dependencies = line.startswith("dependencies:")
            continue
        m = re.match(r"^\s{2}-\s+([A-Za-z0-9_.-]+)", line)
        if in_dependencies and m and m.group(1) not in ("python", "pip"):
            names.add(m.group(1).lower())
    return names


def test_environment_yml_agrees_with_pyproject():
    assert _pyproject_packages() == _conda_packages()


def test_core_dependencies_are_the_design_cards():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    assert core == {"torch", "numpy", "scipy", "matplotlib", "pillow", "tqdm"}
    assert "torchvision" not in _pyproject_packages()


def test_readme_quick_start_has_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e . && python -m toy_gan.anomaly" in readme
    assert 'pip install -e ".[test]" && pytest' in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e ".[test]"' in ci and "pytest" in ci


def test_every_lesson_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    for nb in sorted((ROOT / "lessons").glob("*.ipynb")):
        assert nb.name in readme, f"{nb.name} missing from the README's lesson table"
