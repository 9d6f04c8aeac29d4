"""FSDP2 (``train.fsdp`` under torchrun): parameters, gradients and optimizer state sharded over the ranks, for
presets whose model and Adam state do not fit one device.

Every transformer block is its own FSDP unit (gathered just before it runs, freed after), then every root: a
module the training step calls (the tokenizer, the world model; for the agent, whose step calls its world model
and heads one by one, each of those). Gradients are reduce-scattered as means over ranks, so neither DDP nor
``Distributed.average_gradients`` runs; optimizers are built after sharding (their parameters are DTensors).

Checkpoints keep the one-process format: full (unsharded) model and optimizer state dicts, gathered onto rank 0's
CPU (``get_model_state_dict``; each optimizer state tensor all-gathered in ``optimizer.state_dict()``'s own
format). Resuming shards such a full state dict again, so FSDP and non-FSDP checkpoints are interchangeable, on
any number of ranks. (``get/set_optimizer_state_dict`` are not used: they key states by parameter name, create
the state of an optimizer that has not stepped by taking a zero step, and refuse a state without entries for
parameters that never had a gradient, as phase 2's value head.)
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, set_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from ..errors import ModelError
from ..nn.transformer import BlockCausalTransformer

GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)  # full tensors, on rank 0's CPU only
SCATTER = StateDictOptions(full_state_dict=True)  # every rank passes the full state and keeps its shards


def shard(model: nn.Module, roots: list[nn.Module], device: torch.device) -> None:
    """Shard ``model`` in place: each transformer block, then each of ``roots`` (what the step calls)."""
    # FSDP warns, once per module class, that a block returning a view (``Layer``: h.view(…)) would lose its
    # backward hook to an in-place op on that view; no caller modifies a module's output in place
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module \(.*\) returned a view tensor")
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for module in model.modules():
        if isinstance(module, BlockCausalTransformer):
            for layer in module.layers:
                fully_shard(layer, mesh=mesh)
    for root in roots:
        fully_shard(root, mesh=mesh)
    left = [name for name, p in model.named_parameters() if not isinstance(p, DTensor)]
    if left:  # their gradients would not be averaged over ranks
        raise ModelError(f"train.fsdp: parameters outside every sharded module: {', '.join(left[:5])}")


def agent_roots(agent: nn.Module) -> list[nn.Module]:
    """The agent's roots: its world model and each head, which the phase-2 and phase-3 steps call one by one (never
    the agent as a whole). The policy head is sharded as its MLP: FSDP finds the tensors to hook the backward on in
    a module's output, and the head returns a distribution object."""
    return [agent.policy.mlp if module is agent.policy else module for module in agent.children()
            if next(module.parameters(), None) is not None]


@contextmanager
def gathered(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` with full parameters inside the block (unsharded when FSDP shards it)."""
    if not isinstance(module, FSDPModule):
        yield module
        return
    module.unshard()
    try:
        yield module
    finally:
        module.reshard()


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The one-process ``state_dict`` on rank 0 (CPU tensors); ``{}`` on the other ranks. Every rank calls it."""
    return get_model_state_dict(model, options=GATHER)


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Shard a full ``state_dict`` (every rank passes it) into ``model``."""
    set_model_state_dict(model, state, options=SCATTER)


def full_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The one-process ``optimizer.state_dict()`` on rank 0 (CPU tensors); ``{}`` on the other ranks. Every rank
    calls it (each sharded state tensor is all-gathered in turn)."""
    state = optimizer.state_dict()
    full = {index: {key: value.full_tensor().cpu() if isinstance(value, DTensor) else value
                    for key, value in entry.items()} for index, entry in state["state"].items()}
    return {**state, "state": full} if dist.get_rank() == 0 else {}


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a full ``optimizer.state_dict()`` (every rank passes it): each state tensor shaped like its parameter
    is cut as the parameter is, this rank keeping its shard."""
    params = [p for group in optimizer.param_groups for p in group["params"]]

    def like(value: Any, param: torch.Tensor) -> Any:
        if isinstance(param, DTensor) and isinstance(value, torch.Tensor) and value.shape == param.shape:
            return distribute_tensor(value.to(param.device), param.device_mesh, param.placements, src_data_rank=None)
        return value

    sharded = {index: {key: like(value, params[index]) for key, value in entry.items()}
               for index, entry in state["state"].items()}
    optimizer.load_state_dict({**state, "state": sharded})
