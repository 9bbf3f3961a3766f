"""The KV API against a model (spec §5.2–5.3, B30–B44): random sequences of get, put, delete,
list, deleteAll and transactions (committed, rolled back, or raising) with random keys — unicode,
empty, and at the size limits — give the model's results, and the spec's errors at the limits,
on both backends.

The model is a plain dict read in code-point order (= UTF-8 byte order, B33). Operations run
inside the object through ``lab.run_in`` in random chunks (a chunk is one event; every storage
await in it is a turn of its own); after each chunk the committed storage (``lab.storage_of``)
must equal the model.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dolab import DurableObject, Lab, values

# ---- the spec's texts (§5.2, §5.3), written out here rather than imported ------------------------

KEY_TOO_LARGE = "Keys cannot be larger than 2048 bytes. A key of size {n} was provided."
VALUE_TOO_LARGE = "Values cannot be larger than 131072 bytes. A value of size {n} was provided."
TOO_MANY_KEYS = "Maximum number of key value pairs is 128. {n} pairs were provided."
PAIR_TOO_LARGE = ("Key and value together cannot be larger than 2097152 bytes (2 MB) on a "
                  "SQLite-backed Durable Object. A key and value of size {n} were provided.")
BOTH_STARTS = "list() cannot be called with both start and startAfter values."
LIMIT = "List limit must be positive."
PUT_UNDEFINED = "put() called with undefined value."
TXN_DELETE_ALL = "Cannot call deleteAll() within a transaction"
TXN_ROLLED_BACK = "Cannot {op}() on rolled back transaction"

# ---- keys and values -----------------------------------------------------------------------------

ORDERED = ["", "B", "a", "a\0", "ab", "abc", "b", "ä", "\uffff", "😀"]  # B33's keys, and ""
AT_LIMITS = [
    "k" * 2048, "k" * 2049,              # one-byte characters: 2048 and 2049 bytes
    "é" * 1024, "é" * 1024 + "k",        # two-byte characters: 2048 and 2049 bytes
    "😀" * 512, "😀" * 512 + "ab",        # four-byte characters: 2048 and 2050 bytes
    "k" * 3000,                          # over the KV-backed limit, fine on SQLite (B38)
]
FITS_KV = "x" * 131_101      # encodes to 131,106 bytes: the KV-backed limit (131072 + 34)
TOO_BIG_KV = "x" * 131_102
FITS_SQLITE = "x" * (2_097_152 - 5 - 1)  # with a one-byte key: exactly 2 MB
TOO_BIG_SQLITE = "x" * 2_097_148
BIG = [FITS_KV, TOO_BIG_KV, FITS_SQLITE, TOO_BIG_SQLITE]

small_keys = st.one_of(st.sampled_from(ORDERED), st.text(alphabet="ab\0ä😀", max_size=2))
keys = st.one_of(small_keys, small_keys, small_keys, small_keys, st.text(max_size=4),
                 st.sampled_from(AT_LIMITS))
scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
           | st.text(max_size=6) | st.binary(max_size=6))
plain_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                            | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=5)
stored = st.one_of(plain_values, plain_values, plain_values, st.sampled_from(BIG))


def _many(size: int) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, size), st.integers(0, size), st.just(129))  # 129: over


@st.composite
def key_lists(draw: st.DrawFn, unique: bool = False) -> list[str]:
    count = draw(_many(5))
    if count == 129:
        return [f"n{i}" for i in range(129)]
    return draw(st.lists(keys, max_size=count, unique=unique))


@st.composite
def entries(draw: st.DrawFn) -> dict[str, Any]:
    if draw(_many(4)) == 129:
        return {f"n{i}": i for i in range(129)}
    return draw(st.dictionaries(keys, stored, max_size=4))


list_options = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"reverse": st.booleans(), "limit": st.sampled_from([None, 1, 2, 3])}),
    st.fixed_dictionaries({"startAfter": st.sampled_from(ORDERED)},
                          optional={"reverse": st.booleans(), "limit": st.just(2)}),
    st.fixed_dictionaries({"start": st.sampled_from(ORDERED), "end": st.sampled_from(ORDERED)},
                          optional={"reverse": st.booleans()}),
    st.fixed_dictionaries({}, optional={
        "start": small_keys, "startAfter": small_keys, "end": small_keys, "prefix": small_keys,
        "reverse": st.booleans(), "limit": st.sampled_from([-1, 0, 1, 2, 3, 5, None]),
    }),
)

small_put = st.tuples(st.just("put"), small_keys, plain_values)
writes = st.one_of(
    small_put, small_put, small_put,
    st.tuples(st.just("put"), keys, stored),
    st.tuples(st.just("put_many"), entries()),
    st.tuples(st.just("delete"), keys),
    st.tuples(st.just("delete_many"), key_lists(unique=True)),
)
reads = st.one_of(
    st.tuples(st.just("get"), keys),
    st.tuples(st.just("get_many"), key_lists()),
    st.tuples(st.just("list"), list_options),
)
undefined = st.tuples(st.just("put_undefined"), keys)
simple_ops = st.one_of(writes, writes, reads, reads, undefined)
txn_ops = st.tuples(st.just("txn"),
                    st.lists(st.one_of(simple_ops, simple_ops, st.just(("deleteAll",))),
                             max_size=6),
                    st.sampled_from(["commit", "rollback", "rollback_then_put", "raise"]))
operations = st.lists(st.one_of(writes, writes, writes, reads, reads, txn_ops,
                                st.one_of(st.just(("deleteAll",)), undefined)),
                      min_size=3, max_size=40)
# Every sequence starts by putting these, so that list() has something to order and cut.
initial = st.dictionaries(st.one_of(st.sampled_from(ORDERED), small_keys), scalars, max_size=10)

# ---- the model -----------------------------------------------------------------------------------

Outcome = tuple[Any, ...]


class RangeFailure(Exception):
    """The model's RangeError: the op is refused and changes nothing."""


