"""Translation: a sequence-to-sequence model of an encoder and a decoder-step graph.

Greedy and sampled sequences are rows of one Stepper (translation_steps.py): each step is one
decoder call over every running sequence, with a key/value cache when the version has
decoder_cached.onnx (and cross_kv.onnx, the encoder with the cross-attention keys and values), so concurrent sequences share executions step by step (in-flight
batching): a new sequence joins at the next step, a finished one leaves at once. Beam search
runs service/sampling/decoding.py's loop over the full-prefix decoder, through its batcher.
Sources (and prefixes) are padded to the config's fixed lengths, so sequences at any position,
of any length, fit one batch; the masks in the graphs keep each row's result its own.
"""

import asyncio
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
from pydantic import Field

from service import metrics
from service.config import Vocabulary
from service.errors import InvalidInput
from service.runtime import TensorSpec
from service.sampling import decoding
from service.signature import check_inputs
from service.tally import TurnDelta, TurnTally
from service.tasks import positional
from service.tasks.base import ServedModel
from service.tasks.params import Params, Seed, validate
from service.tasks.tokens import MAX_CHARS, Tokenizer
from service.tasks.translation_steps import Sequence, Stepper, context_count


class TranslationParams(Params):
    """The `parameters` of a generate request (Triton's generate extension names)."""

    max_tokens: int | None = Field(None, ge=1, description="most output tokens (default and limit: "
                                   "the config's max_output_tokens)", examples=[20])
    temperature: float = Field(0.0, ge=0, le=10, description="0: greedy, deterministic; above: "
                               "sampling, reproducible with a seed")
    top_k: int = Field(0, ge=0, description="sampling from the k likeliest tokens (0: all)")
    top_p: float = Field(1.0, gt=0, le=1, description="sampling from the smallest set of "
                         "likeliest tokens whose probability reaches top_p")
    seed: int | None = Seed
    beam_width: int = Field(1, ge=1, description="above 1: beam search, the best beam returned")
    nbest: int = Field(1, ge=1, description="beam search: this many best beams with their "
                       "log-probabilities (at most beam_width)")
    stop: str | list[str] | None = Field(None, description="greedy and sampled decoding end once "
                                         "the output ends with one of these strings (kept in it)")
    attention: bool = Field(False, description="return the cross-attention weights (output "
                            "tokens x source tokens)")


_DEFAULTS = TranslationParams()  # shared by the plans of requests that give no parameters: never changed


class GenerateRequest(Params):
    text_input: str = Field(max_length=MAX_CHARS, description="English number words",
                            examples=["three hundred seventy-one thousand and ninety-eight"])
    # A factory, not an instance: pydantic deep-copies a model default at every validation
    # (10 µs of a request with no parameters; a new one costs 2).
    parameters: TranslationParams = Field(default_factory=TranslationParams)


@dataclass
class Plan:
    """A checked request: its source ids and the decoding options."""

    text_input: str
    source: list[int]
    params: TranslationParams
    max_tokens: int
    seed: int
    arrived: float = field(default_factory=time.perf_counter)

    @property
    def num_samples(self) -> int:  # DataPlane counts a stream's items by it
        return 1

    @property
    def format(self) -> str:  # the generate route renders a plan's events by it
        return "attention" if self.params.attention else "text"


@dataclass(slots=True)
class Token:
    """One output token of a stream, as soon as it is chosen."""

    index: int
    token: str
    text_output: str  # what it adds to the text (a leading space between words)
    attention: np.ndarray | None  # (S,) over the source tokens
    source_tokens: list[str] | None = None  # on the first token only, to label the attention
    ready: int = 0  # tokens chosen after this one, already waiting: its reader is that far behind
    final = False

    def tensors(self) -> dict[str, np.ndarray]:
        """The event as V2 outputs (gRPC's ModelStreamInfer), as the SSE event has it."""
        return {"text_output": _bytes([self.text_output])}

    def parameters(self) -> dict:
        return {"event": "token", "index": self.index, "token": self.token}


