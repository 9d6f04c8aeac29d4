"""``train.bf16`` / ``train.cpu_bf16``: which trainers run their transformers under bfloat16 autocast.

The numerics of autocast itself are tested on the transformer (test_nn_transformer); here the switch: on a CPU
float32 unless asked with ``train.cpu_bf16``, and then only where the CPU has native bf16 instructions."""

from __future__ import annotations

import json
import math

import pytest

from dreamer_model.nn.transformer import BlockCausalTransformer
from dreamer_model.train.precision import cpu_has_native_bf16
from dreamer_model.train.tokenizer import TokenizerTrainer, TokenizerTrainOptions

pytestmark = pytest.mark.usefixtures("one_thread")


def transformers_in_bf16(trainer) -> list[bool]:
    return [part.bf16 for part in trainer.model.modules() if isinstance(part, BlockCausalTransformer)]


@pytest.mark.parametrize("sets,expected", [([], False), (["train.bf16=true"], False),
                                           (["train.cpu_bf16=true"], None)])
def test_cpu_trainers_run_float32_unless_cpu_bf16_asks_on_a_native_cpu(breakout_store, tmp_path, sets, expected):
    expected = cpu_has_native_bf16() if expected is None else expected
    trainer = TokenizerTrainer(TokenizerTrainOptions(data=str(breakout_store), out=str(tmp_path / "run"),
                                                     preset="quickstart", sets=sets, device="cpu"))
    try:
        assert trainer.bf16 is expected
        assert transformers_in_bf16(trainer) == [expected, expected]  # encoder and decoder
        metrics = trainer.train_step(next(trainer.batches()))
        assert math.isfinite(metrics["loss"])  # a real step either way
    finally:
        trainer.close()


def test_a_compiled_cpu_step_trains_as_the_eager_one(breakout_store, tmp_path):
    """``train.compile`` on the CPU (the quickstart turns it on for long stages): the same losses as eager, and the
    checkpoint holds the model's own parameter names (not the compiled wrapper's)."""
    from dreamer_model.checkpoint import load_checkpoint

    losses = {}
    for compiled in (False, True):
        out = tmp_path / f"compiled-{compiled}"
        trainer = TokenizerTrainer(TokenizerTrainOptions(
            data=str(breakout_store), out=str(out), preset="quickstart", steps=3, seed=0, device="cpu",
            sets=[f"train.compile={str(compiled).lower()}", "train.log_every=1", "train.eval_every=3",
                  "train.eval_windows=8"]))
        try:
            assert hasattr(trainer.net, "_orig_mod") is compiled  # what torch.compile returns wraps the model
            trainer.fit()
        finally:
            trainer.close()
        losses[compiled] = [row["loss"] for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
                            if row.get("split") == "train"]
        names = sorted(load_checkpoint(str(out), "tokenizer")["model"])
        assert names and not any(name.startswith("_orig_mod") for name in names)
    assert len(losses[True]) == 3
    assert losses[True] == pytest.approx(losses[False], rel=1e-3)


@pytest.mark.parametrize("native", [True, False])
def test_cpu_bf16_on_a_cpu_without_native_bf16_trains_float32_and_says_so(breakout_store, tmp_path, monkeypatch,
                                                                         native):
    """What /proc/cpuinfo answers is the machine's; the run follows it and a non-native CPU gets one note line."""
    from dreamer_model.train import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    events = {}
    trainer = TokenizerTrainer(TokenizerTrainOptions(data=str(breakout_store), out=str(tmp_path / "run"),
                                                     preset="quickstart", steps=1, sets=["train.cpu_bf16=true"],
                                                     device="cpu"),
                               lambda event, info: events.setdefault(event, info))
    try:
        assert trainer.bf16 is native
        trainer.fit()
    finally:
        trainer.close()
    notes = [note for note in events["start"]["notes"] if note.startswith("train.cpu_bf16")]
    assert (notes == []) if native else (len(notes) == 1 and "training in float32" in notes[0]), notes
