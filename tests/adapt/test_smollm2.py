"""Real SmolLM2-135M weights: the MNTP shift matches the LM head; a short adapt run saves a sound encoder."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import torch
from helpers import requires_smollm2

from ragkit import Encoder
from ragkit.adapt import adapt, stage_configs
from ragkit.adapt.data import read_texts
from ragkit.adapt.losses.mntp import IGNORE, mask_token_id, mask_tokens, maskable_positions, mntp_loss
from ragkit.encoders.loading import load_model, load_tokenizer, resolve

PASSAGE = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named "
    "after the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889."
)


def _mntp_losses(lm, tok, texts: list[str]) -> tuple[float, float]:
    """Mean MNTP loss read from the state at i-1 (shifted) and from the masked position itself."""
    shifted = unshifted = 0.0
    for text in texts:
        ids = torch.tensor([[tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"][:120]]])
        mask = torch.ones_like(ids)
        g = torch.Generator().manual_seed(0)
        maskable = maskable_positions(ids, mask, tok.all_special_ids)
        inputs, labels = mask_tokens(
            ids, maskable, mask_id=mask_token_id(tok), vocab_size=len(tok), generator=g
        )
        with torch.no_grad():
            hidden = lm.get_decoder()(input_ids=inputs, attention_mask=mask).last_hidden_state
            shifted += mntp_loss(hidden, labels, lm.get_output_embeddings()).item()
            where = labels[0] != IGNORE
            unshifted += torch.nn.functional.cross_entropy(
                lm.lm_head(hidden[0][where]), labels[0][where]
            ).item()
    return shifted / len(texts), unshifted / len(texts)


@requires_smollm2
def test_the_pretrained_head_reads_the_previous_state_and_bidirectional_attention_needs_mntp():
    lm, _ = load_model("smollm2-135m", with_lm_head=True)
    tok = load_tokenizer(resolve("smollm2-135m"))
    texts = list(itertools.islice(read_texts("pydoc"), 200, 208))
    lm.config.is_causal = True
    causal_shifted, causal_unshifted = _mntp_losses(lm, tok, texts)
    lm.config.is_causal = False
    bi_shifted, bi_unshifted = _mntp_losses(lm, tok, texts)
    # Measured: causal 6.1 vs 7.7 nats, bidirectional 7.8 vs 8.4; chance is ln(49152) = 10.8.
    assert causal_unshifted > causal_shifted + 1  # the head predicts the next token: hence the shift
    assert bi_shifted < bi_unshifted
    assert bi_shifted > causal_shifted + 1  # the untrained bidirectional model is worse: what MNTP fixes


@requires_smollm2
def test_a_short_adapt_run_saves_an_encoder_that_keeps_the_base_config(tmp_path):
    configs = stage_configs(["mntp", "simcse"], "cpu-smoke", steps=2, batch_size=4, max_length=48)
    out = tmp_path / "smollm2-llm2vec"
    report = adapt("smollm2-135m", out, configs, show_progress=False)
    assert [r.stage for r in report.stages] == ["mntp", "simcse"]
    base_config = json.loads((Path(resolve("smollm2-135m")) / "config.json").read_text())
    saved = json.loads((out / "config.json").read_text())
    for key in ("rope_parameters", "rope_theta", "hidden_size", "num_hidden_layers", "vocab_size"):
        assert saved.get(key) == base_config.get(key), key  # no silent config drift (rope_theta!)
    assert saved["attention_dropout"] == 0.0
    adapted, base = Encoder.load(out), Encoder.load("smollm2-135m")
    texts = [PASSAGE, "A cat sleeps on the sofa."]
    a, b = adapted.encode(texts), base.encode(texts)
    cosines = (a * b).sum(-1)
    assert np.all(cosines > 0.99) and np.abs(a - b).max() > 1e-4  # changed, a little: 4 small LoRA steps
