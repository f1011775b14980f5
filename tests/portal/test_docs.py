"""The documentation stands alone: every link in README.md and docs/ leads somewhere in the repository, and nothing
points to files a clone does not have."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP_DIRS = {
    ".git",
    ".venv",
    "node_modules",
    "static",
    "artifacts",
    "staticfiles",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
}
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".html", ".cfg", ".ini", ".sh", ".lua", ".json"}
CLIMBING = re.compile(r"(?:\.\./)+[\w.-]+(?:/[\w.-]+)*")  # a relative path, which must stay inside the repository
MACHINE = re.compile(r"(?<![\w.])/work/[\w.-]+")  # a path on one machine, which a clone does not have
NOTE = re.compile(r"\b[A-Z][A-Z_]+\.md\b")  # README.md and the like: the repository must hold a file of that name


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in page.read_text().splitlines():
        if heading := re.match(r"#+ (.+)", line):
            found.add(re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-"))
    return found


def _links(page: Path) -> list[tuple[int, str]]:
    links, in_code = [], False
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
        if not in_code:
            links += [(number, target) for target in re.findall(r"\]\(([^)\s]+)\)", line)]
    return links


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_link_of_a_page_leads_to_a_file_and_heading_in_the_repository(page: Path) -> None:
    broken = []
    for number, target in _links(page):
        if re.match(r"[a-z]+:", target):
            continue  # http(s) and mailto links leave the repository on purpose
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if ROOT not in linked.parents or not linked.exists():
            broken.append(f"line {number}: {target} (no such file in the repository)")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"line {number}: {target} (no such heading)")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_nothing_in_the_repository_points_to_files_a_clone_does_not_have() -> None:
    files = [
        path
        for path in ROOT.rglob("*")
        if path.suffix in TEXT_SUFFIXES and not SKIP_DIRS.intersection(path.relative_to(ROOT).parts)
    ]
    names = {path.name for path in ROOT.rglob("*.md")}
    found = []
    for path in files:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            outside = [m for m in CLIMBING.findall(line) if ROOT not in (path.parent / m).resolve().parents]
            outside += MACHINE.findall(line) + [name for name in NOTE.findall(line) if name not in names]
            found += [f"{path.relative_to(ROOT)}:{number}: {where}" for where in outside]
    assert not found, "point to a page in docs/ instead: " + "; ".join(found)


def test_the_readme_stays_short_and_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 200, "move detail to docs/ and link it"
    assert "scripts/run\n" in readme and "scripts/test\n" in readme
