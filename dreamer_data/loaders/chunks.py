"""Row reads from zarr arrays through a bounded cache of whole decoded chunks.

zarr decodes a whole chunk for any partial read and costs ~0.4 ms per call on top, so a
16-row window of ten small fields costs ~4 ms read directly. Reading whole chunks once and
slicing them in numpy costs no extra decoding and makes repeat reads (the small per-frame
fields: 4096 rows per chunk) nearly free. The cache is per process and bounded in bytes.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import zarr

DEFAULT_CACHE_BYTES = 256 * 2**20


class ChunkCache:
    """Least-recently-used decoded chunks of several arrays, at most ``max_bytes`` in total."""

    def __init__(self, arrays: dict[str, zarr.Array], max_bytes: int = DEFAULT_CACHE_BYTES):
        self.arrays = arrays
        self.rows = {field: array.chunks[0] for field, array in arrays.items()}
        self.max_bytes = max_bytes
        self.chunks: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self.bytes = 0

    def _chunks(self, field: str, first: int, last: int) -> list[np.ndarray]:
        """Chunks ``first`` … ``last`` of ``field``; the missing ones come from one zarr read."""
        missing = [index for index in range(first, last + 1) if (field, index) not in self.chunks]
        if missing:
            rows = self.rows[field]
            block = self.arrays[field][missing[0] * rows:(missing[-1] + 1) * rows]
            for index in missing:
                chunk = block[(index - missing[0]) * rows:(index - missing[0] + 1) * rows]
                chunk = chunk.copy() if len(missing) > 1 else chunk  # evicting one must free its memory
                self.chunks[(field, index)] = chunk
                self.bytes += chunk.nbytes
        found = []
        for index in range(first, last + 1):
            self.chunks.move_to_end((field, index))
            found.append(self.chunks[(field, index)])
        while self.bytes > self.max_bytes and len(self.chunks) > last - first + 1:
            self.bytes -= self.chunks.popitem(last=False)[1].nbytes
        return found

    def read(self, field: str, start: int, stop: int, step: int = 1) -> np.ndarray:
        """Rows ``start:stop:step`` of ``field`` as a new array (never a view into the cache)."""
        rows = self.rows[field]
        first = start // rows
        chunks = self._chunks(field, first, (stop - 1) // rows)
        block = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
        offset = start - first * rows
        return block[offset:offset + stop - start:step].copy()
