"""RoPE: rotated dot products depend only on relative position (1-D time and 2-D patch grid)."""

import torch

from dreamer_model.nn.rope import RotaryEmbedding, apply_rope

torch.manual_seed(0)


def rotated_dot(rope, q, k, pos_q, pos_k):
    cos_q, sin_q = rope(pos_q)
    cos_k, sin_k = rope(pos_k)
    return (apply_rope(q, cos_q, sin_q) * apply_rope(k, cos_k, sin_k)).sum(-1)


def test_relative_position_property_1d():
    rope = RotaryEmbedding(16, n_axes=1, base=10_000.0)
    q, k = torch.randn(1, 16), torch.randn(1, 16)
    base = rotated_dot(rope, q, k, torch.tensor([3]), torch.tensor([1]))
    for shift in (1, 7, 500):
        shifted = rotated_dot(rope, q, k, torch.tensor([3 + shift]), torch.tensor([1 + shift]))
        torch.testing.assert_close(shifted, base, atol=1e-4, rtol=1e-4)
    other = rotated_dot(rope, q, k, torch.tensor([5]), torch.tensor([1]))  # a different offset differs
    assert not torch.allclose(other, base, atol=1e-3)


def test_relative_position_property_2d_grid():
    rope = RotaryEmbedding(32, n_axes=2, base=100.0)
    q, k = torch.randn(1, 32), torch.randn(1, 32)
    base = rotated_dot(rope, q, k, torch.tensor([[2, 5]]), torch.tensor([[0, 1]]))
    for shift in ([1, 0], [0, 3], [4, -2]):
        s = torch.tensor([shift])
        shifted = rotated_dot(rope, q, k, torch.tensor([[2, 5]]) + s, torch.tensor([[0, 1]]) + s)
        torch.testing.assert_close(shifted, base, atol=1e-4, rtol=1e-4)
    moved_row = rotated_dot(rope, q, k, torch.tensor([[3, 5]]), torch.tensor([[0, 1]]))
    moved_col = rotated_dot(rope, q, k, torch.tensor([[2, 6]]), torch.tensor([[0, 1]]))
    assert not torch.allclose(moved_row, base, atol=1e-3) and not torch.allclose(moved_col, base, atol=1e-3)


def test_rotation_keeps_norm_and_position_zero_is_identity():
    rope = RotaryEmbedding(8, n_axes=2)
    x = torch.randn(3, 8)
    cos, sin = rope(torch.tensor([[0, 0], [1, 2], [-1, 7]]))
    rotated = apply_rope(x, cos, sin)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(rotated[0], x[0])
