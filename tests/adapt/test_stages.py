"""Each stage on a tiny random model: batches are reproducible per step and the loss falls."""

from __future__ import annotations

import pytest
import torch
from helpers import TRAIN_SENTENCES, tiny_decoder_dir, tiny_model

from ragkit import Encoder, EncoderConfig, RagkitError
from ragkit.adapt.config import MNTPConfig, SimCSEConfig, SupervisedConfig
from ragkit.adapt.distributed import World
from ragkit.adapt.lora import add_lora
from ragkit.adapt.losses.mntp import mask_tokens
from ragkit.adapt.registry import STAGE_TYPES, training_stage
from ragkit.adapt.stages import (
    DatasetSampler,
    MNTPStage,
    Sampler,
    SimCSEStage,
    SupervisedStage,
    SyntheticStage,
    reference_blocks,
    token_blocks,
)
from ragkit.encoders.loading import load_model, load_tokenizer


def _encoder(tmp_path, with_lm_head=False, **config):
    path = tiny_decoder_dir(tmp_path / "lm", **config)
    lm, _ = load_model(str(path), with_lm_head=with_lm_head)
    decoder = lm.get_decoder() if with_lm_head else lm
    encoder = Encoder(decoder, load_tokenizer(str(path)), EncoderConfig(max_length=32))
    return encoder, lm


def _train(stage, model, steps: int, lr: float) -> list[float]:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    losses = []
    model.train()
    for step in range(steps):
        torch.manual_seed(step)
        optimizer.zero_grad()
        loss, tokens = stage.step(step)
        assert tokens > 0
        optimizer.step()
        losses.append(loss)
    return losses


def _falls(losses: list[float]) -> bool:
    return sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3


def test_sampler_is_a_function_of_the_step_and_splits_batches_across_ranks():
    config = SimCSEConfig(batch_size=4, seed=3)
    whole = Sampler(10, config, World(), "simcse", distinct=True)
    steps = [whole.rows(s) for s in range(5)]  # 20 rows: two epochs
    assert sorted(steps[0] + steps[1] + steps[2][:2]) == list(range(10))  # an epoch is a permutation
    assert (
        Sampler(10, config, World(), "simcse", distinct=True).rows(3) == steps[3]
    )  # fresh sampler, same rows
    ranks = [Sampler(10, config, World(r, 2), "simcse", distinct=True).rows(1) for r in range(2)]
    assert sorted(ranks[0] + ranks[1]) == sorted(steps[1])


def test_dataset_batches_come_from_one_dataset_each_and_leave_partial_ones_out():
    datasets = ["nq"] * 9 + ["fever"] * 4 + ["squad"] * 2  # 2 + 1 + 0 full batches of 4 per epoch
    config = SupervisedConfig(batch_size=4, seed=1)
    sampler = DatasetSampler(datasets, config, World(), "supervised")
    epoch = [sampler.rows(s) for s in range(3)]
    assert all(len({datasets[i] for i in rows}) == 1 and len(rows) == 4 for rows in epoch)
    assert sorted(datasets[rows[0]] for rows in epoch) == ["fever", "nq", "nq"]
    assert len({i for rows in epoch for i in rows}) == 12  # no row twice in an epoch
    assert DatasetSampler(datasets, config, World(), "supervised").rows(4) == sampler.rows(4)  # resumable
    ranks = [DatasetSampler(datasets, config, World(r, 2), "supervised").rows(2) for r in range(2)]
    assert sorted(ranks[0] + ranks[1]) == sorted(epoch[2])
    with pytest.raises(RagkitError, match=r'no dataset has batch_size 10 examples; .* batching "mixed"'):
        DatasetSampler(datasets, SupervisedConfig(batch_size=10), World(), "supervised")


def test_token_blocks_are_full_bos_led_and_stop_when_enough(tmp_path):
    encoder, _ = _encoder(tmp_path)
    tok = encoder.tokenizer
    blocks, count = token_blocks(TRAIN_SENTENCES * 10, tok, length=16, wanted=5)
    assert blocks.shape == (5, 16) and count == 5
    assert (blocks[:, 0] == tok.bos_token_id).all()
    assert (blocks == tok.eos_token_id).any()  # texts are separated by EOS
    everything, _ = token_blocks(TRAIN_SENTENCES * 10, tok, length=16, wanted=10**6)
    _, counted = token_blocks(TRAIN_SENTENCES * 10, tok, length=16, wanted=5, count_all=True)
    assert counted == len(everything) > 5  # counted to the end, kept only what was wanted


