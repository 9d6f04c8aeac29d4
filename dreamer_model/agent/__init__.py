"""The agent of phases 2 and 3 (paper §3.3): heads on hidden agent tokens, their losses and targets.

twohot (rewards/values over 255 symlog bins, HL-Gauss option) · distributions (bounded policy
distributions) · actions (the action space from a manifest) · heads (policy / reward / continuation
/ value MLPs with multi-token prediction, task embedding) · targets (eq. 9 targets from store rows)
· returns (TD(λ), eq. 10) · pmpo (eq. 11) · target (slow EMA value head) · config.
"""

from .actions import ActionSpace
from .config import AgentConfig
from .pmpo import pmpo_loss
from .returns import lambda_returns
from .twohot import SymlogBins

__all__ = ["ActionSpace", "AgentConfig", "SymlogBins", "lambda_returns", "pmpo_loss"]
