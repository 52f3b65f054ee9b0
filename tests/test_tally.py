"""service.tally: a Tally's flush leaves a histogram exactly as observing each value would."""

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service.tally import Tally, TurnDelta, TurnTally

BUCKETS = (0.001, 0.01, 0.1, 1)


def _samples(histogram) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for metric in histogram.collect() for s in metric.samples if not s.name.endswith("_created")}


def test_flush_matches_observe_per_value():
    values = [0.0, 0.0005, 0.001, 0.0011, 0.05, 0.1, 0.5, 1, 2, 30]
    direct = Histogram("direct", "d", ("m",), buckets=BUCKETS, registry=CollectorRegistry())
    tallied = Histogram("direct", "d", ("m",), buckets=BUCKETS, registry=CollectorRegistry())
    for v in values:
        direct.labels("a").observe(v)
    tally = Tally(tallied.labels("a"))
    for v in values[:4]:
        tally.observe(v)
    tally.flush()
    for v in values[4:]:
        tally.observe(v)
    assert tally.pending == len(values) - 4
    tally.flush()
    tally.flush()  # nothing pending: a no-op
    assert tally.pending == 0
    assert _samples(tallied) == _samples(direct)


def test_a_turn_tally_adds_its_observations_at_the_end_of_the_loop_turn():
    values = [0.0005, 0.02, 0.02, 3.0]
    direct = Histogram("direct", "d", ("m",), buckets=BUCKETS, registry=CollectorRegistry())
    tallied = Histogram("direct", "d", ("m",), buckets=BUCKETS, registry=CollectorRegistry())
    tally = TurnTally(tallied.labels("a"))

    async def turns() -> None:
        for v in values[:3]:  # one turn
            direct.labels("a").observe(v)
            tally.observe(v)
        assert tally.pending == 3 and _samples(tallied) != _samples(direct)  # not yet
        await asyncio.sleep(0)  # the turn ends: its flush runs
        assert tally.pending == 0 and _samples(tallied) == _samples(direct)
        direct.labels("a").observe(values[3])
        tally.observe(values[3])  # a later turn schedules its own flush
        await asyncio.sleep(0)
        assert _samples(tallied) == _samples(direct)

    asyncio.run(turns())


def test_a_count_is_that_many_observations_of_one_value():
    direct = Histogram("direct", "d", ("m",), buckets=BUCKETS, registry=CollectorRegistry())
    tallied = Histogram("direct", "d", ("m",), buckets=BUCKETS, registry=CollectorRegistry())
    tally = TurnTally(tallied.labels("a"))

    async def turn() -> None:
        for value, count in ((0.02, 5), (0.0005, 1), (2.0, 3)):
            for _ in range(count):
                direct.labels("a").observe(value)
            tally.observe(value, count)
        assert tally.pending == 9
        await asyncio.sleep(0)  # one flush for the turn, scheduled by its first observations

    asyncio.run(turn())
    assert _samples(tallied) == _samples(direct)


def test_a_turn_delta_adds_the_turns_net_amount_once_at_its_end():
    registry = CollectorRegistry()
    gauge = Gauge("running", "r", ("m",), registry=registry).labels("a")
    counter = Counter("generated", "g", ("m",), registry=registry).labels("a")
    running, generated = TurnDelta(gauge), TurnDelta(counter)

    async def turns() -> None:
        running.add(1)
        running.add(1)
        generated.add(5)
        assert gauge._value.get() == 0 and counter._value.get() == 0  # not yet
        await asyncio.sleep(0)  # the turn ends: one inc each
        assert gauge._value.get() == 2 and counter._value.get() == 5
        running.add(-1)
        running.add(1)  # a stream ends and another starts: net zero, nothing to add
        running.add(-2)
        generated.add(3)
        await asyncio.sleep(0)
        assert gauge._value.get() == 0 and counter._value.get() == 8
        assert running.pending == 0 and generated.pending == 0

    asyncio.run(turns())
    running.add(4)  # off the loop: at once
    assert gauge._value.get() == 4 and running.pending == 0
