"""The agent of phases 2 and 3 (paper §3.3): heads on hidden agent tokens, their losses and targets.

twohot (rewards/values over 255 symlog bins, HL-Gauss option) · distributions (bounded policy
distributions) · actions (the action space from a manifest) · tasks (which reward a task reads) · heads
(policy / reward / continuation / value MLPs with multi-token prediction, task embedding) · model (the
world model with agent tokens and the heads) · targets (eq. 9 targets from store rows) · returns (TD(λ),
eq. 10) · pmpo (eq. 11) · slow_target (the slow EMA copy of the value head) · behaviour_cloning (phase 2's
objective) · imagination (phase 3's rollouts and losses) · config.
"""

from .actions import ActionSpace
from .config import AgentConfig
from .pmpo import pmpo_loss
from .returns import lambda_returns
from .twohot import SymlogBins

__all__ = ["ActionSpace", "AgentConfig", "SymlogBins", "lambda_returns", "pmpo_loss"]
