"""The core's pushed streams (DataPlane.generate_stream(...).push): a translation's events go to
its consumer from the decoder step that makes them, as the iterated stream gives them; a
consumer that fails leaves alone, and the sequences that share its steps go on."""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from service.dataplane import DataPlane
from service.repository import Registry
from service.settings import Settings
from service.tasks.translation import TextGeneration, Token

ROOT = Path(__file__).resolve().parents[2]
MODEL = "en-fr-numbers"
TEXTS = ["twelve", "seven hundred and ninety-seven thousand, seven hundred and ninety-seven", "eighty",
         "four hundred thousand and one"]

pytestmark = pytest.mark.skipif(not (ROOT / "models" / MODEL).is_dir(), reason="models/en-fr-numbers is not trained")


@pytest.fixture(scope="module")
def dataplane():
    with ThreadPoolExecutor(2) as executor:
        registry = Registry(Settings(model_repository=ROOT / "models", providers=["CPUExecutionProvider"],
                                     model_control_mode="explicit"), executor)
        yield DataPlane(registry)  # the model is loaded inside the test's event loop


async def _iterated(dataplane: DataPlane, text: str) -> list:
    _, events = dataplane.generate_stream(dataplane.model(MODEL), {"text_input": text})
    return [event async for event in events]


async def _pushed(dataplane: DataPlane, text: str, fail_at: int | None = None) -> list:
    """The events pushed to a consumer (which raises at its token `fail_at`), once it ends."""
    got, ended = [], asyncio.get_running_loop().create_future()
    _, events = dataplane.generate_stream(dataplane.model(MODEL), {"text_input": text})
    assert events.pushable

    def deliver(event, error):
        if fail_at is not None and isinstance(event, Token) and event.index == fail_at:
            ended.set_result(None)
            raise RuntimeError("a consumer's own bug")
        got.append(event if error is None else error)
        if (error is not None or event.final) and not ended.done():
            ended.set_result(None)

    stream = events.push(deliver)
    await ended
    stream.leave()
    return got


def test_pushed_events_are_the_iterated_ones_and_a_failing_consumer_leaves_alone(dataplane, caplog):
    async def run():
        await dataplane.registry.load(MODEL)
        alone = [await _iterated(dataplane, t) for t in TEXTS]
        with caplog.at_level(logging.ERROR):
            together = await asyncio.wait_for(asyncio.gather(  # a stepper that died would leave them waiting
                *(_pushed(dataplane, t) for t in TEXTS), _pushed(dataplane, TEXTS[1], fail_at=1),
                *(_iterated(dataplane, t) for t in TEXTS)), 60)
        model = dataplane.model(MODEL)
        for _ in range(50):  # the failed one leaves before the next step
            if model.stepper.running == 0:
                break
            await asyncio.sleep(0.01)
        return alone, together, model.stepper.running

    alone, together, running = asyncio.run(run())
    pushed, failed, iterated = together[:4], together[4], together[5:]
    for solo, push, again in zip(alone, pushed, iterated, strict=True):
        assert isinstance(solo[-1], TextGeneration) and solo[-1].finish_reason == "stop"
        assert [_plain(e) for e in push] == [_plain(e) for e in solo] == [_plain(e) for e in again]
    assert [e.index for e in failed] == [0]  # its first token, then its consumer failed
    assert running == 0
    assert "a sequence's consumer failed" in caplog.text


def _plain(event):
    if isinstance(event, Token):
        return ("token", event.index, event.token, event.text_output)
    return ("done", event.text_output, event.finish_reason, tuple(event.tokens))