@dataclass
class TextGeneration:
    """The finished translation; the last event of a stream."""

    text_output: str
    finish_reason: str  # stop, length
    tokens: list[str]
    seed: int | None  # sampling only
    source_tokens: list[str]
    attention: np.ndarray | None = None  # (tokens, S)
    nbest: list[dict] = field(default_factory=list)
    final = True

    @property
    def samples(self) -> list[str]:  # DataPlane counts a generation's items by it
        return [self.text_output]

    def tensors(self) -> dict[str, np.ndarray]:
        """The last event of a tensor stream: like the SSE one, its text_output is empty (the
        tokens carried the text) and the whole output is the `output` parameter."""
        return {"text_output": _bytes([""]), "finish_reason": _bytes([self.finish_reason])}

    def parameters(self) -> dict:
        found = {"event": "done", "finish_reason": self.finish_reason, "tokens": len(self.tokens),
                 "output": self.text_output}
        if self.seed is not None:
            found["seed"] = self.seed
        return found


class TranslationModel(ServedModel):
    def __init__(self, name, version, config, graphs):
        super().__init__(name, version, config, graphs)
        self.encoder, self.decoder = graphs["encoder"], graphs["decoder"]
        positional.check(self.encoder, "encoder", inputs=1, outputs=1)
        positional.check(self.decoder, "decoder", inputs=4, outputs=2)
        if not isinstance(config.vocabulary, Vocabulary) or not config.max_input_tokens or not config.max_output_tokens:
            raise ValueError("a translation model needs vocabulary (source and target lists), "
                             "max_input_tokens and max_output_tokens in config.yaml")
        special = config.special_tokens
        self.pad, self.bos, self.eos = special.pad, special.bos, special.eos
        if max(self.bos, self.eos, self.pad) >= len(config.vocabulary.target):
            raise ValueError("special_tokens must be ids of the target vocabulary")
        classes = self.decoder.outputs[0].shape[-1]
        if classes > 0 and classes != len(config.vocabulary.target):
            raise ValueError(f"the decoder gives {classes} logits but the target vocabulary has "
                             f"{len(config.vocabulary.target)} tokens")
        self.tokens = Tokenizer(config.vocabulary.source, config.vocabulary.target, self.pad,
                                config.max_input_tokens)
        self.max_output_tokens = config.max_output_tokens
        self.positions = config.max_output_tokens + 1  # BOS + every output token
        self.max_beam_width = config.max_beam_width
        cached, self.cross_kv = graphs.get("decoder_cached"), graphs.get("cross_kv")
        if (cached is None) != (self.cross_kv is None):
            raise ValueError("decoder_cached and cross_kv go together: the cached step reads the "
                             "cross-attention keys and values that cross_kv computes")
        if cached is not None:
            _check_cached(cached, self.cross_kv, self.positions, config.max_input_tokens)
        self._labels = (name, str(version))
        # This version's series, looked up once (labels() takes a lock and a dict lookup), and
        # added to once per loop turn: a stream starts and ends on the loop.
        self._running = TurnDelta(metrics.RUNNING_SEQUENCES.labels(*self._labels))
        self._generated = TurnDelta(metrics.GENERATED_TOKENS.labels(*self._labels))
        # Observed on the event loop (by the stepper, all of a step's tokens at once; by beam
        # search, a token at a time): added to the histograms once per loop turn.
        self._latencies = (TurnTally(metrics.TIME_TO_FIRST_TOKEN.labels(*self._labels)),
                           TurnTally(metrics.INTER_TOKEN_LATENCY.labels(*self._labels)))
        self.stepper = Stepper(cached or self.decoder, self.cross_kv or self.encoder, cached is not None,
                               self.bos, self.eos, self.pad, self.positions, self._latencies)

    # ------------------------------------------------------------------ planning
    streams = True

    def plan(self, params: dict, stream: bool = False) -> Plan:
        text = params.get("text_input") if type(params) is dict and len(params) == 1 else None
        if type(text) is str and len(text) <= MAX_CHARS:
            # The shape nearly every request has, {"text_input": "..."}: exactly what validating
            # it as a GenerateRequest accepts, without running pydantic's validator, which runs
            # with cold caches once per request (~9 µs of a stream at 16 concurrent).
            return self.make_plan(text, _DEFAULTS)
        request = validate(GenerateRequest, params, "translation")
        return self.make_plan(request.text_input, request.parameters)

    def plan_from_tensors(self, inputs: dict[str, np.ndarray], parameters: dict) -> Plan:
        """ModelStreamInfer: one string in text_input; the decoding options as input tensors
        (as /infer takes them) or as request parameters (as Triton's vLLM backend takes them)."""
        texts = inputs["text_input"].reshape(-1)
        if len(texts) != 1:
            raise InvalidInput(f"a stream translates one string; text_input holds {len(texts)}")
        given = self._tensor_params(inputs)
        both = sorted(set(given) & set(parameters))
        if both:
            raise InvalidInput(f"{', '.join(both)} given both as an input tensor and as a parameter")
        params = validate(TranslationParams, {**parameters, **given}, "translation")
        return self.make_plan(_text(texts[0], "text_input[0]"), params)

    @staticmethod
    def _tensor_params(inputs: dict[str, np.ndarray]) -> dict:
        """The decoding options sent as one-value input tensors."""
        values = {}
        for spec in _PARAM_TENSORS:
            if spec.name in inputs:
                value = inputs[spec.name].reshape(-1)
                if value.size != 1:
                    raise InvalidInput(f"input '{spec.name}' must hold one value")
                values[spec.name] = value[0].item()
        return values

    def make_plan(self, text, params: TranslationParams, where: str = "text_input") -> Plan:
        source = self.tokens.encode(text, where)
        max_tokens = params.max_tokens or self.max_output_tokens
        if max_tokens > self.max_output_tokens:
            raise InvalidInput(f"max_tokens {max_tokens} is over this model's max_output_tokens "
                               f"of {self.max_output_tokens}")
        if params.beam_width > self.max_beam_width:
            raise InvalidInput(f"beam_width {params.beam_width} is over this model's "
                               f"max_beam_width of {self.max_beam_width}")
        if params.nbest > params.beam_width:
            raise InvalidInput(f"nbest {params.nbest} is over beam_width {params.beam_width}")
        if params.beam_width > 1 and params.temperature > 0:
            raise InvalidInput("beam search is deterministic: use temperature 0 with beam_width > 1")
        stops = [params.stop] if isinstance(params.stop, str) else (params.stop or [])
        if any(not s for s in stops):
            raise InvalidInput("stop strings must not be empty")
        if stops and params.beam_width > 1:
            raise InvalidInput("stop applies to greedy and sampled decoding, not to beam search")
        seed = params.seed
        if seed is None:  # greedy and beam search draw nothing: no read of the OS's randomness
            seed = secrets.randbelow(2**63) if params.temperature > 0 else 0
        return Plan(text, source, params, max_tokens, seed)

    # ------------------------------------------------------------------ decoding
    async def generate(self, plan: Plan) -> TextGeneration:
        result = None
        async for event in self.stream(plan):  # to its end, so its bookkeeping runs now
            if isinstance(event, TextGeneration):
                result = event
        if result is None:
            raise RuntimeError("the decoder ended without a translation")
        return result

    def stream(self, plan: Plan) -> AsyncIterator[Token | TextGeneration]:
        """Token events as they are chosen, then the TextGeneration. Leaving early (a client
        that disconnects cancels the await) takes the sequence out before its next decoder step.
        A greedy or sampled stream can also be pushed (TokenStream.push)."""
        return self._beam(plan) if plan.params.beam_width > 1 else TokenStream(self, plan)

    def _start(self, plan: Plan) -> tuple[list[int], list[str]]:
        """A stream's source ids padded to max_input_tokens and its words; it counts as running
        from now."""
        self._running.add(1)
        return self.tokens.padded(plan.source), [self.tokens.source[i] for i in plan.source]

    async def _beam(self, plan: Plan):
        """Beam search: its beams are reordered every step, so it runs the full-prefix decoder
        (no cache to reorder), its rows still sharing the decoder's batcher with other requests."""
        padded, words = self._start(plan)
        source = np.array([padded], dtype=np.int64)  # (1, S)
        clock = _TokenClock(*self._latencies, plan.arrived)
        try:
            async for event in self._beam_search(plan, source, clock, words):
                yield event
        finally:
            self._running.add(-1)

    async def _beam_search(self, plan: Plan, source, clock, words):
        memory = (await positional.run(self.encoder, source))[0]
        p = plan.params
        n_source = len(plan.source)
        steps = decoding.decode(
            bos=self.bos, eos=self.eos, pad=self.pad, positions=self.positions,
            max_tokens=plan.max_tokens, beam_width=p.beam_width, nbest=p.nbest)
        call = next(steps)
        while True:
            rows = len(call.tokens)
            logits, attention = (await positional.run(
                self.decoder, call.tokens, np.full(rows, call.position, dtype=np.int64),
                np.repeat(memory, rows, axis=0), np.repeat(source, rows, axis=0)))[:2]
            try:
                call = steps.send((logits, attention))
            except StopIteration as done:
                result: decoding.Decoded = done.value
                break
        best = result.best
        for event in self._new_tokens(best.tokens, best.attention[:, :n_source], clock, words):
            yield event
        yield self._finished(plan, best.tokens, result, words)

    def _new_tokens(self, chosen: list[int], attention, clock, words):
        """Token events for a finished beam search's best beam (attention: its row per token)."""
        pieces = self.tokens.pieces(chosen)
        for i, token in enumerate(chosen):
            clock.tick()
            yield Token(i, self.tokens.target[token], pieces[i], attention[i], words if i == 0 else None)

    def _finished(self, plan: Plan, chosen: list[int], result: decoding.Decoded, words: list[str]) -> TextGeneration:
        """Beam search's translation: its best beam, and the n best when asked for."""
        best = result.best
        nbest = []
        if plan.params.nbest > 1:
            nbest = [{"text_output": self.tokens.decode(h.tokens), "log_probability": round(h.score, 4),
                      "finish_reason": h.finish_reason} for h in result.nbest]
        return self._generation(
            plan, self.tokens.decode(chosen), best.finish_reason, [self.tokens.target[i] for i in chosen], words,
            best.attention[: len(chosen), : len(plan.source)] if plan.params.attention else None, nbest)

    def _generation(self, plan: Plan, text: str, reason: str, tokens: list[str], words: list[str],
                    attention: np.ndarray | None, nbest: list[dict] | None = None) -> TextGeneration:
        """A finished translation, its tokens counted. words: the source's (the stream's own
        list, not a copy); attention: (tokens, source) when asked for, else None."""
        self._generated.add(len(tokens))
        seed = plan.seed if plan.params.temperature > 0 else None  # greedy and beam use none
        return TextGeneration(text, reason, tokens, seed, words, attention, nbest or [])

    # ------------------------------------------------------------------ V1 :predict
    async def predict(self, body: dict) -> list[dict]:
        request = validate(PredictRequest, body, "translation")
        params = TranslationParams(**request.model_dump(exclude={"instances"}))
        plans = [self.make_plan(text, params, f"instances[{i}]")
                 for i, text in enumerate(request.instances)]
        results = await asyncio.gather(*(self.generate(plan) for plan in plans))
        return [{"text_output": r.text_output, "finish_reason": r.finish_reason,
                 "tokens": len(r.tokens), **({"nbest": r.nbest} if r.nbest else {})}
                for r in results]

    # ------------------------------------------------------------------ V2 infer
    @property
    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec("text_input", "BYTES", (-1,)), *_PARAM_TENSORS]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec("text_output", "BYTES", (-1,)), TensorSpec("finish_reason", "BYTES", (-1,))]

    def check_inputs(self, inputs: dict[str, np.ndarray], datatypes: dict[str, str]) -> None:
        if "text_input" not in inputs:
            raise InvalidInput("missing input 'text_input' (BYTES [-1]): the strings to translate")
        text = inputs["text_input"]
        if text.ndim == 2 and text.shape[1] == 1:  # [N, 1], as Triton's LLM ensembles send it
            inputs["text_input"] = text.reshape(-1)
        specs = {s.name: s for s in self.inputs}
        check_inputs([specs[n] for n in inputs if n in specs], inputs, datatypes)
        unknown = [n for n in inputs if n not in specs]
        if unknown:
            raise InvalidInput(f"unknown input '{unknown[0]}'; the model's inputs are: {', '.join(specs)}")
        if not 1 <= len(inputs["text_input"]) <= MAX_STRINGS:
            raise InvalidInput(f"text_input holds {len(inputs['text_input'])} strings; give 1 to {MAX_STRINGS}")

    async def infer(self, inputs: dict[str, np.ndarray], output_names: list[str] | None) -> dict[str, np.ndarray]:
        params = validate(TranslationParams, self._tensor_params(inputs), "translation")
        texts = [_text(v, f"text_input[{i}]") for i, v in enumerate(inputs["text_input"])]
        plans = [self.make_plan(t, params, f"text_input[{i}]") for i, t in enumerate(texts)]
        results = await asyncio.gather(*(self.generate(plan) for plan in plans))
        return {"text_output": _bytes([r.text_output for r in results]),
                "finish_reason": _bytes([r.finish_reason for r in results])}

    def items(self, inputs: dict[str, np.ndarray]) -> int:
        return int(inputs["text_input"].size) if "text_input" in inputs else 1


