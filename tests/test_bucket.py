"""The R2-like bucket binding (``lab.bucket``): put/get/head/list/delete, durability across
reopening, argument errors, and how a call from inside an object shows in the trace."""
from __future__ import annotations

import pytest

from dolab import DurableObject, Lab, trace
from dolab.bucket import R2Bucket
from dolab.store import BucketRecord, _ADMITTED


@pytest.fixture
def blobs(lab: Lab) -> R2Bucket:
    return lab.bucket("BLOBS")


async def test_put_returns_the_objects_key_and_size(blobs) -> None:
    written = await blobs.put("doc", b"\x00\x01\x02")
    assert (written.key, written.size) == ("doc", 3)
    assert written.etag == "b95f67f61ebb03619622d798f45fc2d3"  # md5 of the bytes


async def test_get_reads_the_body_as_bytes_text_and_json(blobs) -> None:
    await blobs.put("doc.json", '{"title": "Hé"}')
    body = await blobs.get("doc.json")
    assert body is not None and body.key == "doc.json" and body.size == 16
    assert await body.bytes() == '{"title": "Hé"}'.encode()
    assert await body.text() == '{"title": "Hé"}'
    assert await body.json() == {"title": "Hé"}


async def test_get_and_head_of_a_missing_key_are_None(blobs) -> None:
    assert await blobs.get("nope") is None
    assert await blobs.head("nope") is None


async def test_put_replaces_and_head_reads_metadata_only(blobs) -> None:
    await blobs.put("k", "first")
    await blobs.put("k", "second!")
    head = await blobs.head("k")
    assert head is not None and head.size == 7 and not hasattr(head, "text")


async def test_put_accepts_bytearray_memoryview_and_None(blobs) -> None:
    await blobs.put("a", bytearray(b"ab"))
    await blobs.put("m", memoryview(b"xyz"))
    await blobs.put("empty", None)
    sizes = {o.key: o.size for o in (await blobs.list()).objects}
    assert sizes == {"a": 2, "empty": 0, "m": 3}


async def test_list_is_in_key_order_and_filters_by_prefix(blobs) -> None:
    for key in ["msg/2", "avatar", "msg/1", "msg/10", "msh"]:
        await blobs.put(key, key)
    assert [o.key for o in (await blobs.list()).objects] == [
        "avatar", "msg/1", "msg/10", "msg/2", "msh"]
    listed = await blobs.list(prefix="msg/")
    assert [(o.key, o.size) for o in listed.objects] == [("msg/1", 5), ("msg/10", 6), ("msg/2", 5)]
    assert (listed.truncated, listed.cursor) == (False, None)


async def test_list_pages_with_limit_and_cursor(blobs) -> None:
    for n in range(5):
        await blobs.put(f"k{n}", "x")
    keys, cursor = [], None
    while True:
        page = await blobs.list(limit=2, cursor=cursor)
        keys.append([o.key for o in page.objects])
        if not page.truncated:
            break
        cursor = page.cursor
    assert keys == [["k0", "k1"], ["k2", "k3"], ["k4"]]


async def test_list_startAfter_is_exclusive(blobs) -> None:
    for key in ["a", "b", "c"]:
        await blobs.put(key, key)
    assert [o.key for o in (await blobs.list(startAfter="a")).objects] == ["b", "c"]
    assert [o.key for o in (await blobs.list(prefix="c", startAfter="a")).objects] == ["c"]


async def test_delete_takes_a_key_or_a_list_and_ignores_missing_keys(blobs) -> None:
    for key in ["a", "b", "c"]:
        await blobs.put(key, key)
    assert await blobs.delete("a") is None
    await blobs.delete(["b", "missing"])
    assert [o.key for o in (await blobs.list()).objects] == ["c"]


async def test_data_survives_closing_and_reopening_the_lab(tmp_path) -> None:
    path = tmp_path / "lab.fs"
    first = Lab(path=path, clock="virtual")
    await first.bucket("BLOBS").put("report.pdf", b"%PDF-1.7")
    await first.bucket("BLOBS").put("gone", b"x")
    await first.bucket("BLOBS").delete("gone")
    first.close()
    second = Lab(path=path, clock="virtual")
    try:
        body = await second.bucket("BLOBS").get("report.pdf")
        assert body is not None and await body.bytes() == b"%PDF-1.7"
        assert [o.key for o in (await second.bucket("BLOBS").list()).objects] == ["report.pdf"]
        assert await second.bucket("OTHER").get("report.pdf") is None  # buckets are separate
    finally:
        second.close()


