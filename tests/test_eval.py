"""Evaluation in the real environments: shared seeds, behaviour policies and agents through one harness,
Crafter success rates and score, the files it writes, and the agent's cache bookkeeping."""

import json
import math

import av
import numpy as np
import pytest
import torch

from dreamer_data.collect.minatar_env import minatar_environment
from dreamer_model.configs import TokenizerConfig, TransformerConfig
from dreamer_model.eval.envs import EnvSettings
from dreamer_model.eval.evaluate import EvalOptions, Evaluation, run_eval
from dreamer_model.eval.policies import BehaviourPolicy, draw, keep_rows
from dreamer_model.eval.runner import evaluate
from dreamer_model.tokenizer import Tokenizer
from test_agent_pipeline import cli, invoke, stage


pytestmark = pytest.mark.usefixtures("one_thread")

BREAKOUT = EnvSettings("minatar", game="breakout", max_steps=300, size=(32, 32))


def test_same_seed_same_episodes_whatever_the_batch_size():
    one = evaluate(BREAKOUT, BehaviourPolicy("noisy-scripted"), episodes=5, seed=4, batch=1)
    all_at_once = evaluate(BREAKOUT, BehaviourPolicy("noisy-scripted"), episodes=5, seed=4, batch=5)
    key = [(e.env_seed, e.ret, e.length) for e in one.episodes]
    assert key == [(e.env_seed, e.ret, e.length) for e in all_at_once.episodes]
    other = evaluate(BREAKOUT, BehaviourPolicy("noisy-scripted"), episodes=5, seed=5, batch=5)
    assert {e.env_seed for e in other.episodes}.isdisjoint({e.env_seed for e in one.episodes})


class Recording:
    """An evaluation policy that plays ``policy`` and writes down every action the harness asks of it, per episode
    (in the order the episodes start)."""

    def __init__(self, policy):
        self.policy, self.name, self.actions = policy, policy.name, []

    def reset(self, envs, policy_seeds):
        self.policy.reset(envs, policy_seeds)
        self.batch = [[] for _ in envs]
        self.actions += self.batch

    def act(self, frames_B, alive_B):
        actions = self.policy.act(frames_B, alive_B)
        for k in np.flatnonzero(alive_B):
            self.batch[k].append(int(actions[k]))
        return actions


def replay_in_minatar(seed: int, index: int, actions: list[int]) -> tuple[list[float], list[bool]]:
    """Episode ``index`` of an evaluation with ``seed``, replayed with its actions in MinAtar's own
    ``Environment``: the seed restated from envs.py's documented rule (``SeedSequence([EVAL_SALT, S, i])``,
    first number), MinAtar's default sticky actions (0.1) and difficulty ramping. (rewards, terminal) per step."""
    env = minatar_environment()("breakout", sticky_action_prob=0.1, difficulty_ramping=True)
    env.seed(int(np.random.SeedSequence([0x4556414C, seed, index]).generate_state(2)[0]))
    env.reset()
    rewards, terminals = [], []
    for action in actions:
        reward, terminal = env.act(action)
        rewards.append(float(reward))
        terminals.append(bool(terminal))
    return rewards, terminals


def test_scripted_breakout_scores_above_random_and_its_report_replays_in_minatar(tmp_path):
    episodes, max_steps = 100, 300  # in batches of 32 (the default): 32 + 32 + 32 + 4
    played = {}
    for name in ("noisy-scripted", "random"):
        evaluation = Evaluation(EvalOptions(env="minatar", policy=name, game="breakout", episodes=episodes, seed=0,
                                            max_steps=max_steps, record=0, out=str(tmp_path / name)))
        evaluation.policy = recording = Recording(evaluation.policy)
        report, folder, _ = evaluation.run()
        assert report["episodes"] == episodes and [e["index"] for e in report["per_episode"]] == list(range(episodes))
        assert len(recording.actions) == episodes
        ended = []
        for e, actions in zip(report["per_episode"], recording.actions):
            assert e["env_seed"] == int(np.random.SeedSequence([0x4556414C, 0, e["index"]]).generate_state(2)[0])
            rewards, terminals = replay_in_minatar(0, e["index"], actions)
            # breakout pays +1 per brick; the episode ends when the ball is lost, or is cut at max_steps
            assert set(rewards) <= {0.0, 1.0} and e["length"] == len(actions) and e["return"] == sum(rewards), e
            assert not any(terminals[:-1]) and e["terminated"] == terminals[-1], e
            assert e["terminated"] or e["length"] == max_steps, e
            ended.append(terminals[-1])
        returns = np.array([e["return"] for e in report["per_episode"]])
        assert math.isclose(report["return_mean"], returns.mean())
        assert math.isclose(report["return_stderr"], returns.std(ddof=1) / math.sqrt(episodes))
        assert math.isclose(report["terminated_fraction"], np.mean(ended))
        assert json.loads((folder / "report.json").read_text())["per_episode"] == report["per_episode"]
        played[name] = returns
    # Measured on these 100 paired seeds: noisy-scripted 11.99 ± 0.91 (0 to 32; 33 episodes reach the 300-step cut),
    # uniform random 0.42 ± 0.07 (0 to 3; it loses the ball in ~10 steps); paired difference 11.57 ± 0.90 (z = 12.9),
    # and no seed where random did better.
    difference = played["noisy-scripted"] - played["random"]  # episode i: the same environment seed for both
    assert difference.mean() > 8 * difference.std(ddof=1) / math.sqrt(episodes), played
    assert played["noisy-scripted"].mean() > 8 and played["random"].mean() < 1, played


