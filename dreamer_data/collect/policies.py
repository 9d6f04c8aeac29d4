"""Behaviour policies by name: ``random`` and ``noisy-scripted`` (a scripted player plus epsilon noise).

A policy sees the environment object (``env.view()`` for scripted play) and draws all of its
randomness from the ``numpy.random.Generator`` it was built with, so an episode's actions depend
only on (environment seed, policy seed).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..errors import DreamerDataError
from .crafter_policy import CrafterScripted
from .minatar_policy import Script, scripted_for

POLICIES: tuple[str, ...] = ("random", "noisy-scripted")
DEFAULT_EPSILON = 0.1


class Policy(Protocol):
    def act(self, env) -> int:
        """The action to take in ``env``'s current state."""


class RandomPolicy:
    """Uniform over all actions."""

    def __init__(self, n_actions: int, rng: np.random.Generator):
        self.n_actions = n_actions
        self.rng = rng

    def act(self, env) -> int:
        return int(self.rng.integers(self.n_actions))


class NoisyPolicy:
    """With probability ``epsilon`` a uniform random action, else the scripted one."""

    def __init__(self, scripted: Policy, n_actions: int, epsilon: float, rng: np.random.Generator):
        self.scripted = scripted
        self.n_actions = n_actions
        self.epsilon = epsilon
        self.rng = rng

    def act(self, env) -> int:
        # Both draws happen every step so the stream does not depend on which branch ran.
        explore, random_action = self.rng.random() < self.epsilon, int(self.rng.integers(self.n_actions))
        scripted = self.scripted.act(env)
        return random_action if explore else scripted


def make_policy(name: str, env, epsilon: float, rng: np.random.Generator) -> Policy:
    """Build policy ``name`` for the environment ``env`` (a CrafterEnv or MinAtarEnv)."""
    if name == "random":
        return RandomPolicy(env.n_actions, rng)
    if name == "noisy-scripted":
        return NoisyPolicy(_scripted(env, rng), env.n_actions, epsilon, rng)
    raise DreamerDataError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")


def _scripted(env, rng: np.random.Generator) -> Policy:
    if env.kind == "crafter":
        return CrafterScripted(rng)
    return _GridScript(scripted_for(env.game))


class _GridScript:
    """A stateless MinAtar script: (grid, channel ids) → action."""

    def __init__(self, script: Script):
        self.script = script

    def act(self, env) -> int:
        return self.script(env.view(), env.channels)
