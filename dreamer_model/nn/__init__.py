"""The block-causal transformer shared by the tokenizer and the dynamics model, one idea per file.

norms (RMSNorm) · rope (rotary positions) · attention (GQA, QK-norm, soft-cap, SDPA) · mlp (SwiGLU)
· layout (which tokens a time step holds and which may read which: every mask comes from here)
· cache (K/V of past steps for the temporal layers) · layer (pre-norm residual block over space or
time) · transformer (the stack).
"""

from .cache import TimeCache
from .layout import TokenGroup, TokenLayout
from .transformer import BlockCausalTransformer

__all__ = ["BlockCausalTransformer", "TimeCache", "TokenGroup", "TokenLayout"]
