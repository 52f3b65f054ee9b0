"""docs/RELIABILITY.md's soak runs: the totals its prose quotes are those of the run's own tables,
as bench/soak.py printed them (a headline once said 215,544 over tables of 215,549)."""

import re

from tests.conftest import ROOT

DOC = (ROOT / "docs" / "RELIABILITY.md").read_text()
SOAK = DOC[DOC.index("\n## Soak"):].split("\n## ")[1]
RUNS = [run for run in SOAK.split("\n### ")[1:] if "| kind | status | count | expected |" in run]
MINUTE_ROW = re.compile(r"^\| (\d+) \| (\d+) \| (\d+) \| [\d.]+ \|", re.MULTILINE)
KIND_ROW = re.compile(r"^\| \w+ \| \d+ \| (\d+) \| (?:yes|\*\*no\*\*) \|$", re.MULTILINE)


def test_each_soak_run_quotes_the_total_of_its_tables():
    assert len(RUNS) >= 2
    for run in RUNS:
        title = run.splitlines()[0]
        answers = sum(int(count) for count in KIND_ROW.findall(run))
        per_minute = sum(int(requests) for _, requests, _ in MINUTE_ROW.findall(run))
        unexpected = sum(int(u) for _, _, u in MINUTE_ROW.findall(run))
        # A run's table may leave out the answers that finished after its last minute, and say so.
        assert per_minute == answers or "holds the last" in run, title
        assert f"{answers:,}" in run.replace("Answers: ", ""), f"{title}: the total of {answers:,} is not quoted"
        assert unexpected == 0 or f"{unexpected} unexpected" in run, title
