"""The reader against every order in which three concurrent batches can be written, on a fake
consumer that answers like the embedded broker (tests/replay/tansu_fake.py)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from aiokafka import TopicPartition

from tests.replay.tansu_fake import Batch, FakeLog, TansuLikeConsumer
from worker.replay.history import ReadOptions, Window, _settling, read
from worker.replay.reading import Cursor, Fetched, advance, start

SINCE = 1_000_000
TP = TopicPartition("service.starting", 0)
ORDERS = list(itertools.permutations(range(3)))


def _consumer(order: tuple[int, ...], written_before: int) -> TansuLikeConsumer:
    # producer timestamps inside the window, in no particular order across batches
    batches = [Batch(base=5 * i, timestamps=tuple(SINCE + 100 * (3 - i) + k for k in range(5)))
               for i in range(3)]  # fmt: skip
    log = FakeLog(tp=TP, batches=batches, order=order, clock_ms=SINCE + 10)
    for _ in range(written_before):
        log.tick()
    return TansuLikeConsumer(logs={TP: log})


@pytest.mark.parametrize("written_before", [0, 1, 2, 3])
@pytest.mark.parametrize("order", ORDERS, ids=["".join(map(str, o)) for o in ORDERS])
async def test_every_record_whatever_the_write_order(
    order: tuple[int, ...], written_before: int
) -> None:
    consumer = _consumer(order, written_before)
    history = await read(consumer, {TP.topic: Window(SINCE, SINCE + 10_000)}, ReadOptions())
    assert [r.offset for r in history.records] == list(range(15))
    assert history.gaps == ()


async def test_a_record_far_past_the_window_does_not_end_the_partition() -> None:
    """Producer timestamps are not ordered within a partition: a clock hours ahead in one batch
    must not hide the in-window records after it."""
    batches = [Batch(base=0, timestamps=(SINCE + 100, SINCE + 5 * 3_600_000)),
               Batch(base=2, timestamps=(SINCE + 200, SINCE + 300))]  # fmt: skip
    log = FakeLog(tp=TP, batches=batches, order=(0, 1), clock_ms=SINCE)
    log.tick()
    log.tick()
    history = await read(TansuLikeConsumer(logs={TP: log}), {TP.topic: Window(SINCE, SINCE + 1000)},
                         ReadOptions())  # fmt: skip
    assert [r.offset for r in history.records] == [0, 2, 3]


@pytest.mark.parametrize(("order", "gap"), [((0, 2), (5, 10)), ((0, 1), (10, 15))],
                         ids=["a hole in the middle", "a hole at the end"])  # fmt: skip
async def test_offsets_never_written_are_reported_as_a_gap(
    order: tuple[int, ...], gap: tuple[int, int]
) -> None:
    """A batch whose offsets were handed out and never written (a failed write) cannot stop the
    reader forever, nor vanish: it becomes a gap the audit reports."""
    consumer = _consumer(order, written_before=0)
    history = await read(consumer, {TP.topic: Window(SINCE, SINCE + 10_000)},
                         ReadOptions(gap_wait_ms=50, fetch_timeout_ms=1))  # fmt: skip
    assert [r.offset for r in history.records] == [o for o in range(15) if not gap[0] <= o < gap[1]]
    assert [(g.first, g.end) for g in history.gaps] == [gap]
    assert history.gaps[0].position == f"service.starting:0:{gap[0]}-{gap[1] - 1}"


def _fetched(
    offsets: tuple[int, ...], highwater: int | None, position: int, now_ms: int = 0
) -> Fetched:
    return Fetched(offsets=offsets, highwater=highwater, position=position, now_ms=now_ms)


@pytest.mark.parametrize(
    ("cursor", "fetched", "trusted", "next_offset", "keep", "seek", "gap", "done"),
    [
        (start(0), _fetched((0, 1, 2), 3, 3), False, 3, {0, 1, 2}, None, None, True),
        (start(0), _fetched((5, 6), 10, 7), False, 0, set(), 0, None, False),  # hole 0-4: again
        (start(0), _fetched((0, 1, 5), 10, 6), False, 2, {0, 1}, 2, None, False),
        (replace(start(2), waiting_since_ms=0), _fetched((5,), 10, 6, now_ms=100), False,
         5, set(), 5, (2, 5), False),  # waited long enough: 2-4 is a gap
        (replace(start(2), waiting_since_ms=0), _fetched((), 10, 2, now_ms=100), False,
         10, set(), 10, (2, 10), True),  # a hole at the end
        (start(0), _fetched((), None, 0), False, 0, set(), None, None, False),  # no answer yet
        (start(0), _fetched((), 0, 0), False, 0, set(), None, None, True),  # an empty partition
        (start(0), _fetched((5, 6), 10, 7), True, 7, {5, 6}, None, None, False),  # trusted
        (start(4), _fetched((4, 9), 10, 10), True, 10, {4, 9}, None, None, True),
    ],
)  # fmt: skip
def test_the_reader_s_decisions(cursor: Cursor, fetched: Fetched, trusted: bool, next_offset: int,
                                keep: set[int], seek: int | None, gap: tuple[int, int] | None,
                                done: bool) -> None:  # fmt: skip
    step = advance(cursor, fetched, trusted=trusted, gap_wait_ms=100)
    assert (step.cursor.next_offset, set(step.keep), step.seek, step.gap, step.cursor.done) == (
        next_offset,
        keep,
        seek,
        gap,
        done,
    )


def _round_34(stale_for_ms: int) -> TansuLikeConsumer:
    """The lost request as it was seen (demo audit step, round 34 of 100): 102 records of earlier
    rounds, then three replicas' requests at once (offsets 102-104), all acknowledged; the
    broker's fetches then answered an end of 104 and served 0-103 only, for ``stale_for_ms``."""
    batches = [Batch(base=o, timestamps=(SINCE + o,)) for o in range(105)]
    log = FakeLog(tp=TP, batches=batches, order=range(105), clock_ms=SINCE)
    for _ in range(105):
        log.tick()
    return TansuLikeConsumer(logs={TP: log}, ms_per_call=10, stale={TP: (104, stale_for_ms)})