class TextSequence:
    """What one greedy or sampled translation makes of its steps: a Token per step (its text),
    then the TextGeneration (stop strings, finish reason, score, attention map). The stepper
    hands it each step as it is chosen (`take`, the Sequence's sink); each event goes to
    `deliver(event, None)` at once, a failure to `deliver(None, error)`; `ended(error or None)`,
    if given, is called once just before the last event or the failure."""

    def __init__(self, model: "TranslationModel", plan: Plan, deliver, ended=None):
        self.model, self.plan, self.deliver, self.on_end = model, plan, deliver, ended
        p = plan.params
        self.stops = [p.stop] if isinstance(p.stop, str) else (p.stop or [])
        self.target = model.tokens.target
        self.chosen: list[int] = []
        self.chosen_words: list[str] = []
        # attention rows, when asked for (each its source's part): the last event's whole map
        self.rows: list[np.ndarray] | None = [] if p.attention else None
        self.n_source = len(plan.source)
        self.text, self.previous = "", None  # the text so far, as Tokenizer.decode would give it
        self.ended = False
        source, self.words = model._start(plan)
        # The stepper observes the token latencies, all of a step's at once, and hands each
        # step's attention row only to a sequence that reads it.
        self.seq = model.stepper.add(Sequence(source, plan.max_tokens, p.temperature, p.top_k, p.top_p, plan.seed,
                                              self.take, plan.arrived, attention=p.attention))

    def take(self, step, error: BaseException | None) -> None:
        if self.ended:
            return
        if error is not None:
            self.leave()
            if self.on_end is not None:
                self.on_end(error)
            self.deliver(None, error)
            return
        rows = self.rows
        attention = None
        if rows is not None:  # the whole map, for the last event
            attention = step.attention[: self.n_source]
            rows.append(attention)
        reason = step.finish_reason
        if reason != decoding.FINISH_STOP:  # EOS is not a token of the text
            chosen = self.chosen
            chosen.append(step.token)
            word = self.target[step.token]
            self.chosen_words.append(word)
            n = len(chosen)
            # a space before a word, unless it or the one before is a hyphen (Tokenizer.pieces)
            piece = word if n == 1 or word == "-" or self.previous == "-" else " " + word
            self.previous = word
            self.text += piece
            self.deliver(Token(n - 1, word, piece, attention, self.words if n == 1 else None), None)
            if self.stops and any(self.text.endswith(s) for s in self.stops):
                reason = decoding.FINISH_STOP
        if reason is not None:
            self.leave()
            generation = self.generation(reason)
            if self.on_end is not None:
                self.on_end(None)
            self.deliver(generation, None)

    def generation(self, reason: str) -> TextGeneration:
        """The translation from what the steps kept: the text and the words as they came, the
        attention rows of the output tokens (not the EOS's)."""
        attention = None
        if self.rows is not None:
            rows = self.rows[: len(self.chosen)]
            attention = np.stack(rows) if rows else np.zeros((0, self.n_source), np.float32)
        return self.model._generation(self.plan, self.text, reason, self.chosen_words, self.words, attention)

    def leave(self) -> None:
        """Out of the batch before its next step, however the stream ended (once)."""
        if not self.ended:
            self.ended = True
            self.seq.left = True
            self.model._running.add(-1)


