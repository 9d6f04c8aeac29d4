"""Evaluation in the real environments: the agent, or the behaviour policies that recorded the
data, on the same seeded Crafter / MinAtar episodes.

envs (seeds shared by every policy, frames as the store holds them) · policies (behaviour / agent,
one batched interface) · runner (lock-step episodes) · report (return ± s.e., Crafter success rates
and score, JSON, PNG chart, mp4 videos) · evaluate (the ``dreamer-train eval`` entry point).
"""
