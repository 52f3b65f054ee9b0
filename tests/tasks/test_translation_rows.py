"""The stepper's row arrays (translation_steps._Rows): rows that leave are filled by the last
live ones, every group moved alike, whatever rows leave together."""

import numpy as np
import pytest

from service.tasks.translation_steps import _Rows


def _rows(n: int) -> _Rows:
    rows = _Rows()
    ids = np.arange(n)
    rows.append({"ints": np.stack([ids, ids * 10]),  # (2 members, n)
                 "past": [np.full((n, 3), i, dtype=np.float32) + ids[:, None] for i in range(2)]}, n)
    return rows


@pytest.mark.parametrize("gone", [[0], [5], [1, 3], [0, 1, 2], [4, 5], [0, 5], [1, 2, 3, 4, 5], list(range(6))])
def test_the_live_rows_stay_whole_and_contiguous(gone):
    rows = _rows(6)
    live = [i for i in range(6) if i not in gone]
    moves = rows.remove(gone)
    assert rows.n == len(live)
    order = list(range(6))
    for to, from_ in moves:  # what the caller does to its own list of sequences
        order[to] = order[from_]
    kept = order[: rows.n]
    assert sorted(kept) == live
    ints, past = rows["ints"], rows["past"]
    assert ints[0].tolist() == kept and ints[1].tolist() == [10 * i for i in kept]
    for member in range(2):
        assert past[member].tolist() == [[member + i] * 3 for i in kept]
