"""The world model (paper §3.2, eqs. 1–4, 6–8): shortcut-forcing dynamics on cached tokenizer latents.

config (sizes; the presets are ``presets.py``) · actions (the manifest's action spec, which action fields,
the shift to "the action that led here", one action token) · model (the token layout and the transformer: x-prediction) · shortcut (sampling of
(τ, d) and the loss, eq. by eq.) · sampler (K-step generation with a K/V cache: denoise, commit).
"""

from .actions import ActionEmbedding, ActionField, action_fields, shift_actions
from .config import DynamicsConfig, Phase1Run
from .model import DynamicsModel, DynamicsOutput, dynamics_layout
from .sampler import Sampler
from .shortcut import ShortcutForcingLoss

__all__ = ["ActionEmbedding", "ActionField", "DynamicsConfig", "DynamicsModel", "DynamicsOutput", "Phase1Run",
           "Sampler", "ShortcutForcingLoss", "action_fields", "dynamics_layout", "shift_actions"]
