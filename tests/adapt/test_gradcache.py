"""GradCache: chunked contrastive backprop gives the gradient of the whole batch, dropout included."""

from __future__ import annotations

import json

import torch
from helpers import TRAIN_SENTENCES, tiny_encoder

from ragkit.adapt.config import SupervisedConfig
from ragkit.adapt.distributed import World
from ragkit.adapt.gradcache import RandomState, length_chunks
from ragkit.adapt.lora import add_lora
from ragkit.adapt.losses.simcse import set_attention_dropout
from ragkit.adapt.stages import SupervisedStage


def _pairs(path):
    with path.open("w") as f:
        for i, s in enumerate(TRAIN_SENTENCES):
            negative = TRAIN_SENTENCES[(i + 7) % len(TRAIN_SENTENCES)]
            f.write(json.dumps({"query": s.split()[-2], "positive": s, "negative": [negative]}) + "\n")
    return path


def _gradient(tmp_path, micro: int, world: World = World(), batch_size: int = 8) -> torch.Tensor:
    encoder = tiny_encoder("llama", max_length=48)
    encoder.model = add_lora(encoder.model, 8, 16, 0.0, seed=0)
    with torch.no_grad():  # LoRA B starts at zero; give A a gradient too
        for name, p in encoder.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    config = SupervisedConfig(
        data=str(_pairs(tmp_path / "pairs.jsonl")),
        batch_size=batch_size,
        micro_batch_size=micro,
        instruction="Find",
        warmup_steps=0,
    )
    encoder.model.train()
    SupervisedStage(encoder, config, world).step(0)
    return torch.cat([p.grad.flatten() for p in encoder.model.parameters() if p.requires_grad])


def test_chunked_gradient_equals_the_full_batch_gradient(tmp_path):
    full = _gradient(tmp_path, micro=8)
    chunked = _gradient(tmp_path, micro=3)  # uneven chunks: 3 + 3 + 2
    assert full.abs().max() > 0
    torch.testing.assert_close(chunked, full, rtol=1e-4, atol=fp32_noise(full))


def fp32_noise(gradient: torch.Tensor) -> float:
    """What fp32 summation order alone changes in a gradient: 1e-5 of its largest element (here ~42, so
    4e-4; the thread count alone moves elements by 1.5e-5 on an AVX2 CPU, its chunking by 6e-5), far
    below its median element (~0.75), so a chunk's missing or doubled share still fails."""
    return 1e-5 * gradient.abs().max().item()


def test_replayed_random_state_reproduces_dropout():
    encoder = tiny_encoder("llama")
    set_attention_dropout(encoder.model, 0.3)
    encoder.model.train()
    batch = encoder.tokenize(TRAIN_SENTENCES[:4])
    state = RandomState()
    first = encoder.embed(batch)
    other = encoder.embed(batch)
    with state.replay():
        replayed = encoder.embed(batch)
    assert not torch.allclose(first, other)
    torch.testing.assert_close(replayed, first, rtol=0, atol=0)


def test_chunks_are_length_sorted_and_bounded_in_rows_and_padded_tokens():
    lengths = [5, 40, 12, 40, 7, 30, 6]
    chunks = length_chunks(lengths, max_rows=3, max_tokens=80)
    assert sorted(i for c in chunks for i in c) == list(range(7))
    assert chunks == [[1, 3], [5, 2], [4, 6, 0]]  # 2 x 40, 2 x 30, 3 x 7: nothing padded to 40 needlessly
    assert length_chunks([100], max_rows=4, max_tokens=10) == [[0]]  # a long row still gets a chunk
