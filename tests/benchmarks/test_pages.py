"""docs/benchmarks.md is generated from benchmarks/results: it must be current, and carry every result with its date."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import pages


def test_the_benchmarks_page_is_what_the_results_give():
    assert pages.main(["--check"]) == 0, "run: python benchmarks/pages.py"


def test_every_result_is_on_the_page_with_its_date():
    results = pages.load_results()
    page = pages.render(results)
    for name, result in results.items():
        assert f"`{name}`" in page
        records = result if isinstance(result, list) else [result]
        assert all(pages.when(record) != "?" for record in records), f"{name} says not when it was measured"


def test_a_new_kind_of_result_gets_a_table_of_its_figures(tmp_path):
    (tmp_path / "queue-depth.json").write_text('{"measured": "2026-12-05T20:00:00+00:00", "queue": {"p95": 3.5}}')
    page = pages.render(pages.load_results(tmp_path))
    assert "### `queue-depth.json`, 2026-12-05 20:00" in page and "| `queue.p95` | 3.5 |" in page