class Model:
    """What the spec says a backend's storage does, on a dict."""

    def __init__(self, backend: str, data: dict[str, Any] | None = None) -> None:
        self.backend = backend
        self.data: dict[str, Any] = dict(data or {})

    # -- limits (spec §5.2)
    def key(self, key: str) -> int:
        size = len(key.encode("utf-8"))
        if self.backend == "kv" and size > 2048:
            raise RangeFailure(KEY_TOO_LARGE.format(n=size))
        return size

    def value(self, key: str, value: Any) -> None:
        key_size, size = self.key(key), values.size(value)
        if self.backend == "kv" and size > 131_072 + 34:
            raise RangeFailure(VALUE_TOO_LARGE.format(n=size))
        if self.backend == "sqlite" and key_size + size > 2_097_152:
            raise RangeFailure(PAIR_TOO_LARGE.format(n=key_size + size))

    @staticmethod
    def batch(count: int) -> None:
        if count > 128:
            raise RangeFailure(TOO_MANY_KEYS.format(n=count))

    # -- operations
    def run(self, op: tuple[Any, ...]) -> Outcome:
        try:
            return ("ok", getattr(self, "op_" + op[0])(*op[1:]))
        except RangeFailure as error:
            return ("err", "RangeError", str(error))
        except TypeError as error:
            return ("err", "TypeError", str(error))
        except RuntimeError as error:
            return ("err", "RuntimeError", str(error))

    def op_get(self, key: str) -> Any:
        self.key(key)
        return self.data.get(key)

    def op_get_many(self, keys: list[str]) -> dict[str, Any]:
        self.batch(len(keys))
        for key in keys:
            self.key(key)
        return {k: self.data[k] for k in sorted(set(keys)) if k in self.data}

    def op_put(self, key: str, value: Any) -> None:
        self.value(key, value)
        self.data[key] = value

    def op_put_many(self, entries: dict[str, Any]) -> None:
        self.batch(len(entries))
        for key, value in entries.items():
            self.value(key, value)
        self.data.update(entries)

    def op_put_undefined(self, key: str) -> None:
        raise TypeError(PUT_UNDEFINED)

    def op_delete(self, key: str) -> bool:
        self.key(key)
        return self.data.pop(key, _ABSENT) is not _ABSENT

    def op_delete_many(self, keys: list[str]) -> int:
        self.batch(len(keys))
        for key in keys:
            self.key(key)
        return sum(self.data.pop(k, _ABSENT) is not _ABSENT for k in keys)

    def op_deleteAll(self) -> None:
        self.data.clear()

    def op_list(self, options: dict[str, Any]) -> dict[str, Any]:
        if "start" in options and "startAfter" in options:
            raise TypeError(BOTH_STARTS)
        limit = options.get("limit")
        if limit is not None and limit <= 0:
            raise TypeError(LIMIT)
        chosen = [k for k in sorted(self.data) if _in_list(k, options)]
        if options.get("reverse"):
            chosen.reverse()
        return {k: self.data[k] for k in chosen[:limit]}

    def op_txn(self, ops: list[tuple[Any, ...]], ending: str) -> Outcome:
        inner = Model(self.backend, self.data)
        results = [inner.run_in_txn(op) for op in ops]
        if ending == "rollback_then_put":
            results.append(("err", "RuntimeError", TXN_ROLLED_BACK.format(op="put")))
        if ending == "raise":
            return ("raised", results)
        if ending == "commit":
            self.data = inner.data
        return ("returned", results)

    def run_in_txn(self, op: tuple[Any, ...]) -> Outcome:
        if op[0] == "deleteAll":
            return ("err", "RuntimeError", TXN_DELETE_ALL)
        return self.run(op)


