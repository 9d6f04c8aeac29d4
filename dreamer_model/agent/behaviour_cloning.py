"""Phase 2's objective (paper §3.3, eq. 9): behaviour cloning, reward and continuation heads on agent tokens.

Start from a phase-1 world model; add hidden agent tokens (task embedding → ``agent`` group, read by
no world-model token) and heads on their outputs h_t. Each step, on a batch of latent windows:

    L = w_dyn · L_shortcut(world model)                                   (eq. 7, still on; off with freeze)
      + w_bc  · mean_{t,n} −ln π(a_{t+n} | h_t)                            (eq. 9, policy, n = 0 … L)
      + w_rew · mean_{t,n} −ln p(r^in_{t+n} | h_t)                         (eq. 9, reward, two-hot)
      + w_con · mean_{t,n} BCE(c^in_{t+n} | h_t)                           (continuation, for imagination)

The agent pass feeds the context as it is fed when acting and imagining: every frame re-noised to
the context level τ_ctx and labelled d_min (``Sampler.renoise``), so the heads see at training what
they see later. Eq. 9 sums over n; we average over the valid (t, n) pairs (a constant factor).
Targets follow the row convention (``agent/targets.py``). The world model is fine-tuned jointly
(paper), or frozen with ``--freeze-wm`` (then only task embedding and heads learn).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.nn import functional as F

from dreamer_data.store.fields import HAS_ACTION, IS_FIRST, IS_TERMINAL, LATENTS

from ..dynamics import Sampler, ShortcutForcingLoss, shift_actions
from ..shards import WHOLE, Shard
from .config import AgentConfig
from .model import Agent
from .targets import incoming, shift_ahead
from .tasks import Task

Reduce = Callable[[torch.Tensor], torch.Tensor]  # the mean over processes (DDP)


def bc_losses(agent: Agent, h_BTD: torch.Tensor, batch: dict[str, torch.Tensor], reward_BT: torch.Tensor,
              mtp: int, balance_continue: bool = True, reduce: Reduce | None = None
              ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Eq. 9 terms on agent states h (B, T, D) and the window's rows (see ``agent/targets.py``). Each term is a
    mean over the valid entries of the global batch: ``reduce`` (DDP) averages the counts over processes."""

    def size(mask: torch.Tensor) -> torch.Tensor:
        return mask.sum() if reduce is None else reduce(mask.sum().float())

    space = agent.space
    has_action_BT = batch[HAS_ACTION].bool() if HAS_ACTION in batch else torch.ones_like(reward_BT, dtype=torch.bool)
    # policy: a_{t+n}, n = 0 … L
    dist = agent.policy(h_BTD)  # batch shape (B, T, L+1)
    targets, masks = {}, None
    for c in space.components:
        target, mask = shift_ahead(batch[c.field], has_action_BT, mtp)  # (B, T, L+1, …), (B, T, L+1)
        targets[c.name], masks = target, mask
    bc_nll_BTN = -dist.log_prob(targets)
    bc = (bc_nll_BTN * masks).sum() / size(masks).clamp(min=1)
    # reward and continuation of arriving at step t+n
    r_in, c_in, valid_in = incoming(reward_BT, batch[IS_TERMINAL], has_action_BT, batch[IS_FIRST])
    r_target, r_mask = shift_ahead(r_in, valid_in, mtp)
    c_target, _ = shift_ahead(c_in, valid_in, mtp)
    reward_logits = agent.reward(h_BTD)  # (B, T, L+1, bins)
    reward_nll = (agent.bins.nll(reward_logits, r_target) * r_mask).sum() / size(r_mask).clamp(min=1)
    cont_logits = agent.cont(h_BTD).float()  # (B, T, L+1)
    cont_bce = F.binary_cross_entropy_with_logits(cont_logits, c_target, reduction="none")
    ends, goes_on = r_mask & (c_target < 0.5), r_mask & (c_target >= 0.5)
    if balance_continue and bool(size(ends) > 0):
        # Episode ends are rare (one row per episode): average the two classes separately so the head
        # cannot ignore them; imagination needs them to know when an imagined episode is over.
        cont_nll = (0.5 * (cont_bce * ends).sum() / size(ends)
                    + 0.5 * (cont_bce * goes_on).sum() / size(goes_on).clamp(min=1))
    else:
        cont_nll = (cont_bce * r_mask).sum() / size(r_mask).clamp(min=1)
    with torch.no_grad():
        first = masks[..., 0]
        mode = dist.mode()
        correct = torch.stack([(mode[c.name][:, :, 0] == targets[c.name][:, :, 0]).reshape(*first.shape, -1).all(-1)
                               for c in space.components]).all(0)  # n = 0: the action taken at t
        reward_pred = agent.bins.decode(reward_logits[..., 0, :])
        r_first = r_mask[..., 0]
        metrics = {
            "bc_accuracy": float((correct & first).sum() / first.sum().clamp(min=1)),
            "policy_entropy": float((dist.entropy()[..., 0] * first).sum() / first.sum().clamp(min=1)),
            "reward_mae": float(((reward_pred - r_target[..., 0]).abs() * r_first).sum() / r_first.sum().clamp(min=1)),
            "continue_accuracy": float((((cont_logits[..., 0] > 0).float() == c_target[..., 0]).float() * r_first).sum()
                                       / r_first.sum().clamp(min=1)),
            "end_recall": float(((cont_logits < 0) & ends).sum() / ends.sum()) if bool(ends.any()) else float("nan"),
        }
    return {"bc": bc, "reward": reward_nll, "continue": cont_nll}, metrics