def test_reference_blocks_are_the_tokenizers_own_ids_grouped_per_thousand_rows(tmp_path):
    """llm2vec's run_mntp.py: tokenizer(row) with its special tokens, concatenated per 1,000-row map
    batch, cut into blocks, each batch's remainder dropped; the special-tokens mask comes along."""
    encoder, _ = _encoder(tmp_path)
    tok = encoder.tokenizer
    rows = [TRAIN_SENTENCES[i % 48] for i in range(1500)] + ["", "  spaced  "]
    blocks, special, count = reference_blocks(rows, tok, length=64, wanted=10**6, count_all=True)
    expected, marks = [], []
    for group in (rows[:1000], rows[1000:]):
        encoded = tok(group, return_special_tokens_mask=True)
        ids = [i for row in encoded["input_ids"] for i in row]
        mask = [m for row in encoded["special_tokens_mask"] for m in row]
        n = len(ids) // 64 * 64
        expected += ids[:n]
        marks += mask[:n]
    assert blocks.flatten().tolist() == expected and count == len(blocks)
    assert special.flatten().tolist() == [bool(m) for m in marks]
    # No EOS between texts, a BOS only where the tokenizer puts one (each row, this tokenizer), and
    # exactly those positions are special.
    assert tok.eos_token_id not in expected
    assert special.any() and (blocks[special] == tok.bos_token_id).all()
    assert not (blocks[0, 0] == tok.bos_token_id and (blocks[1:, 0] == tok.bos_token_id).all())
    few, _, total = reference_blocks(rows, tok, length=64, wanted=3, count_all=True)
    assert len(few) == 3 and total == count


def test_mntp_on_llm2vecs_inputs_masks_as_its_collator_does(tmp_path):
    """Any position whose special-tokens mask is 0 may be masked, position 0 included; special ones
    never; no token is forced when the draw selects none."""
    encoder, lm = _encoder(tmp_path, with_lm_head=True)
    text = tmp_path / "text.txt"
    text.write_text("\n".join(TRAIN_SENTENCES * 40))
    config = MNTPConfig(data=str(text), batch_size=8, max_length=32, inputs="llm2vec")
    encoder.model = add_lora(encoder.model, 4, 8, 0.0, seed=0)
    stage = MNTPStage(encoder, config, World(), lm.get_output_embeddings())
    special = stage.special
    assert special is not None and special.shape == stage.blocks.shape
    seen = []
    original = mask_tokens

    def recorded(ids, maskable, **options):
        inputs, labels = original(ids, maskable, **options)
        seen.append((maskable, labels, options["at_least_one"]))
        return inputs, labels

    import ragkit.adapt.stages as stages_module

    stages_module.mask_tokens, restore = recorded, stages_module.mask_tokens
    try:
        for step in range(30):
            stage.step(step)
    finally:
        stages_module.mask_tokens = restore
    maskable = torch.cat([m for m, _, _ in seen])
    selected = torch.cat([labels != -100 for _, labels, _ in seen])
    assert not any(forced for *_, forced in seen)
    assert maskable[:, 0].any()  # position 0 may be masked (when it is not a special token)
    assert not (selected & ~maskable).any()  # special tokens never are
    rate = selected[maskable].float().mean().item()
    assert 0.18 < rate < 0.22  # the mask ratio, over every maskable position


def test_simcse_on_llm2vecs_inputs_takes_every_line_as_it_is_pooled_whole(tmp_path):
    encoder, _ = _encoder(tmp_path)
    text = tmp_path / "wiki1m.txt"
    lines = ["  One line. Two sentences here.  ", "short", "short", "Another line of text."] * 4
    text.write_text("\n".join(lines))
    stage = SimCSEStage(
        encoder, SimCSEConfig(data=str(text), batch_size=4, max_length=24, inputs="llm2vec"), World()
    )
    assert len(stage.ids) == len(lines)  # not split into sentences, short lines and repeats kept
    assert stage.ids[0] == encoder.tokenizer("One line. Two sentences here.")["input_ids"]
    assert set(stage.prompt_lengths) == {0}  # no separator: the reference pools the whole row, BOS too
    ragkit = SimCSEStage(encoder, SimCSEConfig(data=str(text), batch_size=2, max_length=24), World())
    # ragkit's own: sentences of 3+ words, each once ("Two sentences here.", "Another line of text.")
    assert len(ragkit.ids) == 2


