"""docs/TASKS.md shows what the committed models answer: every example is run against a real
server on models/ and must print exactly what the doc says (docs/tasks_doc.py has the convention)."""

import shutil

import pytest

from docs import tasks_doc
from tests.conftest import ROOT

MISSING = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"docs/TASKS.md's commands need {', '.join(MISSING)} (deploy/test-tools.sh installs them)")

REGENERATE = "regenerate with `.venv/bin/python -m docs.tasks_doc` and review the diff"


@pytest.fixture(scope="module")
def url(tmp_path_factory, module_server) -> str:
    """The committed models, linked into a tmp repository (the server's log goes beside it)."""
    repo = tmp_path_factory.mktemp("tasks-doc") / "models"
    repo.mkdir()
    for model in sorted((ROOT / "models").iterdir()):
        if model.is_dir():
            (repo / model.name).symlink_to(model, target_is_directory=True)
    return module_server(repo)


def test_every_answer_in_tasks_md_is_what_the_server_answers(url):
    outcome = tasks_doc.run(tasks_doc.DOC, url)
    assert len(outcome.examples) >= 20 and all(e.answer or not answer for e, answer in outcome.examples)
    problems = tasks_doc.problems(tasks_doc.DOC, outcome)
    assert not problems, f"docs/TASKS.md is stale ({REGENERATE}):\n\n" + "\n\n".join(problems)


SAMPLE = """# A doc

```sh
SEED=7
```

```sh
curl -s localhost:8000/v2/models/moons-flow/generate -d "{\\"num_samples\\": 2, \\"seed\\": $SEED}" | jq '{seed, n: (.samples | length)}'
```
```json
{"seed": 7, "n": 3}
```

```sh
curl -s -o /dev/null -w '%{http_code}\\n' localhost:8000/v2/health/ready
```
```text varies
503
```

```python
print("not run")
```
"""


def test_check_finds_a_wrong_answer_and_writing_fixes_it(url, tmp_path):
    doc = tmp_path / "SAMPLE.md"
    doc.write_text(SAMPLE)
    outcome = tasks_doc.run(doc, url)
    assert [e.command.start + 1 for e, _ in outcome.examples] == [7, 14]
    problems = tasks_doc.problems(doc, outcome)
    assert len(problems) == 1 and "SAMPLE.md:7" in problems[0] and '+{"seed": 7, "n": 2}' in problems[0]
    assert outcome.files == {}
    tasks_doc.write(doc, outcome)
    assert '{"seed": 7, "n": 2}' in doc.read_text() and "200\n```" in doc.read_text()  # varies: written
    assert "```text varies\n200\n```" in doc.read_text() and tasks_doc.problems(doc, tasks_doc.run(doc, url)) == []


def test_a_command_that_prints_without_an_answer_block_is_an_error(url, tmp_path):
    doc = tmp_path / "BAD.md"
    doc.write_text("```sh\ncurl -s localhost:8000/v2\n```\n\nprose\n")
    with pytest.raises(ValueError, match="BAD.md:1: prints an answer but has no"):
        tasks_doc.run(doc, url)


def test_json_answers_fit_the_width_and_keep_every_digit():
    value = {"predictions": [{"label": "9", "probability": 0.9970863330765578, "log_density": float("-inf"),
                              "row": list(range(40))}]}
    text = tasks_doc.pretty(value)
    assert max(len(line) for line in text.splitlines()) <= tasks_doc.WIDTH
    assert "0.9970863330765578" in text and "-Infinity" in text
    assert tasks_doc.pretty({"shape": [2, 1, 8, 8]}) == '{"shape": [2, 1, 8, 8]}'


def test_answers_match_but_for_the_last_float32_digits_of_their_decimals():
    written = '{"label": "9", "probability": 0.9970863330765578, "top_k": 2, "p": 1.8488556916246246e-07}'
    assert tasks_doc.same_answer(written, written.replace("0.9970863330765578", "0.997086333441347")
                                 .replace("1.8488556916246246e-07", "1.8488512842908213e-07"))
    assert not tasks_doc.same_answer(written, written.replace("0.9970863330765578", "0.9960863330765578"))
    assert not tasks_doc.same_answer(written, written.replace('"top_k": 2', '"top_k": 3'))  # integers exact
    assert not tasks_doc.same_answer(written, written.replace('"9"', '"8"'))
    assert not tasks_doc.same_answer(written, written.replace("0.9970863330765578", "0.9970863330765578, 0.5"))
