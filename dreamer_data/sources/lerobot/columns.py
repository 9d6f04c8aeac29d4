"""Parquet rows of LeRobot episodes → numpy arrays, with the schema checked against info.json.

A row whose vector is null or all-NaN counts as "no value" (unlabeled video); a vector of the
wrong width, or with only some dimensions missing, is a schema error naming the file.
"""

from __future__ import annotations

from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ...errors import EpisodeError

EPISODE_INDEX, FRAME_INDEX = "episode_index", "frame_index"


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def read_columns(handle: IO, file: str, columns: list[str]) -> pa.Table:
    """The listed columns that exist in the file (all rows); unreadable files raise ``EpisodeError``."""
    try:
        parquet = pq.ParquetFile(handle)
        present = [c for c in columns if c in parquet.schema_arrow.names]
        return parquet.read(columns=present)
    except (OSError, pa.ArrowException) as error:
        raise EpisodeError(file, f"unreadable parquet ({_first_line(error)})") from None


def _episode_span(owner: np.ndarray, episode_index: int, file: str) -> tuple[int, int]:
    """First and end row of one episode in a file's episode_index column."""
    rows = np.flatnonzero(owner == episode_index)
    if len(rows) == 0:
        raise EpisodeError(file, f"has no rows of episode {episode_index}")
    first, end = int(rows[0]), int(rows[-1]) + 1
    if end - first != len(rows):
        raise EpisodeError(file, f"rows of episode {episode_index} are not contiguous")
    return first, end


def episode_rows(table: pa.Table, episode_index: int, file: str) -> pa.Table:
    """The rows of one episode (v3 files hold many; v2 files one, maybe without an episode_index)."""
    if EPISODE_INDEX not in table.column_names:
        return table
    first, end = _episode_span(table.column(EPISODE_INDEX).to_numpy(), episode_index, file)
    return table.slice(first, end - first)


def read_episode_rows(handle: IO, file: str, episode_index: int, columns: list[str]) -> pa.Table:
    """One episode's rows, decoding only the row groups that hold them."""
    try:
        parquet = pq.ParquetFile(handle)
        names = parquet.schema_arrow.names
        if EPISODE_INDEX not in names:
            return parquet.read(columns=[c for c in columns if c in names])
        owner = parquet.read(columns=[EPISODE_INDEX]).column(0).to_numpy()
        first, end = _episode_span(owner, episode_index, file)
        bounds = np.cumsum([0] + [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)])
        groups = range(int(np.searchsorted(bounds, first, "right")) - 1, int(np.searchsorted(bounds, end, "left")))
        table = parquet.read_row_groups(list(groups), columns=[c for c in columns if c in names])
        return table.slice(first - int(bounds[groups.start]), end - first)
    except (OSError, pa.ArrowException) as error:
        raise EpisodeError(file, f"unreadable parquet ({_first_line(error)})") from None


def vector_column(table: pa.Table, name: str, width: int, file: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, width) float32 values (0 where missing) and a per-row bool "has a value"."""
    column = table.column(name).combine_chunks()
    kind = column.type
    n = len(column)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        valid = np.array(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        lengths = pc.list_value_length(column).fill_null(width).to_numpy(zero_copy_only=False)
        wrong = np.flatnonzero(lengths != width)
        if len(wrong):
            raise EpisodeError(file, f"column {name!r} has width {lengths[wrong[0]]} at row {wrong[0]}, "
                                     f"meta/info.json says {width}")
        flat = pc.list_flatten(column).to_numpy(zero_copy_only=False)
        values = np.zeros((n, width), np.float64)
        values[valid] = np.asarray(flat, dtype=np.float64).reshape(-1, width)
    elif (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)) and width == 1:
        valid = np.array(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        values = np.array(column.cast(pa.float64()).fill_null(0.0).to_numpy(), dtype=np.float64).reshape(n, 1)
    else:
        raise EpisodeError(file, f"column {name!r} has type {kind}, expected a list of {width} numbers")
    missing_values = np.isnan(values)
    valid &= ~missing_values.all(axis=1)
    partial = np.flatnonzero(valid & ~np.isfinite(values).all(axis=1))
    if len(partial):
        raise EpisodeError(file, f"column {name!r} row {partial[0]} has non-finite values in some dimensions")
    values[~valid] = 0.0
    return values.astype(np.float32), valid


def scalar_column(table: pa.Table, name: str, file: str) -> np.ndarray:
    """(rows,) float64 of a scalar (or width-1 list) column; missing values read as 0."""
    return vector_column(table, name, 1, file)[0][:, 0].astype(np.float64)


def frame_indices(table: pa.Table, file: str) -> np.ndarray:
    """Each row's frame number within its episode; rows must be in strictly increasing frame order."""
    if FRAME_INDEX not in table.column_names:
        return np.arange(table.num_rows, dtype=np.int64)
    column = table.column(FRAME_INDEX)
    if column.null_count:
        raise EpisodeError(file, "column 'frame_index' has empty entries")
    frames = column.to_numpy().astype(np.int64)
    if len(frames) and (frames[0] < 0 or np.any(np.diff(frames) <= 0)):
        raise EpisodeError(file, "column 'frame_index' is not strictly increasing from >= 0")
    return frames
