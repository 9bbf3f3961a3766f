from __future__ import annotations

import pytest

from dolab import DurableObject, Lab
from dolab.ids import DurableObjectId


class Counter(DurableObject):
    async def ping(self) -> str:
        return self.ctx.id.name


class KvOnly(DurableObject):
    pass


@pytest.fixture
def ns(lab: Lab):
    lab.bind("NS", Counter)
    lab.bind("KV", KvOnly, storage="kv")
    return lab.env.NS


def test_idFromName_is_stable_and_equal(ns) -> None:  # B1
    a, b = ns.idFromName("x"), ns.idFromName("x")
    assert a is not b and a.equals(b) and a.toString() == b.toString()


def test_spec_test_vectors(lab: Lab, ns) -> None:  # B2
    assert ns.idFromName("foo").toString() == (
        "8d8d52167eba73e7f0268ab71258e747f36d3bda25975c74ec438beeadb76dd6")
    assert ns.idFromName("bar").toString() == (
        "2caa716bd34e4a78cd24ea59e3fa4180b9c8fc1872aa01aaaa473bffc0863b43")
    assert ns.idFromName("").toString() == (
        "385054d1a4b25061f24068b3076966a0cd22da0f7f126522b60b10de5bab35a9")
    assert lab.env.KV.idFromName("foo").toString() == (
        "a7a51ea83454e0e6f1a3a01d4673111ae375a12a8dd7ab95b45dce04d22cc328")


def test_same_name_in_two_namespaces_differs(lab: Lab, ns) -> None:  # B3
    assert not ns.idFromName("foo").equals(lab.env.KV.idFromName("foo"))


def test_toString_is_64_lowercase_hex(ns) -> None:  # B4
    for object_id in (ns.idFromName("a"), ns.newUniqueId()):
        text = object_id.toString()
        assert len(text) == 64 and text == text.lower() and int(text, 16) >= 0


def test_unique_ids_never_repeat_and_have_no_name(ns) -> None:  # B5
    ids = {ns.newUniqueId().toString() for _ in range(200)}
    assert len(ids) == 200
    assert ns.newUniqueId().name is None


def test_names_on_ids_and_stubs(ns) -> None:  # B6
    object_id = ns.idFromName("foo")
    stub = ns.getByName("foo")
    assert object_id.name == "foo" and stub.name == "foo" and stub.id.equals(object_id)


def test_idFromString_round_trip_loses_name(ns) -> None:  # B7
    original = ns.idFromName("foo")
    parsed = ns.idFromString(original.toString())
    assert parsed.equals(original) and parsed.name is None


def test_idFromString_accepts_upper_case(ns) -> None:  # B8
    text = ns.idFromName("foo").toString()
    assert ns.idFromString(text.upper()).toString() == text


@pytest.mark.parametrize("bad", ["abc", "g" * 64, ""])
def test_idFromString_rejects_malformed(ns, bad: str) -> None:  # B9
    with pytest.raises(TypeError, match="^Invalid Durable Object ID: must be 64 hex digits$"):
        ns.idFromString(bad)


def test_idFromString_rejects_other_namespace(lab: Lab, ns) -> None:  # B10
    with pytest.raises(TypeError, match=r"^Durable Object ID is not valid for this namespace\.$"):
        ns.idFromString(lab.env.KV.idFromName("foo").toString())


def test_routing_mode_and_location_hint(ns) -> None:  # B13
    from dolab import RangeError

    with pytest.raises(RangeError, match="^unknown routingMode: x$"):
        ns.get(ns.idFromName("a"), routingMode="x")
    assert ns.get(ns.idFromName("a"), {"locationHint": "weur"}).name == "a"


def test_jurisdiction_subnamespace_rejects_other_ids(ns) -> None:  # B14
    eu = ns.jurisdiction("eu")
    assert not eu.idFromName("a").equals(ns.idFromName("a"))
    with pytest.raises(TypeError, match="^get called on jurisdictional subnamespace with an ID "
                                        "from a different jurisdiction$"):
        eu.get(ns.idFromName("a"))


async def test_ctx_id_name_fixed_at_construction(lab: Lab, ns) -> None:  # B15
    assert await ns.getByName("room1").ping() == "room1"
    unique = ns.get(ns.newUniqueId())
    assert await unique.ping() is None
    by_string = ns.get(ns.idFromString(ns.idFromName("other").toString()))
    assert await by_string.ping() is None
    assert await ns.getByName("other").ping() is None  # same instance, constructed without name


def test_ids_cannot_be_constructed_by_hand() -> None:
    with pytest.raises(TypeError, match="cannot be constructed directly"):
        DurableObjectId(b"\0" * 32, None, b"")


def test_virtual_clock_unique_ids_repeat_across_runs() -> None:
    def first_unique() -> str:
        lab = Lab(path=None, clock="virtual")
        lab.bind("NS", Counter)
        try:
            return lab.env.NS.newUniqueId().toString()
        finally:
            lab.close()

    assert first_unique() == first_unique()
