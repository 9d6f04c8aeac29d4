"""What an evaluation reports: return ± standard error, episode length, Crafter success rates and score;
written as ``report.json``, a bar chart PNG, and mp4 videos of a few episodes.

Crafter score (Hafner 2021): S = exp(mean_i ln(1 + s_i)) − 1 over the 22 achievements' success
rates s_i in percent (``dreamer_data.scores``, the numbers the data toolkit reports for
recorded episodes).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from dreamer_data.collect.crafter_env import ACHIEVEMENTS
from dreamer_data.scores import crafter_score

from .runner import EvalRun


def mean_stderr(values: list[float]) -> tuple[float, float]:
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return math.nan, math.nan
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0


def paired_difference(candidate: dict, baseline: dict, where: str = "") -> dict[str, float | None]:
    """Candidate − baseline return over two reports of the same ``--seed`` and ``--episodes`` (episode i played the
    same environment seed in both, so the per-episode differences cancel the variation between seeds): mean,
    paired standard error, z = mean / s.e. (None when every difference is equal), episodes."""
    seeds = [e["env_seed"] for e in candidate["per_episode"]]
    if seeds != [e["env_seed"] for e in baseline["per_episode"]]:
        raise ValueError(f"{where or 'reports'}: the two evaluations played other environment seeds "
                         "(evaluate both with the same --seed and --episodes)")
    diff = [a["return"] - b["return"] for a, b in zip(candidate["per_episode"], baseline["per_episode"])]
    mean, stderr = mean_stderr(diff)
    return {"mean": mean, "stderr": stderr, "z": mean / stderr if stderr > 0 else None, "episodes": len(diff)}


def summarise(run: EvalRun, extra: dict | None = None) -> dict:
    returns = [e.ret for e in run.episodes]
    lengths = [e.length for e in run.episodes]
    ret_mean, ret_se = mean_stderr(returns)
    len_mean, len_se = mean_stderr(lengths)
    report = {
        "env": run.settings.to_dict(), "policy": run.policy, "seed": run.seed, "episodes": len(run.episodes),
        "return_mean": ret_mean, "return_stderr": ret_se, "return_min": float(min(returns)),
        "return_max": float(max(returns)), "length_mean": len_mean, "length_stderr": len_se,
        "terminated_fraction": float(np.mean([e.terminated for e in run.episodes])),
        "seconds": round(run.seconds, 2),
        "per_episode": [{"index": e.index, "env_seed": e.env_seed, "return": e.ret, "length": e.length,
                         "terminated": e.terminated, **({"achievements": e.achievements} if e.achievements or
                                                        run.settings.env == "crafter" else {})}
                        for e in run.episodes],
        **(extra or {}),
    }
    if run.settings.env == "crafter":
        rates = {name: 100.0 * float(np.mean([name in e.achievements for e in run.episodes])) for name in ACHIEVEMENTS}
        report["success_rates_percent"] = rates
        report["crafter_score"] = crafter_score(np.array(list(rates.values())))
    return report


def summary_lines(report: dict) -> list[str]:
    env = report["env"]
    where = env["env"] + (f" {env['game']}" if env.get("game") else "")
    lines = [f"{report['policy']} on {where}: {report['episodes']} episodes (seed {report['seed']})",
             f"  return {report['return_mean']:.3f} ± {report['return_stderr']:.3f} (s.e.)   "
             f"min {report['return_min']:.1f}  max {report['return_max']:.1f}",
             f"  length {report['length_mean']:.1f} ± {report['length_stderr']:.1f}   "
             f"terminated {100 * report['terminated_fraction']:.0f}%"]
    if "crafter_score" in report:
        lines.append(f"  Crafter score {report['crafter_score']:.2f}%")
        for name, rate in sorted(report["success_rates_percent"].items(), key=lambda kv: -kv[1]):
            lines.append(f"    {name:24s} {rate:6.1f}%")
    return lines


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(report: dict, path: Path) -> None:
    _atomic_write(path, (json.dumps(report, indent=1) + "\n").encode())


def write_chart(report: dict, path: Path) -> None:
    """Crafter: bar chart of success rates per achievement (log-scaled like the Crafter paper's).
    MinAtar: histogram of episode returns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "success_rates_percent" in report:
        names = list(report["success_rates_percent"])
        rates = [report["success_rates_percent"][n] for n in names]
        fig, ax = plt.subplots(figsize=(10, 4))
        ax.bar(range(len(names)), rates, color="tab:blue")
        ax.set_xticks(range(len(names)), [n.replace("_", " ") for n in names], rotation=75, fontsize=8)
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylim(0, 100)
        ax.set_ylabel("success rate (%)")
        ax.set_title(f"{report['policy']}: Crafter score {report['crafter_score']:.2f}% "
                     f"({report['episodes']} episodes)")
    else:
        returns = [e["return"] for e in report["per_episode"]]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.hist(returns, bins=min(30, max(5, len(set(returns)))), color="tab:blue")
        ax.set_xlabel("episode return")
        ax.set_ylabel("episodes")
        ax.set_title(f"{report['policy']}: return {report['return_mean']:.2f} ± {report['return_stderr']:.2f} "
                     f"({report['episodes']} episodes)")
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_video(frames: np.ndarray, path: Path, fps: int = 10, scale: int = 4) -> None:
    """(T, H, W, 3) uint8 → H.264 mp4 (nearest-neighbour upscaled ×scale; even sizes for yuv420p)."""
    import av

    frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    height, width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".mp4", dir=path.parent)
    os.close(fd)
    try:
        with av.open(tmp, "w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for image in frames:
                packet = stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:height, :width]),
                                                                   format="rgb24"))
                container.mux(packet)
            container.mux(stream.encode())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_outputs(run: EvalRun, out: Path, extra: dict | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    report = summarise(run, extra)
    report["files"] = {"report": "report.json", "chart": "achievements.png" if run.settings.env == "crafter"
                       else "returns.png", "videos": [f"episode_{i:04d}.mp4" for i in sorted(run.videos)]}
    for index, frames in run.videos.items():
        write_video(frames, out / f"episode_{index:04d}.mp4")
    write_chart(report, out / report["files"]["chart"])
    write_json(report, out / "report.json")
    return report