@pytest.mark.parametrize("base", ["", "meta-llama/Meta-Llama-3-8B-Instruct"])
def test_supervised_on_llm2vecs_inputs_tokenizes_what_run_supervised_builds(base, tmp_path):
    """The query is `f"{instruction}; " + "!@#$%^&*()" + query` in the base's user turn (for the chat
    bases llm2vec names), tokenized as one string; the pooled tokens are the query's own, at the end."""
    import json

    path = tiny_decoder_dir(tmp_path / "lm")
    lm, _ = load_model(str(path))
    lm.config._name_or_path = base or str(path)
    rows = tmp_path / "pairs.jsonl"
    with rows.open("w") as f:
        for i, s in enumerate(TRAIN_SENTENCES[:8]):
            f.write(
                json.dumps({"query": s.split()[-2], "positive": s, "negative": TRAIN_SENTENCES[i + 9]}) + "\n"
            )
    config = SupervisedConfig(data=str(rows), batch_size=4, instruction="Find the sentence", inputs="llm2vec")
    tok = load_tokenizer(str(path))
    turn = ("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>") if base else ("", "")
    with training_stage("supervised", lm, tok, config, World()) as (stage, _):
        ids, prompt = stage.queries[0]
        query = TRAIN_SENTENCES[0].split()[-2]
        own = tok(query + turn[1], add_special_tokens=False)["input_ids"]
        assert ids == tok(turn[0] + "Find the sentence; " + query + turn[1])["input_ids"]
        assert prompt == len(ids) - len(own)
        positive_ids, positive_prompt = stage.positives[0]
        assert positive_ids == tok(turn[0] + TRAIN_SENTENCES[0] + turn[1])["input_ids"]
        assert positive_prompt == len(positive_ids) - len(
            tok(TRAIN_SENTENCES[0] + turn[1], add_special_tokens=False)["input_ids"]
        )


def test_mntp_loss_falls(tmp_path):
    # Embeddings (and so the tied head) large enough for the frozen head to express confident logits.
    encoder, lm = _encoder(tmp_path, with_lm_head=True, initializer_range=0.5)
    text = tmp_path / "text.txt"
    text.write_text("\n".join(TRAIN_SENTENCES))
    config = MNTPConfig(data=str(text), batch_size=4, micro_batch_size=2, max_length=24, mask_ratio=0.3)
    encoder.model = add_lora(encoder.model, 8, 16, 0.0, seed=0)
    stage = MNTPStage(encoder, config, World(), lm.get_output_embeddings())
    assert _falls(_train(stage, encoder.model, 25, lr=3e-2))


def test_mntp_micro_batches_give_the_full_batch_gradient(tmp_path):
    grads = []
    for micro in (4, 1):
        encoder, lm = _encoder(tmp_path / str(micro), with_lm_head=True)
        (tmp_path / "text.txt").write_text("\n".join(TRAIN_SENTENCES))
        config = MNTPConfig(
            data=str(tmp_path / "text.txt"), batch_size=4, micro_batch_size=micro, max_length=24
        )
        model = encoder.model = add_lora(encoder.model, 8, 16, 0.0, seed=0)
        with torch.no_grad():  # LoRA B starts at zero, which would leave A without gradient
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.1)
        MNTPStage(encoder, config, World(), lm.get_output_embeddings()).step(0)
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad]))
    assert grads[0].abs().max() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_simcse_loss_falls(tmp_path):
    encoder, _ = _encoder(tmp_path)
    text = tmp_path / "sentences.txt"
    text.write_text("\n".join(TRAIN_SENTENCES))
    config = SimCSEConfig(data=str(text), batch_size=16, micro_batch_size=8, max_length=24)
    encoder.model = add_lora(encoder.model, 8, 16, 0.05, seed=0)
    stage = SimCSEStage(encoder, config, World())
    assert _falls(_train(stage, encoder.model, 25, lr=1e-2))


def test_supervised_loss_falls_with_instructions_and_hard_negatives(tmp_path):
    encoder, _ = _encoder(tmp_path)
    rows = tmp_path / "pairs.jsonl"
    import json

    with rows.open("w") as f:
        for i, s in enumerate(TRAIN_SENTENCES):
            negative = TRAIN_SENTENCES[(i + 5) % len(TRAIN_SENTENCES)]
            f.write(json.dumps({"query": s.split()[-2], "positive": s, "negative": negative}) + "\n")
    config = SupervisedConfig(
        data=str(rows), batch_size=16, micro_batch_size=4, warmup_steps=0, instruction="Find the sentence"
    )
    encoder.model = add_lora(encoder.model, 8, 16, 0.0, seed=0)
    stage = SupervisedStage(encoder, config, World())
    assert stage.negatives == 1 and stage.dropped == 0
    ids, prompt = stage.queries[0]
    # The reference's training format: "; " between instruction and query (llm2vec's E5 loader).
    instruction = encoder.tokenizer("Find the sentence; ", add_special_tokens=False)["input_ids"]
    assert ids[1 : 1 + len(instruction)] == instruction and prompt == 1 + len(instruction)  # after BOS
    assert _falls(_train(stage, encoder.model, 25, lr=1e-2))


