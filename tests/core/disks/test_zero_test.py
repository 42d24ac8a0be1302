"""``is_zero``: whole buffers compare without a copy, views and slices give the same answers."""

from __future__ import annotations

import pytest

from imageport.disks.extents import MiB, is_zero


@pytest.mark.parametrize("size", [1, 4096, 4 * MiB, 9 * MiB + 3])
def test_every_kind_of_buffer_agrees(size: int) -> None:
    buf = bytearray(size)
    view = memoryview(buf)
    for data in (buf, bytes(buf), view, view[: size // 2 or 1], view[size // 3 :]):
        assert is_zero(data)
    for at in {0, size // 2, size - 1}:
        buf[at] = 1
        assert not is_zero(buf) and not is_zero(view) and not is_zero(bytes(buf))
        assert is_zero(view[:at]) if at else True  # the part before the byte is still zero
        assert not is_zero(view[at:])
        buf[at] = 0
    # a view of another shape over a whole buffer: the bytes decide, not the item count
    words = memoryview(bytearray(size - size % 4 or 4)).cast("I")
    assert is_zero(words)
    words[len(words) - 1] = 7
    assert not is_zero(words)
    part = memoryview(bytearray(64)).cast("I")[2:6]  # a partial view of other items: still its bytes
    assert is_zero(part)
