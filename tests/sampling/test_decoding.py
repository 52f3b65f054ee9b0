"""service/sampling/decoding.py: greedy, sampled and beam decoding, driven by fake decoders."""

import numpy as np
import pytest

from service.sampling.decoding import FINISH_LENGTH, FINISH_STOP, decode, run

PAD, BOS, EOS = 0, 1, 2
V, S, P = 6, 3, 8


def table_decoder(table: dict[tuple, dict[int, float]]):
    """Next-token probabilities by prefix (tokens after BOS); unlisted prefixes end with EOS."""
    def step(tokens, position):
        logits = np.full((len(tokens), V), -30.0)
        for r, row in enumerate(tokens):
            prefix = tuple(int(t) for t in row[1:position + 1])
            for token, p in table.get(prefix, {EOS: 1.0}).items():
                logits[r, token] = np.log(p)
        attention = np.full((len(tokens), S), 1.0 / S, dtype=np.float32)
        return logits, attention
    return step


def options(**kw):
    return {"bos": BOS, "eos": EOS, "pad": PAD, "positions": P, "max_tokens": P - 1, **kw}


def test_greedy_takes_the_likeliest_token_each_step():
    step = table_decoder({(): {3: 0.6, 4: 0.4}, (3,): {5: 0.9, EOS: 0.1}})
    out = run(decode(**options()), step)
    assert out.best.tokens == [3, 5] and out.best.finish_reason == FINISH_STOP
    assert out.best.attention.shape == (3, S)  # a row per step: 3, 5 and EOS
    assert out.best.score == pytest.approx(np.log(0.6) + np.log(0.9) + 0.0, abs=1e-6)


def test_prefixes_are_right_padded_and_positions_grow():
    seen = []

    def step(tokens, position):
        seen.append((tokens.copy(), position))
        logits = np.zeros((1, V))
        logits[0, 3 if position < 2 else EOS] = 10
        return logits, np.zeros((1, S))

    run(decode(**options()), step)
    assert [p for _, p in seen] == [0, 1, 2]
    assert seen[2][0].tolist() == [[BOS, 3, 3, PAD, PAD, PAD, PAD, PAD]]


def test_max_tokens_ends_by_length():
    step = table_decoder({(): {3: 1.0}, (3,): {3: 1.0}, (3, 3): {3: 1.0}})
    out = run(decode(**options(max_tokens=2)), step)
    assert out.best.tokens == [3, 3] and out.best.finish_reason == FINISH_LENGTH


def test_beam_search_finds_what_greedy_misses():
    # Greedy takes 3 (0.6) then must pay 0.5 twice; 4 (0.4) then EOS (1.0) is likelier overall.
    table = {(): {3: 0.6, 4: 0.4}, (3,): {3: 0.5, 5: 0.5}, (3, 3): {EOS: 0.5, 5: 0.5},
             (3, 5): {EOS: 0.5, 4: 0.5}, (4,): {EOS: 1.0}}
    greedy = run(decode(**options()), table_decoder(table))
    beam = run(decode(**options(beam_width=3, nbest=2)), table_decoder(table))
    assert greedy.best.tokens[0] == 3
    assert beam.best.tokens == [4] and beam.best.score == pytest.approx(np.log(0.4), abs=1e-6)
    assert len(beam.nbest) == 2 and beam.nbest[0].score >= beam.nbest[1].score
    assert beam.best.score > greedy.best.score


def test_beam_width_one_is_greedy():
    table = {(): {3: 0.6, 4: 0.4}, (3,): {5: 0.7, EOS: 0.3}, (3, 5): {EOS: 1.0}}
    a = run(decode(**options()), table_decoder(table))
    b = run(decode(**options(beam_width=1)), table_decoder(table))
    assert a.best.tokens == b.best.tokens


def test_sampling_is_reproducible_with_a_seed():
    table = {(): {3: 0.34, 4: 0.33, 5: 0.33}}
    for prefix in [(3,), (4,), (5,)]:
        table[prefix] = {3: 0.3, 4: 0.3, 5: 0.2, EOS: 0.2}
    draw = [run(decode(**options(max_tokens=2, temperature=1.0, seed=s)), table_decoder(table))
            .best.tokens for s in range(40)]
    again = [run(decode(**options(max_tokens=2, temperature=1.0, seed=s)), table_decoder(table))
             .best.tokens for s in range(40)]
    assert draw == again
    assert len({tuple(d) for d in draw}) > 3  # different seeds, different samples


def test_top_k_one_and_tiny_top_p_are_greedy():
    table = {(): {3: 0.4, 4: 0.35, 5: 0.25}, (3,): {EOS: 0.6, 5: 0.4}}
    for kw in ({"top_k": 1}, {"top_p": 0.01}):
        for seed in range(10):
            out = run(decode(**options(temperature=1.0, seed=seed, **kw)), table_decoder(table))
            assert out.best.tokens == [3]


def test_the_caller_sees_each_chosen_token_at_the_next_step():
    step = table_decoder({(): {3: 1.0}, (3,): {4: 1.0}, (3, 4): {EOS: 1.0}})
    gen = decode(**options())
    call = next(gen)
    chosen = [call.chosen]
    try:
        while True:
            call = gen.send(step(call.tokens, call.position))
            chosen.append(call.chosen)
    except StopIteration as done:
        assert done.value.best.tokens == [3, 4]
    assert chosen == [[], [3], [3, 4]]


def test_bad_max_tokens_is_refused():
    with pytest.raises(ValueError):
        next(decode(**options(max_tokens=P)))