def test_training_stage_applies_the_stage_settings_and_restores_them(tmp_path):
    path = tiny_decoder_dir(tmp_path / "lm")
    lm, _ = load_model(str(path))
    tokenizer = load_tokenizer(str(path))
    (tmp_path / "s.txt").write_text("\n".join(TRAIN_SENTENCES))
    config = SimCSEConfig(
        data=str(tmp_path / "s.txt"),
        batch_size=8,
        max_length=24,
        attention_dropout=0.3,
        gradient_checkpointing=True,
    )
    assert lm.config.attention_dropout == 0.0 and not lm.is_gradient_checkpointing
    with training_stage("simcse", lm, tokenizer, config, World()) as (stage, peft_model):
        assert isinstance(stage, SimCSEStage) and stage.encoder.config.max_length == 24
        assert lm.config.attention_dropout == 0.3 and lm.is_gradient_checkpointing
        assert not lm.config.is_causal  # trains bidirectionally
        assert any(p.requires_grad for p in peft_model.parameters())
    assert lm.config.attention_dropout == 0.0 and not lm.is_gradient_checkpointing
    assert all(m.attention_dropout == 0.0 for m in lm.modules() if hasattr(m, "attention_dropout"))


def test_every_stage_type_builds_from_the_one_table(tmp_path):
    path = tiny_decoder_dir(tmp_path / "lm")
    (tmp_path / "s.txt").write_text("\n".join(TRAIN_SENTENCES))
    for name, kind in STAGE_TYPES.items():
        lm, _ = load_model(str(path), with_lm_head=kind.needs_lm_head)
        pairs = name in ("supervised", "distill", "synthetic")
        config = kind.config(data="pydoc" if pairs else str(tmp_path / "s.txt"), batch_size=4)
        config.max_length = 64
        if name == "distill":
            config.teacher, config.negatives = "bm25", 1
            config = kind.prepare(None, config, tmp_path / name, False)
        with training_stage(name, lm, load_tokenizer(str(path)), config, World()) as (stage, _):
            expected = SyntheticStage if name == "synthetic" else kind.stage  # without a teacher
            assert isinstance(stage, expected) and stage.name == name and stage.step(0)[1] > 0


@pytest.mark.filterwarnings("ignore:Full backward hook")
def test_lora_on_the_top_layers_only_stops_backward_below_them():
    model = add_lora(tiny_model("llama"), r=4, alpha=8, dropout=0.0, seed=0, layers=1)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".layers.1." in name for name in trainable)
    reached = []
    model.base_model.model.layers[0].register_full_backward_hook(lambda *args: reached.append(0))
    model.base_model.model.layers[1].register_full_backward_hook(lambda *args: reached.append(1))
    ids = torch.randint(4, 100, (2, 6))
    model(input_ids=ids).last_hidden_state.pow(2).mean().backward()
    assert reached == [1]  # the bottom layer is never differentiated
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    with pytest.raises(RagkitError, match="lora_layers must be between 1 and the model's 2 layers, got 3"):
        add_lora(tiny_model("llama"), r=4, alpha=8, dropout=0.0, seed=0, layers=3)


def test_auto_autocast_is_bf16_only_where_the_hardware_computes_it(monkeypatch):
    from ragkit.adapt import trainer
    from ragkit.adapt.config import PRESETS

    cpu = torch.device("cpu")
    for native in (True, False):
        monkeypatch.setattr(trainer, "native_bf16", lambda device, native=native: native)
        expected = torch.bfloat16 if native else None
        assert trainer.autocast_dtype(MNTPConfig(autocast="auto"), cpu) == expected
        assert trainer.autocast_dtype(MNTPConfig(autocast="bf16"), cpu) == torch.bfloat16  # asked: always
        assert trainer.autocast_dtype(MNTPConfig(), cpu) is None
        assert trainer.autocast_dtype(MNTPConfig(autocast="fp32"), cpu) is None
    # The CPU preset trains every stage that way (benchmarks/results/adapt_speed.md: same losses, faster).
    assert {stage["autocast"] for stage in PRESETS["cpu-small"].values()} == {"auto"}
    with pytest.raises(RagkitError, match="autocast must be one of None, fp32, bf16, auto"):
        MNTPConfig(autocast="fp8").check("mntp")
