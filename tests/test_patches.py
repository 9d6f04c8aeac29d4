"""patchify / unpatchify: lossless round trip, padding to a multiple of the patch (360 -> 384), numpy and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamer_data.patches import PatchGrid, patchify, unpatchify


def test_minecraft_frame_pads_360_to_384_and_round_trips():
    """The design's Minecraft grid: 360x640, 16x16 patches, padded to 384x640 -> 960 patches per frame."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 3, 360, 640, 3), dtype=np.uint8)  # (B, T, H, W, C)
    grid = PatchGrid(360, 640, 16, pad_multiple=128)
    assert (grid.padded_height, grid.padded_width, grid.rows, grid.cols, grid.num_patches) == (384, 640, 24, 40, 960)
    patches = patchify(frames, 16, pad_multiple=128)
    assert patches.shape == (2, 3, 960, 16 * 16 * 3) and patches.dtype == np.uint8
    np.testing.assert_array_equal(unpatchify(patches, grid), frames)
    # the padding is zeros, at the bottom: patch row 22 holds 8 real rows then 8 zero rows, rows 23 all zeros
    grid_rows = patches.reshape(2, 3, 24, 40, 16, 16, 3)
    np.testing.assert_array_equal(grid_rows[:, :, 22, :, 8:], 0)
    np.testing.assert_array_equal(grid_rows[:, :, 23], 0)
    real = grid_rows[:, :, 22, :, :8].swapaxes(2, 3).reshape(2, 3, 8, 640, 3)  # (40, 8, 16) -> (8, 40*16)
    np.testing.assert_array_equal(real, frames[..., 352:360, :, :])


def test_default_padding_is_the_next_multiple_of_the_patch():
    grid = PatchGrid(360, 640, 16)
    assert (grid.padded_height, grid.num_patches) == (368, 920)
    frames = np.random.default_rng(1).integers(0, 256, (1, 360, 640, 3), dtype=np.uint8)
    np.testing.assert_array_equal(unpatchify(patchify(frames, 16), grid), frames)
    with pytest.raises(ValueError):
        PatchGrid(360, 640, 16, pad_multiple=100)  # not a multiple of the patch


def test_patch_order_is_row_major_and_each_patch_is_a_p_by_p_block():
    frames = np.arange(2 * 8 * 12 * 3, dtype=np.int64).reshape(2, 8, 12, 3)
    patches = patchify(frames, 4)  # grid 2 x 3
    assert patches.shape == (2, 6, 48)
    for index in range(6):
        r, c = divmod(index, 3)
        np.testing.assert_array_equal(patches[:, index].reshape(2, 4, 4, 3), frames[:, 4 * r:4 * r + 4, 4 * c:4 * c + 4])


@pytest.mark.parametrize("height, width, patch", [(64, 64, 8), (65, 70, 8), (1, 1, 4), (36, 64, 16), (7, 16, 16)])
def test_round_trip_any_size(height, width, patch):
    frames = np.random.default_rng(height * width).random((3, height, width, 3)).astype(np.float32)
    grid = PatchGrid(height, width, patch)
    patches = patchify(frames, patch)
    assert patches.shape == (3, grid.num_patches, patch * patch * 3)
    assert grid.padded_height % patch == 0 and 0 <= grid.padded_height - height < patch
    np.testing.assert_array_equal(unpatchify(patches, grid), frames)


def test_torch_tensors_round_trip_and_match_numpy():
    frames = torch.randint(0, 256, (2, 4, 40, 72, 3), dtype=torch.uint8)
    patches = patchify(frames, 16)
    assert isinstance(patches, torch.Tensor) and patches.shape == (2, 4, 3 * 5, 768)
    np.testing.assert_array_equal(patches.numpy(), patchify(frames.numpy(), 16))
    assert torch.equal(unpatchify(patches, PatchGrid(40, 72, 16)), frames)
    floats = torch.rand(1, 24, 24, 3, requires_grad=True)
    unpatchify(patchify(floats, 16), PatchGrid(24, 24, 16)).sum().backward()  # differentiable
    assert torch.equal(floats.grad, torch.ones_like(floats))


def test_unpatchify_rejects_patches_of_another_grid():
    patches = patchify(np.zeros((1, 32, 32, 3), np.uint8), 16)
    with pytest.raises(ValueError):
        unpatchify(patches, PatchGrid(48, 32, 16))
    with pytest.raises(ValueError):
        unpatchify(patches[..., :-1], PatchGrid(32, 32, 16))