class TokenStream:
    """A greedy or sampled translation's events, read one of two ways: `async for` (each event
    waits in a queue for its reader), or `push(deliver)`, where the stepper's step calls
    `deliver` with each event as it is chosen, so a consumer that only writes bytes (the HTTP
    fast path, service.http_stream) wakes no task per token. Either way the sequence starts
    when the reading does."""

    def __init__(self, model: "TranslationModel", plan: Plan):
        self.model, self.plan = model, plan

    def push(self, deliver, ended=None) -> TextSequence:
        """Start the sequence; its `leave()` takes it out of the batch (the reader has gone).
        `ended(error or None)`: called once, just before the last event or the failure."""
        return TextSequence(self.model, self.plan, deliver, ended)

    async def __aiter__(self):
        waiting: deque = deque()
        failed: list[BaseException] = []
        wake: list[asyncio.Future | None] = [None]

        def deliver(event, error) -> None:
            if error is not None:
                failed.append(error)
            else:
                waiting.append(event)
            if wake[0] is not None and not wake[0].done():
                wake[0].set_result(None)

        text = self.push(deliver)
        loop = asyncio.get_running_loop()
        try:
            while True:
                while not waiting:
                    if failed:
                        raise failed[0]
                    wake[0] = loop.create_future()
                    await wake[0]
                event = waiting.popleft()
                if isinstance(event, Token):
                    event.ready = len(waiting)  # chosen after it, already waiting: its reader is behind
                yield event
                if event.final:
                    return
        finally:
            text.leave()


