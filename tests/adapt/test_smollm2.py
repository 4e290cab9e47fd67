"""Real SmolLM2-135M weights: the MNTP shift matches the LM head; a short adapt run saves a sound encoder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from helpers import requires_smollm2

from ragkit import Encoder
from ragkit.adapt import adapt, stage_configs
from ragkit.encoders.loading import load_model, load_tokenizer, resolve
from ragkit.encoders.mntp import IGNORE, mask_token_id, mask_tokens, maskable_positions, mntp_loss

PASSAGE = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named "
    "after the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889."
)


@requires_smollm2
def test_the_pretrained_head_predicts_masked_tokens_from_the_previous_state():
    lm, _ = load_model("smollm2-135m", with_lm_head=True)
    lm.config.is_causal = False
    tok = load_tokenizer(resolve("smollm2-135m"))
    ids = torch.tensor([[tok.bos_token_id, *tok(PASSAGE, add_special_tokens=False)["input_ids"]]])
    mask = torch.ones_like(ids)
    maskable = maskable_positions(ids, mask, tok.all_special_ids)
    g = torch.Generator().manual_seed(0)
    inputs, labels = mask_tokens(ids, maskable, mask_id=mask_token_id(tok), vocab_size=len(tok), generator=g)
    with torch.no_grad():
        hidden = lm.get_decoder()(input_ids=inputs, attention_mask=mask).last_hidden_state
        shifted = mntp_loss(hidden, labels, lm.get_output_embeddings()).item()
        where = labels[0] != IGNORE  # the same tokens read from their own position: no shift
        unshifted = torch.nn.functional.cross_entropy(lm.lm_head(hidden[0][where]), labels[0][where]).item()
    assert shifted < 0.6 * math.log(len(tok))  # far better than chance before any training
    assert unshifted > shifted + 2


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
    assert np.all(cosines > 0.5) and np.all(cosines < 0.99999)  # changed, but by a few small steps
