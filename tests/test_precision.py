"""``train.bf16`` / ``train.cpu_bf16``: which trainers run their transformers under bfloat16 autocast.

The numerics of autocast itself are tested on the transformer (test_nn_transformer); here the switch: on a CPU
float32 unless asked with ``train.cpu_bf16``, and then only where the CPU has native bf16 instructions."""

from __future__ import annotations

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
