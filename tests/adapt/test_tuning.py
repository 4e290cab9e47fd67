"""Full fine-tuning (`tuning = "full"`): which weights train, and a stage's saved output round trip."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_model

from ragkit import RagkitError
from ragkit.adapt.config import SimCSEConfig
from ragkit.adapt.tuning import finish, load_trained_state, save_trained, trainable, trained_state
from ragkit.encoders.loading import TRAINED_WEIGHTS, merge_adapter


def _full(layers: int | None) -> SimCSEConfig:
    return SimCSEConfig(tuning="full", lora_layers=layers)


@pytest.mark.filterwarnings("ignore:Full backward hook")
def test_full_tuning_of_the_top_layer_trains_it_and_the_final_norm_only():
    model = trainable(tiny_model("llama"), _full(1))
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names == {n for n, _ in model.named_parameters() if n.startswith("layers.1.")} | {"norm.weight"}
    reached = []
    model.layers[0].register_full_backward_hook(lambda *args: reached.append(0))
    model.layers[1].register_full_backward_hook(lambda *args: reached.append(1))
    model(input_ids=torch.randint(4, 100, (2, 6))).last_hidden_state.pow(2).mean().backward()
    assert reached == [1]  # backward stops below the trained layer, as with LoRA
    assert finish(model) is model and not any(p.requires_grad for p in model.parameters())


def test_full_tuning_of_every_layer_trains_every_weight_the_embeddings_included():
    model = trainable(tiny_model("llama"), _full(None))
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(RagkitError, match="lora_layers must be between 1 and the model's 2 layers, got 3"):
        trainable(tiny_model("llama"), _full(3))


def test_the_saved_tuned_weights_rebuild_the_model_on_a_fresh_base(tmp_path):
    model = trainable(tiny_model("llama"), _full(1))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01)
    save_trained(model, tmp_path / "adapter")
    assert (tmp_path / "adapter" / TRAINED_WEIGHTS).is_file()
    rebuilt = merge_adapter(tiny_model("llama"), str(tmp_path / "adapter"))  # what load_model applies
    for (name, a), (_, b) in zip(model.state_dict().items(), rebuilt.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    with pytest.raises(RagkitError, match="another base"):
        merge_adapter(tiny_model("llama", num_hidden_layers=1), str(tmp_path / "adapter"))


def test_a_checkpoint_of_other_weights_is_refused():
    top = trainable(tiny_model("llama"), _full(1))
    every = trainable(tiny_model("llama", seed=1), _full(None))
    load_trained_state(top, trained_state(top))  # its own state loads
    with pytest.raises(RagkitError, match="does not match the weights this stage trains"):
        load_trained_state(top, trained_state(every))