class BehaviourCloning:
    """Eq. 9 (and the world model's eq. 7 while it is fine-tuned) on a batch of latent windows."""

    def __init__(self, agent: Agent, tasks: list[Task], dynamics_loss: ShortcutForcingLoss, cfg: AgentConfig):
        self.agent, self.tasks, self.dynamics_loss, self.cfg = agent, tasks, dynamics_loss, cfg
        self.sampler = Sampler(agent.world)

    def __call__(self, batch: dict[str, torch.Tensor], generator: torch.Generator, with_dynamics: bool,
                 shard: Shard = WHOLE, reduce: Reduce | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """(L, metrics) on a batch of store rows; ``generator`` draws the task per window and the noise for the
        global batch, of which ``shard`` keeps this process's rows; ``reduce`` averages over processes."""
        agent, cfg = self.agent, self.cfg
        device = next(agent.parameters()).device
        batch = {key: value.to(device) for key, value in batch.items()}
        latents = batch[LATENTS].float()  # (B, T, S_z, D_z)
        b, t = latents.shape[:2]
        action_in, has_in = shift_actions(batch, agent.world.action_fields)
        task_B = shard.draw(lambda shape: torch.randint(len(self.tasks), shape, generator=generator), (b,)).to(device)
        reward_KBT = torch.stack([task.reward(batch) for task in self.tasks])  # every task's reward
        reward_BT = reward_KBT[task_B, torch.arange(b, device=device)]  # each window's own task
        total = latents.new_zeros(())
        metrics: dict[str, float] = {}
        if with_dynamics:
            def f(z, tau, d):
                return agent.world(z, tau, d, action_in, has_in).x_pred

            dyn_loss, dyn_metrics = self.dynamics_loss(f, latents, generator, reduce=reduce, shard=shard)
            total = total + cfg.dynamics_weight * dyn_loss
            metrics.update({f"dyn_{k}": v for k, v in dyn_metrics.items()})
        noise = shard.draw(lambda shape: torch.randn(shape, generator=generator), tuple(latents.shape)).to(device)
        z_ctx, tau, d = self.sampler.renoise(latents, noise)  # the context as the agent sees it when acting
        agent_has_in = has_in if cfg.policy_sees_actions else torch.zeros_like(has_in)
        out = agent.world(z_ctx, tau, d, action_in, agent_has_in, agent=agent.agent_inputs(task_B, t),
                          window=cfg.policy_window)
        h = agent.state(out.agent)  # (B, T, D)
        terms, head_metrics = bc_losses(agent, h, batch, reward_BT, cfg.mtp, cfg.balance_continue, reduce)
        total = total + cfg.bc_weight * terms["bc"] + cfg.reward_weight * terms["reward"] \
            + cfg.continue_weight * terms["continue"]
        metrics.update({"loss": float(total.detach()), "bc_nll": float(terms["bc"].detach()),
                        "reward_nll": float(terms["reward"].detach()),
                        "continue_nll": float(terms["continue"].detach()), **head_metrics})
        return total, metrics