async def test_binding_the_same_name_again_returns_the_same_bucket(lab: Lab, blobs) -> None:
    assert lab.bucket("BLOBS") is blobs and lab.env.BLOBS is blobs
    assert "BLOBS" in lab.env and repr(blobs) == "<R2Bucket BLOBS>"


@pytest.mark.parametrize("value, hint", [
    ({"a": 1}, r"not dict \(store json\.dumps\(value\) for JSON\)"),
    ([1, 2], r"not list \(store json\.dumps\(value\) for JSON\)"),
    (12, r"not int\.$"),
])
async def test_put_rejects_data_that_is_not_bytes_or_str(blobs, value, hint) -> None:
    with pytest.raises(TypeError, match=r"^put\(\) takes the object's data as bytes or str, "
                       + hint):
        await blobs.put("k", value)


async def test_keys_must_be_strings(blobs) -> None:
    with pytest.raises(TypeError, match=r"^An R2 key must be a str, not int\.$"):
        await blobs.get(1)
    with pytest.raises(TypeError, match=r"^An R2 key must be a str, not bytes\.$"):
        await blobs.put(b"k", b"v")
    with pytest.raises(TypeError, match=r"^delete\(\) takes a key \(str\) or a list of keys"):
        await blobs.delete({"a"})
    with pytest.raises(TypeError, match=r"^An R2 key must be a str, not int\.$"):
        await blobs.delete(["a", 2])


async def test_keys_are_limited_to_1024_bytes(blobs) -> None:
    await blobs.put("é" * 512, b"")  # 1024 bytes of UTF-8
    with pytest.raises(ValueError, match=r"^R2 keys are limited to 1024 bytes; this key has 1025"):
        await blobs.put("x" * 1025, b"")


@pytest.mark.parametrize("limit, error", [(0, ValueError), (1001, ValueError), ("5", TypeError),
                                          (True, TypeError)])
async def test_list_limit_must_be_between_1_and_1000(blobs, limit, error) -> None:
    with pytest.raises(error, match=r"^list\(\) limit must be"):
        await blobs.list(limit=limit)


def test_buckets_come_from_the_lab(lab: Lab) -> None:
    with pytest.raises(TypeError, match=r'^Buckets come from lab\.env; bind one with lab\.bucket'):
        R2Bucket(lab, "BLOBS")


def test_a_bucket_cannot_take_a_namespace_binding_name(lab: Lab) -> None:
    class Room(DurableObject):
        pass

    lab.bind("ROOMS", Room)
    with pytest.raises(ValueError, match=r"^env\.ROOMS is already a Durable Object namespace"):
        lab.bucket("ROOMS")
    with pytest.raises(ValueError, match=r"cannot name a binding"):
        lab.bucket("my-blobs")


async def test_a_closed_labs_bucket_says_so(tmp_path) -> None:
    lab = Lab(path=None, clock="virtual")
    blobs = lab.bucket("BLOBS")
    lab.close()
    with pytest.raises(RuntimeError, match=r"^The lab is closed, and env\.BLOBS with it"):
        await blobs.get("k")


def test_the_bucket_record_is_admitted_by_the_restricted_loader() -> None:
    assert BucketRecord.__name__ in _ADMITTED["dolab.store"]  # type: ignore[operator]


class Uploader(DurableObject):
    async def upload(self, key, data):
        written = await self.env.BLOBS.put(key, data)
        self.ctx.storage.put("ref", {"key": written.key, "size": written.size})
        return written.size


async def test_a_call_from_an_object_is_an_outbound_await(lab: Lab, blobs) -> None:
    lab.bind("UP", Uploader)
    assert await lab.env.UP.getByName("u").upload("big", b"x" * 300_000) == 300_000
    assert lab.storage_of(lab.env.UP.getByName("u")) == {"ref": {"key": "big", "size": 300_000}}
    outbound = lab.trace.events((trace.EXTERNAL_AWAIT, trace.EXTERNAL_DONE), obj="UP:u")
    assert [(e.kind, e.detail["what"]) for e in outbound] == [
        ("external-await", "R2 BLOBS put big"), ("external-done", "R2 BLOBS put big")]
    assert (await blobs.head("big")).size == 300_000
