"""LeRobot-format robot datasets (codebase v2.x and v3.0), read from a local folder or fsspec URL.

Both layouts share ``meta/info.json`` (fps, ``features``, ``data_path`` / ``video_path`` templates,
``chunks_size``) and one parquet row per frame (``action``, ``observation.state``, optional
``next.reward`` / ``next.done``, ``episode_index``, ``frame_index``). They differ in how episodes map
to files:

- v2.x: ``meta/episodes.jsonl`` lists episodes; one parquet and one mp4 per camera per episode.
- v3.0: ``meta/episodes/chunk-*/file-*.parquet`` lists episodes with the data and video file that
  hold them; a data file and a video file each concatenate many episodes, and the video columns
  ``from_timestamp`` / ``to_timestamp`` locate the episode inside its file.

Rows are already in gym order (observation t, action t), so no shift is applied.
"""

from .source import LeRobotSource

__all__ = ["LeRobotSource"]