@pytest.mark.parametrize(("stale_for_ms", "found"), [(0, 105), (5_000, 105), (7_000, 104)],
                         ids=["fresh", "stale for 5 s", "stale for longer than the settle"])  # fmt: skip
async def test_a_stale_end_does_not_finish_a_partition(stale_for_ms: int, found: int) -> None:
    """Right after concurrent writes the embedded broker can answer an end below records it has
    acknowledged (for 5 s, its cache). The reader before this fix took that end and finished
    without offset 104; now an end finishes a partition only once reported ``settle_ms`` after
    the read began (a broker that stays stale longer still loses it: the last case)."""
    consumer = _round_34(stale_for_ms)
    options = ReadOptions(settle_ms=6_000, clock=consumer.clock)
    history = await read(consumer, {TP.topic: Window(SINCE, 2**62)}, options)
    assert [r.offset for r in history.records] == list(range(found))
    assert history.gaps == ()


@pytest.mark.parametrize(
    ("until_ago_ms", "trusted", "settling"),
    [(-60_000, False, 6_000), (0, False, 6_000), (2_000, False, 4_000), (6_000, False, 0),
     (3_600_000, False, 0), (-60_000, True, 0)],
)  # fmt: skip
def test_how_long_a_read_settles(until_ago_ms: int, trusted: bool, settling: int) -> None:
    """A window that ended ``settle_ms`` before the read holds records written before the
    broker's end could lag; a window still open must wait the whole ``settle_ms``."""
    wall = 1_800_000_000_000
    options = ReadOptions(trusted=trusted, settle_ms=6_000)
    assert _settling(Window(0, wall - until_ago_ms), wall, options) == settling
