"""Collect raw episodes from real environments (Crafter, MinAtar) and replay them exactly.

collector (``collect``, seeds, worker pool) · episode (the recording loop) · raw (the on-disk
format) · crafter_env / minatar_env (the environments) · policies, crafter_policy, minatar_policy
(behaviour policies) · replay · source (shared ingest code) · minatar_render · scores.
Import from the submodules; this package stays light so ``inspect`` need not load the games.
"""
