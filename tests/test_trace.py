"""The trace: an inline call kept as one record reads back as its three ordinary events."""
from __future__ import annotations

from dolab import DurableObject, Lab, Response, trace
from dolab.trace import Trace


class Echo(DurableObject):
    async def ping(self, x):
        return x

    async def store(self, x):
        self.ctx.storage.put("x", x)
        return x

    async def fetch(self, request):
        return Response("ok")


def _lab() -> Lab:
    lab = Lab(path=None, clock="virtual")
    lab.bind("ECHO", Echo)
    return lab


def _rows(lab: Lab, request: str) -> list[tuple[int, str, dict]]:
    return [(e.seq, e.kind, e.detail) for e in lab.trace.events(request=request)]


async def test_an_inline_call_reads_back_as_queued_delivered_finished() -> None:
    lab = _lab()
    stub = lab.env.ECHO.getByName("a")
    await stub.ping(0)  # constructs: the next call takes the fast path
    before = len(lab.trace)
    assert await stub.ping(7) == 7
    [rid] = [e.request for e in lab.trace.events(trace.QUEUED)][-1:]
    rows = _rows(lab, rid)
    first = rows[0][0]
    assert rows == [
        (first, trace.QUEUED, {"type": "rpc", "method": "ping", "caller": None}),
        (first + 1, trace.DELIVERED, {"method": "ping"}),
        (first + 2, trace.FINISHED, {"result": "7"}),
    ]
    assert len(lab.trace) == before + 3 and len(list(lab.trace)) == len(lab.trace)
    assert lab.trace.requests()[-1] == rid and lab.trace.objects() == ["ECHO:a"]
    await stub.ping(8)  # the next event numbers on after the three
    assert lab.trace.events(request=lab.trace.requests()[-1])[0].seq == first + 3


async def test_records_made_while_the_handler_runs_stay_in_order() -> None:
    lab = _lab()
    stub = lab.env.ECHO.getByName("a")
    await stub.ping(0)
    await stub.store(5)
    rid = lab.trace.requests()[-1]
    kinds = [kind for _, kind, _ in _rows(lab, rid)]
    assert kinds == [trace.QUEUED, trace.DELIVERED, trace.WRITE, trace.HELD, trace.RELEASED,
                     trace.FINISHED]
    seqs = [e.seq for e in lab.trace]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_a_fast_path_fetch_is_queued_as_a_fetch() -> None:
    lab = _lab()
    stub = lab.env.ECHO.getByName("a")
    await stub.ping(0)
    await stub.fetch("http://x/")
    queued = lab.trace.events(trace.QUEUED)[-1]
    assert (queued.detail["type"], queued.detail["method"]) == ("fetch", "fetch GET /")


async def test_a_listener_sees_the_three_events_as_they_happen() -> None:
    lab = _lab()
    stub = lab.env.ECHO.getByName("a")
    await stub.ping(0)
    seen: list[tuple[int, str]] = []
    unsubscribe = lab.trace.subscribe(lambda e: seen.append((e.seq, e.kind)))
    await stub.ping(1)
    unsubscribe()
    assert [kind for _, kind in seen] == [trace.QUEUED, trace.DELIVERED, trace.FINISHED]
    assert [(e.seq, e.kind) for e in list(lab.trace)[-3:]] == seen


def test_a_full_ring_counts_the_events_it_drops() -> None:
    ring = Trace(lambda: 0.0, maxlen=2)
    delivery = ring.record_delivery("O", "r1", "rpc", "m", None)
    ring.record_finished("O", "r1", "1", delivery)  # one record, three events
    ring.record("O", trace.COMMIT)
    assert (len(ring), ring.dropped) == (4, 0)
    ring.record("O", trace.COMMIT)  # pushes the inline call's record out
    assert (len(ring), ring.dropped) == (2, 3)
    assert [e.kind for e in ring] == [trace.COMMIT, trace.COMMIT]


def test_a_clear_while_an_inline_call_runs_loses_nothing_after_it() -> None:
    ring = Trace(lambda: 0.0)
    delivery = ring.record_delivery("O", "r1", "rpc", "m", None)
    ring.clear()
    ring.record_finished("O", "r1", "1", delivery)
    assert [(e.seq, e.kind) for e in ring] == [(3, trace.FINISHED)]
    assert ring.dropped == 0


async def test_the_repr_counts_events_not_records() -> None:
    lab = _lab()
    stub = lab.env.ECHO.getByName("a")
    await stub.ping(0)
    await stub.ping(1)  # inline: one record, three events
    assert repr(lab.trace) == f"<Trace {len(list(lab.trace))} events, 1 objects>"
