"""Structure-blind mutations of valid frames, for the live fuzzer and the fallback engine.

The mutations are the ones that find bugs in length-prefixed binary decoders: an int32
replaced by a boundary value at any offset (a length, a count, an opcode), a cut at any
offset, bytes flipped, inserted, deleted or appended, and two inputs spliced together.
"""

from __future__ import annotations

import random
import struct

__all__ = ["BOUNDARY_INT32", "Mutator"]

# The int32 values that break length checks: negative, -1 (null), zero, around jute.maxbuffer
# (0xfffff), and the extremes.
BOUNDARY_INT32 = (-(2**31), -2, -1, 0, 1, 0xFFFFF, 0xFFFFF + 1, 2**31 - 1, 0x7FFFFF00, 64)
_I = struct.Struct(">i")


class Mutator:
    """``mutate(data)``: a few random mutations of ``data`` (``rng`` makes it reproducible)."""

    def __init__(self, rng: random.Random, corpus: list[bytes] | None = None) -> None:
        self.rng = rng
        self.corpus = corpus or []

    def mutate(self, data: bytes, rounds: int | None = None) -> bytes:
        rng = self.rng
        out = bytearray(data)
        for _ in range(rounds if rounds is not None else rng.choice((1, 1, 1, 2, 3))):
            out = self._one(out)
        return bytes(out)

    def _one(self, b: bytearray) -> bytearray:
        rng = self.rng
        kind = rng.randrange(9)
        n = len(b)
        if kind == 0 and n >= 4:  # boundary int32 at any offset
            pos = rng.randrange(n - 3)
            b[pos : pos + 4] = _I.pack(rng.choice(BOUNDARY_INT32))
        elif kind == 1 and n >= 4:  # ... or at an aligned offset, where the fields usually are
            pos = rng.randrange(0, n - 3, 4)
            b[pos : pos + 4] = _I.pack(rng.choice(BOUNDARY_INT32))
        elif kind == 2 and n:  # cut
            del b[rng.randrange(n) :]
        elif kind == 3 and n:  # flip bits
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif kind == 4 and n:  # random byte values
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(n)] = rng.randrange(256)
        elif kind == 5:  # trailing bytes
            b += rng.randbytes(rng.choice((1, 4, 8, 100)))
        elif kind == 6 and n:  # delete a span
            pos = rng.randrange(n)
            del b[pos : pos + rng.randint(1, 8)]
        elif kind == 7:  # insert a span
            pos = rng.randrange(n + 1)
            b[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif kind == 8 and self.corpus:  # splice with another input
            other = rng.choice(self.corpus)
            b = b[: rng.randrange(n + 1)] + other[rng.randrange(len(other) + 1) :]
        return b
