"""One player's run inside the world model: a real context from the store, then one imagined frame per
tick under the player's action (or under the episode's recorded actions, beside its real frames).

Generation is the sampler's own (``dynamics/sampler.py``): the context's latents are committed to a
rolling K/V cache, and each new frame is K denoising steps that read the cache, then one commit that
appends it. The tokenizer's decoder keeps its own rolling cache, so a frame costs the same at step 10
and at step 10,000. All noise comes from one generator reseeded at every reset: from the same context,
the same actions give the same frames (the browser test compares left with right from equal noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..dynamics import Sampler
from ..dynamics.sampler import take
from ..errors import ModelError
from ..nn import TimeCache
from ..rollout import Episode, read_episode
from .controls import Action
from .world import World

REPLAY_FRAMES = 512  # the most recorded steps after the context a session reads for "replay recorded actions"


def to_pixels(frames: torch.Tensor) -> np.ndarray:
    """Frames (…, H, W, C) in [0, 1] → uint8, as the rollout videos round them."""
    return (frames.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()


@dataclass
class Frame:
    """What one tick shows: the imagined (or real context) frame and, while replaying, the real one."""

    image: np.ndarray  # (H, W, 3) uint8
    real: np.ndarray | None
    step: int  # frames generated since the context (0: the real context frame)
    action: str
    kind: str  # "context", "imagined" or "replay"


class PlaySession:
    def __init__(self, world: World, context: int, steps: int | None = None, seed: int = 0):
        self.world, self.context, self.seed = world, int(context), int(seed)
        if self.context < 1:
            raise ModelError(f"play: --context must be ≥ 1, got {self.context}")
        self.sampler = Sampler(world.model, steps=steps)
        self.episode_id: str | None = None
        self.start_frame = 0
        self.replaying = False
        self.data: Episode | None = None
        self._cache: TimeCache | None = None
        self._decoder_cache: TimeCache | None = None
        self._generator = torch.Generator()
        self.step = 0

    @property
    def steps(self) -> int:
        return self.sampler.steps

    def episode_length(self, episode: str) -> int:
        for entry in self.world.episodes(self.context):
            if entry["id"] == episode:
                return entry["length"]
        raise ModelError(f"{self.world.store}: no episode {episode!r} with at least {self.context} frames")

    def begin(self, episode: str, start: int) -> Frame:
        """Read ``context`` real frames of ``episode`` from frame ``start`` (and what follows, for replay)."""
        length = self.episode_length(episode)
        if not 0 <= start <= length - self.context:
            raise ModelError(f"{episode}: a {self.context}-frame context starts at frame 0 … {length - self.context}, "
                             f"not {start}")
        rows = min(length - start, self.context + REPLAY_FRAMES)
        self.data = read_episode(self.world.store, episode, rows, start, self.world.model.action_fields)
        self.episode_id, self.start_frame = episode, start
        return self.reset()

    def real_frame(self, index: int) -> np.ndarray:
        """Frame ``index`` of the read window as stored (decoded from its latents if the store keeps no pixels)."""
        if self.data.frames is not None:
            return self.data.frames[0, index].numpy()
        with self.world.lock, torch.no_grad():
            return to_pixels(self.world.tokenizer.decode(self.data.latents[:, :index + 1].to(self.world.device))[0, -1])

    @torch.no_grad()
    def reset(self, replay: bool = False) -> Frame:
        """Back to the real context: commit its latents to fresh caches and show its last real frame."""
        if self.data is None:
            raise ModelError("play: no episode chosen")
        device = self.world.device
        self._generator.manual_seed(self.seed)
        self._cache, self._decoder_cache = self.sampler.init_cache(), self.world.tokenizer.decoder.init_cache()
        latents = self.data.latents[:, :self.context].to(device)
        noise = torch.randn(latents.shape, generator=self._generator).to(device)
        with self.world.lock:
            self.sampler.commit(self._cache, latents, {k: v.to(device) for k, v in
                                                       take(self.data.action_in, 0, self.context).items()},
                                self.data.has_action_in[:, :self.context].to(device), noise)
            self.world.tokenizer.decode(latents, self._decoder_cache, update_cache=True)
        self.step, self.replaying = 0, replay
        real = self.real_frame(self.context - 1)
        return Frame(real, real if replay else None, 0, "real context", "context")

    @property
    def replay_left(self) -> int:
        """Recorded steps after the context not yet replayed."""
        return self.data.latents.shape[1] - self.context - self.step if self.data is not None else 0

    @torch.no_grad()
    def advance(self, action: Action) -> Frame:
        """One imagined frame: under ``action``, or while replaying under the next recorded action."""
        if self.data is None:
            raise ModelError("play: no episode chosen")
        device = self.world.device
        if self.replaying:
            if self.replay_left <= 0:
                raise ModelError(f"{self.episode_id}: the recorded actions end here (frame "
                                 f"{self.start_frame + self.context + self.step - 1})")
            t = self.context + self.step
            inputs, has = take(self.data.action_in, t, t + 1), self.data.has_action_in[:, t:t + 1]
            label = "recorded: " + self.world.controls.describe_inputs(inputs, has)
        else:
            inputs, has = self.world.controls.encode(action)
            label = self.world.controls.describe(action)
        inputs, has = {k: v.to(device) for k, v in inputs.items()}, has.to(device)
        shape = (1, 1, *self.world.model.latent_shape)
        start_noise = torch.randn(shape, generator=self._generator).to(device)
        commit_noise = torch.randn(shape, generator=self._generator).to(device)
        with self.world.lock:
            x_new = self.sampler.denoise(self._cache, inputs, has, start_noise)
            self.sampler.commit(self._cache, x_new, inputs, has, commit_noise)
            image = to_pixels(self.world.tokenizer.decode(x_new, self._decoder_cache, update_cache=True)[0, 0])
        self.step += 1
        real = self.real_frame(self.context + self.step - 1) if self.replaying else None
        return Frame(image, real, self.step, label, "replay" if self.replaying else "imagined")