_ABSENT = object()


def _in_list(key: str, options: dict[str, Any]) -> bool:
    """list()'s range, from the spec's words: start inclusive, startAfter exclusive, end
    exclusive, prefix restricts."""
    if "start" in options and key < options["start"]:
        return False
    if "startAfter" in options and key <= options["startAfter"]:
        return False
    if "end" in options and key >= options["end"]:
        return False
    return key.startswith(options.get("prefix", ""))


# ---- the object that runs the operations ---------------------------------------------------------


class Store(DurableObject):
    pass


async def run_op(storage: Any, op: tuple[Any, ...]) -> Outcome:
    try:
        return ("ok", await _dispatch(storage, op))
    except Exception as error:
        name = "RangeError" if type(error).__name__ == "RangeError" else type(error).__name__
        return ("err", name, str(error))


async def _dispatch(storage: Any, op: tuple[Any, ...]) -> Any:
    kind, args = op[0], op[1:]
    if kind in ("get", "get_many"):
        return await storage.get(*args)
    if kind in ("put", "put_many"):
        return await storage.put(*args)
    if kind == "put_undefined":
        return await storage.put(args[0])
    if kind in ("delete", "delete_many"):
        return await storage.delete(*args)
    if kind == "list":
        return await storage.list(**args[0])
    if kind == "deleteAll":
        return await storage.deleteAll()
    return await _transaction(storage, *args)


async def _transaction(storage: Any, ops: list[tuple[Any, ...]], ending: str) -> Outcome:
    results: list[Outcome] = []

    async def closure(txn: Any) -> str:
        for op in ops:
            results.append(await run_op(txn, op))
        if ending.startswith("rollback"):
            txn.rollback()
        if ending == "rollback_then_put":
            results.append(await run_op(txn, ("put", "after", 1)))
        if ending == "raise":
            raise ValueError("the closure failed")
        return "value"

    try:
        assert await storage.transaction(closure) == "value"
    except ValueError:
        return ("raised", results)
    return ("returned", results)


async def check_sequence(backend: str, ops: list[tuple[Any, ...]], cuts: list[int]) -> None:
    lab = Lab(path=None, clock="virtual")
    try:
        lab.bind("S", Store, storage=backend)
        stub = lab.env.S.getByName("model")
        model = Model(backend)
        for chunk in _chunks(ops, cuts):
            async def run_chunk(instance: Any, ctx: Any, chunk: Any = chunk) -> list[Outcome]:
                return [await run_op(ctx.storage, op) for op in chunk]

            got = await lab.run_in(stub, run_chunk)
            expected = [model.run(op) for op in chunk]
            for op, g, e in zip(chunk, got, expected):
                assert _ordered(g) == _ordered(e), (
                    f"{_show(op)}: got {_show(g)}, model says {_show(e)}")
            assert lab.storage_of(stub) == model.data  # committed once the event returned
        final = await lab.run_in(stub, lambda instance, ctx: ctx.storage.list())
        assert list(final) == sorted(model.data)
    finally:
        lab.close()


