"""LeRobot-format robot datasets (codebase v2.x and v3.0), read from a local folder or fsspec URL.

Both layouts share ``meta/info.json`` (fps, ``features``, ``data_path`` / ``video_path`` templates,
``chunks_size``) and one parquet row per frame (``action``, ``observation.state``, optional
``next.reward`` / ``next.done``, ``episode_index``, ``frame_index``). They differ in how episodes map
to files:

- v2.x: ``meta/episodes.jsonl`` lists episodes; one parquet and one mp4 per camera per episode.
- v3.0: ``meta/episodes/chunk-*/file-*.parquet`` lists episodes with the data and video file that
  hold them; a data file and a video file each concatenate many episodes, and the video columns
  ``from_timestamp`` / ``to_timestamp`` locate the episode inside its file.

Rows are already in gym order (observation t, action t), so no shift is applied. Stored per row:
``frames`` (one camera, ``--camera``), ``actions/continuous`` (N, A) float32 when the dataset has an
``action`` feature, ``state`` (N, S) float32 from ``observation.state``, ``rewards`` (``next.reward``,
else 0), ``is_terminal`` (``next.done`` / ``done``, else 0), ``has_action`` (0 for rows whose action
is null / all-NaN, episodes whose parquet lacks the column, and datasets without actions) and
``is_null_action`` (= 1 - has_action: continuous actions have no "no-op" value to detect).

``manifest.actions.continuous.stats`` holds exact per-dimension ``min``, ``max``, ``mean``, ``std``
(ddof 0), ``q01``, ``q99`` (linear interpolation), ``rows`` and ``episodes`` counted, and
``episodes_left_out`` (unreadable action rows), over every episode of the source dataset whatever
``--part`` / ``--limit`` say, so the parts of one dataset carry identical statistics and merge.
"""

from .source import LeRobotSource

__all__ = ["LeRobotSource"]
