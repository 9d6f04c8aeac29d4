"""The block-causal transformer: causality in time, read rules, K/V cache, a toy task it must learn."""

from dataclasses import replace

import pytest
import torch

from dreamer_model.configs import TransformerConfig
from dreamer_model.nn import BlockCausalTransformer, TokenGroup, TokenLayout
from dreamer_model.nn.transformer import use_bf16

torch.manual_seed(0)
SMALL = TransformerConfig(dim=32, depth=4, heads=4, kv_heads=2, head_dim=8, registers=2, time_every=2)


def layout_with_agent() -> TokenLayout:
    return TokenLayout([TokenGroup("latent", 4, grid=(2, 2)), TokenGroup("action", 1),
                        TokenGroup("register", 2), TokenGroup("agent", 1, hidden=True)])


def random_parts(b=2, t=6, dim=32):
    return {"latent": torch.randn(b, t, 4, dim), "action": torch.randn(b, t, 1, dim), "agent": torch.randn(b, t, 1, dim)}


@pytest.mark.parametrize("soft_cap,window", [(50.0, None), (None, None), (50.0, 3)])
def test_changing_step_t_never_changes_earlier_steps(soft_cap, window):
    model = BlockCausalTransformer(replace(SMALL, soft_cap=soft_cap, time_window=window), layout_with_agent()).eval()
    parts = random_parts()
    with torch.no_grad():
        before = model(parts)
        for t in (1, 3, 5):
            changed = {k: v.clone() for k, v in parts.items()}
            changed["latent"][:, t] += torch.randn_like(changed["latent"][:, t])
            after = model(changed)
            for name in before:
                assert torch.equal(after[name][:, :t], before[name][:, :t]), (name, t)
            assert (after["latent"][:, t] - before["latent"][:, t]).abs().max() > 1e-3
            if t + 1 < 6:  # the temporal layers do carry step t forward
                assert (after["latent"][:, t + 1] - before["latent"][:, t + 1]).abs().max() > 1e-4


def test_agent_tokens_never_change_the_world_model_tokens():
    model = BlockCausalTransformer(SMALL, layout_with_agent()).eval()
    parts = random_parts()
    with torch.no_grad():
        before = model(parts)
        after = model({**parts, "agent": torch.randn_like(parts["agent"]) * 5})
        for name in ("latent", "action", "register"):
            assert torch.equal(after[name], before[name])
        moved = model({**parts, "latent": parts["latent"] + 1.0})
    assert (moved["agent"] - before["agent"]).abs().max() > 1e-3  # agents do read the world model


def test_restricted_group_does_not_read_others_within_a_step():
    layout = TokenLayout([TokenGroup("patch", 4, grid=(2, 2), reads=("patch",)), TokenGroup("latent", 2)])
    model = BlockCausalTransformer(replace(SMALL, registers=0), layout).eval()
    parts = {"patch": torch.randn(1, 3, 4, 32), "latent": torch.randn(1, 3, 2, 32)}
    with torch.no_grad():
        before = model(parts)
        after = model({**parts, "latent": torch.randn(1, 3, 2, 32)})
    assert torch.equal(after["patch"], before["patch"])
    assert not torch.allclose(after["latent"], before["latent"])


@pytest.mark.parametrize("window,chunks", [(None, [1, 1, 1, 1, 1, 1, 1]), (None, [3, 4]), (3, [2, 1, 3, 1])])
def test_cached_steps_equal_the_full_sequence(window, chunks):
    model = BlockCausalTransformer(replace(SMALL, time_window=window), layout_with_agent()).eval()
    parts = random_parts(t=sum(chunks))
    with torch.no_grad():
        full = model(parts)
        cache, start, outs = model.init_cache(), 0, []
        for n in chunks:
            piece = {k: v[:, start:start + n] for k, v in parts.items()}
            peek = model(piece, cache=cache, update_cache=False)  # denoise phase: the cache stays as it is
            assert cache.steps == start
            outs.append(model(piece, cache=cache, update_cache=True))  # commit phase
            torch.testing.assert_close(peek["latent"], outs[-1]["latent"])
            start += n
    for name in full:
        torch.testing.assert_close(torch.cat([o[name] for o in outs], dim=1), full[name], atol=1e-5, rtol=1e-5)
    if window is not None:
        assert cache.keys[0].shape[2] == window - 1


def test_learns_to_copy_the_previous_step(one_thread):
    """A toy task only the temporal layer can solve: classify at step t the symbol seen at step t − 1."""
    torch.manual_seed(0)
    cfg = TransformerConfig(dim=32, depth=2, heads=4, kv_heads=2, head_dim=8, registers=0, time_every=2)
    model = BlockCausalTransformer(cfg, TokenLayout([TokenGroup("x", 2)]))
    embed, head = torch.nn.Embedding(8, 32), torch.nn.Linear(32, 8)
    optimizer = torch.optim.Adam([*model.parameters(), *embed.parameters(), *head.parameters()], lr=3e-3)

    def loss_of(symbols):  # (B, T, 2) ints
        logits = head(model({"x": embed(symbols)})["x"])
        return torch.nn.functional.cross_entropy(logits[:, 1:].reshape(-1, 8), symbols[:, :-1].reshape(-1))

    for _ in range(250):
        loss = loss_of(torch.randint(0, 8, (16, 6, 2)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        final = float(loss_of(torch.randint(0, 8, (64, 6, 2))))
    assert final < 0.1 * torch.log(torch.tensor(8.0)), final  # chance level is ln 8


@pytest.mark.parametrize("soft_cap", [50.0, None])
def test_bf16_runs_the_layers_in_bfloat16_and_returns_float32(soft_cap):
    """``use_bf16``: the matmuls round to bf16 (the output moves, by far less than bf16's 0.4 % relative precision
    because the float32 residual stream carries most of it), the output and the gradients stay float32, and the
    K/V cache still gives the full sequence's outputs."""
    model = BlockCausalTransformer(replace(SMALL, soft_cap=soft_cap), layout_with_agent())
    parts = random_parts()
    reference = model(parts)["latent"]
    use_bf16(model, True)
    out = model(parts)["latent"]
    assert out.dtype == torch.float32
    error = ((out - reference).norm() / reference.norm()).detach()
    assert 1e-6 < float(error) < 1e-2  # rounded to bf16 (float32 repeats itself exactly), yet the same function
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    with torch.no_grad():
        cache = model.init_cache()
        steps = [model({k: v[:, t:t + 1] for k, v in parts.items()}, cache, update_cache=True)["latent"]
                 for t in range(parts["latent"].shape[1])]
        torch.testing.assert_close(torch.cat(steps, dim=1), model(parts)["latent"], rtol=0.05, atol=0.05)
    use_bf16(model, False)
    torch.testing.assert_close(model(parts)["latent"], reference)