def test_crafter_report_has_success_rates_score_chart_and_video(tmp_path):
    # 100 steps of the random policy, seed 1, unlock something in both episodes (measured: collect_sapling in
    # the first, wake_up in the second), so the rates, the score and the returns below are not 0 == 0.
    options = EvalOptions(env="crafter", policy="random", episodes=2, seed=1, max_steps=100, record=1, out=str(tmp_path))
    report, folder, lines = run_eval(options)
    rates = report["success_rates_percent"]
    assert len(rates) == 22
    unlocked = [set(e["achievements"]) for e in report["per_episode"]]
    assert all(unlocked) and unlocked == [{"collect_sapling"}, {"wake_up"}]
    for name, rate in rates.items():
        assert rate == 100.0 * sum(name in u for u in unlocked) / 2
    # Crafter's score (Hafner 2021): exp(mean over the 22 achievements of ln(1 + rate %)) − 1; here two at 50 %
    assert math.isclose(report["crafter_score"], math.exp(2 * math.log(51) / 22) - 1)  # 0.4297
    # Crafter's reward: +1 per first unlock, ±0.1 per health point gained or lost
    returns = [e["return"] for e in report["per_episode"]]
    for episode in report["per_episode"]:
        health_change = (episode["return"] - len(episode["achievements"])) / 0.1
        assert abs(health_change - round(health_change)) < 1e-6 and abs(health_change) <= 9
    assert math.isclose(report["return_mean"], np.mean(returns))
    assert math.isclose(report["return_stderr"], np.std(returns, ddof=1) / math.sqrt(2))
    assert json.loads((folder / "report.json").read_text())["crafter_score"] == report["crafter_score"]
    assert (folder / "achievements.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with av.open(str(folder / "episode_0000.mp4")) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == report["per_episode"][0]["length"] + 1  # every observation, the last one included
    assert any("Crafter score" in line for line in lines)


def test_sampled_actions_follow_the_policy_and_each_episode_its_own_stream():
    streams = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    probs = torch.tensor([0.2, 0.3, 0.0, 0.5]).expand(4000, 4)
    counts = torch.bincount(draw(probs, streams(range(4000))), minlength=4).float() / 4000
    assert torch.allclose(counts, torch.tensor([0.2, 0.3, 0.0, 0.5]), atol=0.03)  # ~4 s.e.; action 2 never
    certain = torch.tensor([[0.0, 1.0, 0.0, 0.0]]).expand(50, 4)
    assert draw(certain, streams(range(50))).tolist() == [1] * 50
    # An episode's action depends on its own stream only, not on which episodes share its batch.
    alone = draw(probs[:1], streams([7]))
    together = draw(probs[:3], streams([3, 7, 11]))
    assert together[1] == alone[0]


def test_dropping_finished_episodes_from_a_kv_cache_keeps_the_others_exact():
    torch.manual_seed(0)
    t = TransformerConfig(dim=32, depth=2, heads=2, kv_heads=1, head_dim=16, registers=2, time_every=2)
    tokenizer = Tokenizer(TokenizerConfig(height=16, width=16, patch=8, latent_tokens=4, latent_dim=8, context=4,
                                          encoder=t, decoder=t)).eval()
    frames = torch.randint(0, 255, (3, 5, 16, 16, 3), dtype=torch.uint8)
    with torch.no_grad():
        reference = tokenizer.encode(frames[[0, 2]])  # rows 0 and 2, no cache
        cache = tokenizer.encoder.init_cache()
        first = tokenizer.encode(frames[:, :2], cache=cache, update_cache=True)
        keep_rows(cache, torch.tensor([0, 2]), tokenizer.encoder.layout.size)  # episode 1 ended
        rest = tokenizer.encode(frames[[0, 2], 2:], cache=cache, update_cache=True)
    torch.testing.assert_close(torch.cat((first[[0, 2]], rest), dim=1), reference, rtol=1e-5, atol=1e-5)


def test_agent_and_behaviour_policy_play_the_same_seeded_episodes(tmp_path_factory, tmp_path):
    root = stage(tmp_path_factory, "phase2")
    result = cli("dreamer-train", "eval", "minatar", "--ckpt", root / "phase2", "--episodes", "3", "--max-steps", "50",
                 "--record", "1", "--out", tmp_path / "agent")
    assert result.returncode == 0, result.stderr
    assert "phase2 on minatar breakout: 3 episodes" in result.stdout
    agent = json.loads((tmp_path / "agent" / "report.json").read_text())
    assert agent["phase"] == 2 and agent["env"]["size"] == [32, 32] and agent["episodes"] == 3
    assert all(1 <= e["length"] <= 50 for e in agent["per_episode"])
    random, _, _ = run_eval(EvalOptions(env="minatar", policy="random", data=str(root / "store"), episodes=3,
                                        max_steps=50, record=0, out=str(tmp_path / "random")))
    assert random["env"] == agent["env"]  # the store's settings: game, sticky actions, ramping, frame size
    assert [e["env_seed"] for e in random["per_episode"]] == [e["env_seed"] for e in agent["per_episode"]]
    with av.open(str(tmp_path / "agent" / "episode_0000.mp4")) as container:
        assert len(list(container.decode(video=0))) == agent["per_episode"][0]["length"] + 1


def test_eval_bad_input_is_one_line(tmp_path):
    for args, expected in (
        (("--ckpt", str(tmp_path / "nope")), "no such checkpoint file or run directory"),
        ((), "give exactly one of --ckpt"),
        (("--policy", "random", "--game", "pong"), "unknown MinAtar game"),
    ):
        code, lines = invoke("eval", "minatar", *args, "--episodes", "1", "--out", tmp_path / "o")
        assert code == 2 and len(lines) == 1 and expected in lines[0], (args, lines)
