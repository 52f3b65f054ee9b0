"""Greedy, sampled and beam-search decoding of a sequence-to-sequence decoder, in numpy, as a
generator that asks its caller for each decoder step.

Shared by the service (which sends the steps of concurrent sequences through one batcher, so they
share decoder executions) and by training's evaluation. numpy only: no torch, no service imports.

    gen = decode(bos=1, eos=2, pad=0, positions=33, max_tokens=32)
    call = next(gen)                      # a StepCall: the prefixes to run the decoder on
    call = gen.send((logits, attention))  # logits (R, V) and cross-attention (R, S) at call.position
    ...                                   # until StopIteration.value holds the Decoded result

Every row of a call is at the same position (the beams of one request grow together); prefixes
are right-padded to `positions`, which the causal mask makes invisible to the rows' last token.
Sampling: temperature, then top-k, then top-p (nucleus, Holtzman et al. 2020). Beam search keeps
the beam_width best prefixes by total log-probability (Sutskever et al. 2014; Graves 2012).
"""

from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np

FINISH_STOP, FINISH_LENGTH = "stop", "length"


@dataclass
class StepCall:
    """One decoder run: next-token logits of every row at `position`, given its prefix."""

    tokens: np.ndarray  # (R, positions) int64: BOS, the chosen tokens, then pad
    position: int  # 0-based index of each row's last real token (the one to predict after)
    step: int  # how many tokens have been chosen so far
    chosen: list[int]  # the best row's tokens so far, BOS excluded (empty for beam search)


@dataclass
class Hypothesis:
    tokens: list[int]  # without BOS and EOS
    score: float  # total log-probability, EOS included when it ended with one
    finish_reason: str  # "stop": it chose EOS; "length": max_tokens reached first
    attention: np.ndarray  # (steps, S) the cross-attention row of each step


@dataclass
class Decoded:
    best: Hypothesis
    nbest: list[Hypothesis] = field(default_factory=list)  # best first; beam search only


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log p over the last axis, in float64 (R, V)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def sample_token(logp: np.ndarray, rng: np.random.Generator, temperature: float, top_k: int,
                 top_p: float) -> int:
    """One token from log-probs (V,): scaled by 1/temperature, cut to top-k, then to top-p."""
    z = logp / temperature
    order = np.argsort(-z, kind="stable")  # ties broken by index, so a seed reproduces exactly
    if top_k > 0:
        order = order[:top_k]
    p = np.exp(z[order] - z[order].max())
    p /= p.sum()
    if top_p < 1.0:  # the smallest prefix of the sorted tokens whose mass reaches top_p
        keep = int(np.searchsorted(np.cumsum(p), top_p) + 1)
        order, p = order[:keep], p[:keep] / p[:keep].sum()
    return int(order[rng.choice(len(order), p=p)])


def decode(*, bos: int, eos: int, pad: int, positions: int, max_tokens: int,
           temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
           beam_width: int = 1, nbest: int = 1) -> Generator[StepCall, tuple, Decoded]:
    """Yield StepCalls, receive (logits (R, V), attention (R, S)), return a Decoded.

    beam_width 1: one row, greedy (temperature 0, argmax, ties to the lowest index) or sampled
    with a seeded PCG64. beam_width > 1: beam search, deterministic; nbest <= beam_width.
    """
    if not 1 <= max_tokens < positions:
        raise ValueError(f"max_tokens must be in 1..{positions - 1}, not {max_tokens}")
    if beam_width > 1:
        return (yield from _beam(bos, eos, pad, positions, max_tokens, beam_width, nbest))
    rng = np.random.Generator(np.random.PCG64(seed))
    tokens = np.full((1, positions), pad, dtype=np.int64)
    tokens[0, 0] = bos
    chosen: list[int] = []
    rows: list[np.ndarray] = []
    score = 0.0
    for step in range(max_tokens):
        logits, attention = yield StepCall(tokens.copy(), step, step, list(chosen))
        logp = log_softmax(np.asarray(logits).reshape(1, -1))[0]  # (V,)
        rows.append(np.asarray(attention, dtype=np.float32).reshape(1, -1)[0])
        if temperature > 0:
            token = sample_token(logp, rng, temperature, top_k, top_p)
        else:
            token = int(np.argmax(logp))
        score += float(logp[token])
        if token == eos:
            return Decoded(Hypothesis(chosen, score, FINISH_STOP, np.stack(rows)))
        chosen.append(token)
        if step + 1 < positions:
            tokens[0, step + 1] = token
    return Decoded(Hypothesis(chosen, score, FINISH_LENGTH, np.stack(rows)))


def _beam(bos, eos, pad, positions, max_tokens, width, nbest) -> Generator[StepCall, tuple, Decoded]:
    """Beam search: every step, the `width` best one-token extensions of the live beams; a beam
    that chooses EOS is finished. Stops when `width` are finished and no live beam can beat the
    worst of them (log-probabilities only fall), or after max_tokens steps."""
    tokens = np.full((1, positions), pad, dtype=np.int64)
    tokens[0, 0] = bos
    scores = np.zeros(1)  # (R,) total log-prob of each live beam
    history = np.zeros((1, 0, 0), dtype=np.float32)  # (R, steps, S) attention rows
    finished: list[Hypothesis] = []
    for step in range(max_tokens):
        logits, attention = yield StepCall(tokens.copy(), step, step, [])
        logp = log_softmax(np.asarray(logits).reshape(len(tokens), -1))  # (R, V)
        attention = np.asarray(attention, dtype=np.float32).reshape(len(tokens), 1, -1)
        history = attention if step == 0 else np.concatenate([history, attention], axis=1)
        total = scores[:, None] + logp  # (R, V)
        flat = np.argsort(-total, axis=None, kind="stable")[: 2 * width]
        keep_rows, keep_tokens, keep_scores = [], [], []
        for index in flat:
            row, token = divmod(int(index), total.shape[1])
            value = float(total[row, token])
            if token == eos:
                finished.append(Hypothesis(tokens[row, 1:step + 1].tolist(), value, FINISH_STOP,
                                           history[row].copy()))
            elif len(keep_rows) < width:
                keep_rows.append(row)
                keep_tokens.append(token)
                keep_scores.append(value)
        finished.sort(key=lambda h: -h.score)
        finished = finished[:width]
        if not keep_rows or (len(finished) >= width and finished[-1].score >= keep_scores[0]):
            break  # keep_scores is sorted: its first is the best live beam
        tokens, history = tokens[keep_rows].copy(), history[keep_rows]
        if step + 1 < positions:
            tokens[:, step + 1] = keep_tokens
        scores = np.asarray(keep_scores)
    else:  # max_tokens reached: the live beams end by length, ranked with the finished ones
        finished += [Hypothesis(tokens[r, 1:max_tokens + 1].tolist(), float(scores[r]),
                                FINISH_LENGTH, history[r]) for r in range(len(tokens))]
        finished.sort(key=lambda h: -h.score)
    return Decoded(finished[0], finished[:nbest])


def run(gen: Generator[StepCall, tuple, Decoded],
        step: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]) -> Decoded:
    """Drive a decode() generator synchronously: (logits, attention) = step(tokens, position)."""
    try:
        call = next(gen)
        while True:
            call = gen.send(step(call.tokens, call.position))
    except StopIteration as done:
        return done.value
