"""Multi-token targets of eq. 9 from a window of store rows.

Row convention (docs/FORMAT.md): row t holds frame t, the action a_t taken after it, and the reward /
terminal flag a_t produced. The agent token of step t has read frames ≤ t and actions < t. From it:

* the policy predicts a_{t+n} (n = 0 … L): row t+n's action, where it has one (``has_action``);
* the reward and continuation heads predict what *arriving* at step t+n produced: r^in_{t+n} =
  reward of row t+n−1 and c^in_{t+n} = 1 − is_terminal of row t+n−1. At an episode's first frame
  nothing has happened yet (r^in = 0, c^in = 1); at a window's first row that is not an episode
  start the incoming reward lies outside the window and is masked.

``shift_ahead`` turns per-step targets (B, T) into (B, T, L+1) with a validity mask that is False
where t+n runs past the window.
"""

from __future__ import annotations

import torch


def shift_ahead(x_BT: torch.Tensor, valid_BT: torch.Tensor, mtp: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, T, …) → (B, T, L+1, …) with out[:, t, n] = x[:, t+n]; mask (B, T, L+1) False past the end."""
    b, t = x_BT.shape[:2]
    pad = mtp
    x_pad = torch.cat((x_BT, torch.zeros((b, pad) + x_BT.shape[2:], dtype=x_BT.dtype, device=x_BT.device)), dim=1)
    valid_pad = torch.cat((valid_BT.bool(), torch.zeros(b, pad, dtype=torch.bool, device=valid_BT.device)), dim=1)
    index_TN = torch.arange(t, device=x_BT.device)[:, None] + torch.arange(mtp + 1, device=x_BT.device)[None, :]
    return x_pad[:, index_TN], valid_pad[:, index_TN]


def incoming(reward_BT: torch.Tensor, is_terminal_BT: torch.Tensor, has_action_BT: torch.Tensor,
             is_first_BT: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(r^in, c^in, valid) (B, T): what arriving at each step produced (see the module doc)."""
    first_B1 = is_first_BT[:, :1].bool()
    zeros_B1 = torch.zeros_like(reward_BT[:, :1])
    reward_in = torch.cat((zeros_B1, reward_BT[:, :-1].float()), dim=1)
    continue_in = torch.cat((torch.ones_like(zeros_B1), 1.0 - is_terminal_BT[:, :-1].float()), dim=1)
    valid = torch.cat((first_B1, has_action_BT[:, :-1].bool()), dim=1)
    # Inside a window an episode start can only be row 0 (windows do not cross episodes), but be exact:
    starts = is_first_BT.bool()
    reward_in = torch.where(starts, torch.zeros_like(reward_in), reward_in)
    continue_in = torch.where(starts, torch.ones_like(continue_in), continue_in)
    return reward_in, continue_in, valid | starts
