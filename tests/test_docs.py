"""The README and docs/ as a newcomer reads them: short enough, and every link leads somewhere."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_is_read_in_ten_minutes():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 12 * 1024, "move detail to docs/: the README says what WMS is, how to start, where things are"
    opening = [line.split("#")[0].strip() for line in readme.split("```")[1].splitlines()[1:]]
    assert opening == ["make demo", "make test"], "the README opens with the two commands"
    assert (ROOT / ".ci" / "run").read_text().splitlines()[-1] == "make test", ".ci/run runs the README's test command"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file(page):
    targets = [target for target in LINK.findall(page.read_text()) if not re.match(r"[a-z]+:|#", target)]
    missing = [target for target in targets if not (page.parent / target.split("#")[0]).exists()]
    assert not missing, f"{page.name} links to files that do not exist: {missing}"