MAX_STRINGS = 256  # one V2 request's strings: each is its own sequence of the running batch
_PARAM_TENSORS = (
    TensorSpec("max_tokens", "INT32", (1,)),
    TensorSpec("temperature", "FP32", (1,)),
    TensorSpec("top_k", "INT32", (1,)),
    TensorSpec("top_p", "FP32", (1,)),
    TensorSpec("seed", "INT64", (1,)),
    TensorSpec("beam_width", "INT32", (1,)),
)


class PredictRequest(TranslationParams):
    """KServe V1: {"instances": ["twelve", ...], <parameters>}, as the other tasks take them."""

    instances: list[str] = Field(min_length=1, max_length=MAX_STRINGS,
                                 description="English number words, one string per translation",
                                 examples=[["twelve", "nine hundred"]])


def _check_cached(cached, cross_kv, positions: int, source_width: int) -> None:
    """At load: decoder_cached takes token, position, source, cross_kv's arrays (an input per
    output, or the C arrays of its one packed output), then past arrays (batch, heads, slots,
    head dim) with a slot for every position, and gives logits, attention and one new array
    (batch, heads, head dim) per past one. A cross_kv whose source width is fixed takes
    max_input_tokens (the width every source is padded to)."""
    positional.check(cross_kv, "cross_kv", inputs=1, outputs=1)
    contexts = context_count(cross_kv)
    if contexts is None:
        raise ValueError(f"cross_kv ({cross_kv.file_name}) has one output of rank 5, packed (batch, C, "
                         f"heads, source, head dim), but C is not a fixed size: {list(cross_kv.outputs[0].shape)}")
    width = cross_kv.inputs[0].shape[-1] if cross_kv.inputs[0].shape else -1  # -1: not fixed
    if width > 0 and width != source_width:
        raise ValueError(f"cross_kv ({cross_kv.file_name}) takes sources {width} wide, but max_input_tokens "
                         f"is {source_width}: every source is padded to max_input_tokens")
    past = cached.inputs[3 + contexts:]
    if not past or len(cached.outputs) != 2 + len(past):
        raise ValueError(f"decoder_cached ({cached.file_name}) must take token, position, source, the "
                         f"{contexts} arrays of cross_kv and its past arrays, and give logits, attention "
                         f"and one new array per past one; it has {len(cached.inputs)} inputs and "
                         f"{len(cached.outputs)} outputs")
    for spec in past:
        if len(spec.shape) != 4 or spec.shape[2] < positions:
            raise ValueError(f"decoder_cached's past input '{spec.name}' must be (batch, heads, slots, "
                             f"head dim) with at least {positions} slots, not {list(spec.shape)}")


def _text(value, where: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{where} is not UTF-8 text") from None
    if isinstance(value, str):
        return value
    raise InvalidInput(f"{where} must be a string")


def _bytes(texts: list[str]) -> np.ndarray:
    out = np.empty(len(texts), dtype=object)
    out[:] = [t.encode("utf-8") for t in texts]
    return out


class _TokenClock:
    """Time to first token and inter-token latency of one sequence, into the histograms."""

    def __init__(self, ttft: TurnTally, itl: TurnTally, arrived: float):
        self._ttft, self._itl = ttft, itl  # the version's two histograms
        self._last: float | None = None
        self._arrived = arrived

    def tick(self) -> None:
        now = time.perf_counter()
        if self._last is None:
            self._ttft.observe(now - self._arrived)
        else:
            self._itl.observe(now - self._last)
        self._last = now