def _ordered(outcome: Any) -> Any:
    """An outcome with its maps as lists of items: a get() or list() result is compared in order."""
    if isinstance(outcome, dict):
        return list(outcome.items())
    if isinstance(outcome, (tuple, list)):
        return [_ordered(item) for item in outcome]
    return outcome


def _chunks(ops: list[Any], cuts: list[int]) -> list[list[Any]]:
    bounds = sorted({0, len(ops), *(c % (len(ops) + 1) for c in cuts)})
    return [ops[a:b] for a, b in zip(bounds, bounds[1:])]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 300 else text[:300] + "…"


MODEL_SETTINGS = settings(max_examples=200, deadline=None, derandomize=False,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large,
                                                 HealthCheck.large_base_example])


@MODEL_SETTINGS
@given(first=initial, ops=operations, cuts=st.lists(st.integers(0, 40), max_size=4))
def test_kv_backed_storage_behaves_like_the_model(first: dict[str, Any], ops: list[Any],
                                                  cuts: list[int]) -> None:
    asyncio.run(check_sequence("kv", [("put_many", first), *ops], cuts))


@MODEL_SETTINGS
@given(first=initial, ops=operations, cuts=st.lists(st.integers(0, 40), max_size=4))
def test_sqlite_backed_storage_behaves_like_the_model(first: dict[str, Any], ops: list[Any],
                                                      cuts: list[int]) -> None:
    asyncio.run(check_sequence("sqlite", [("put_many", first), *ops], cuts))


# ---- the limits, one by one, on both backends ----------------------------------------------------


def test_the_model_limits_match_the_spec_examples() -> None:  # B37, B38
    kv, sqlite = Model("kv"), Model("sqlite")
    assert kv.run(("put", "k" * 2049, 1)) == ("err", "RangeError", KEY_TOO_LARGE.format(n=2049))
    assert kv.run(("put", "k" * 2048, FITS_KV))[0] == "ok"
    assert kv.run(("put", "big", TOO_BIG_KV)) == ("err", "RangeError",
                                                   VALUE_TOO_LARGE.format(n=131_107))
    assert sqlite.run(("put", "k" * 3000, 1))[0] == "ok"
    assert sqlite.run(("put", "k", FITS_SQLITE))[0] == "ok"
    assert sqlite.run(("put", "kk", FITS_SQLITE))[2].endswith("size 2097153 were provided.")


async def _limits(backend: str) -> list[Outcome]:
    lab = Lab(path=None, clock="virtual")
    try:
        lab.bind("S", Store, storage=backend)
        stub = lab.env.S.getByName("limits")
        ops = [("put", k, 1) for k in AT_LIMITS] + [("put", k, v) for k, v in zip("pqrs", BIG)]
        ops += [("get_many", [f"n{i}" for i in range(129)]), ("put_many", {"a": 1, "k" * 2049: 2})]
        model = Model(backend)

        async def run_all(instance: Any, ctx: Any) -> list[Outcome]:
            return [await run_op(ctx.storage, op) for op in ops]

        got = await lab.run_in(stub, run_all)
        assert got == [model.run(op) for op in ops]
        assert lab.storage_of(stub) == model.data
        return got
    finally:
        lab.close()


def test_kv_backed_limits_at_the_edges() -> None:
    outcomes = asyncio.run(_limits("kv"))
    assert [o[0] for o in outcomes] == ["ok", "err", "ok", "err", "ok", "err", "err",
                                        "ok", "err", "err", "err", "err", "err"]


def test_sqlite_backed_limits_at_the_edges() -> None:
    outcomes = asyncio.run(_limits("sqlite"))
    assert [o[0] for o in outcomes] == ["ok"] * 7 + ["ok", "ok", "ok", "err", "err", "ok"]
