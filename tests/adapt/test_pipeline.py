"""`adapt()` end to end on a tiny model: stages chain, the result loads, a killed run resumes exactly."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TRAIN_SENTENCES, tiny_decoder_dir
from safetensors.torch import load_file, save_file

from ragkit import Encoder, RagkitError
from ragkit.adapt import adapt, stage_configs
from ragkit.adapt.stages import MNTPStage, SimCSEStage
from ragkit.device import resolve_device, resolve_dtype

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    (root / "sentences.txt").write_text("\n".join(TRAIN_SENTENCES) + "\n")
    with (root / "pairs.jsonl").open("w") as f:
        for i, s in enumerate(TRAIN_SENTENCES):
            row = {"query": s.split()[-2], "positive": s, "negative": TRAIN_SENTENCES[(i + 5) % 48]}
            f.write(json.dumps(row) + "\n")
    return root


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_decoder_dir(tmp_path_factory.mktemp("base") / "lm")


def _configs(data, stages=("mntp", "simcse"), **overrides):
    sources = {
        "mntp": data / "sentences.txt",
        "simcse": data / "sentences.txt",
        "supervised": data / "pairs.jsonl",
    }
    settings = dict(steps=4, batch_size=8, max_length=48, lr=1e-3, checkpoint_every=2)
    settings.update(overrides)
    configs = stage_configs(list(stages), "cpu-smoke", data={s: str(sources[s]) for s in stages}, **settings)
    if "supervised" in configs:
        configs["supervised"].instruction = "Find"
    return configs


def _dies_at(monkeypatch, stage_class, at: int) -> None:
    """`stage_class` raises KeyboardInterrupt at step index `at` (after the checkpoints before it)."""
    original = stage_class.step

    def dies(self, step):
        if step == at:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(stage_class, "step", dies)


def test_all_stages_chain_and_the_result_loads_as_an_encoder(base, data, tmp_path):
    out = tmp_path / "enc"
    report = adapt(str(base), out, _configs(data, ("mntp", "simcse", "supervised")), show_progress=False)
    assert [r.stage for r in report.stages] == ["mntp", "simcse", "supervised"]
    assert not (tmp_path / "enc.training").exists()  # the work folder is gone once the encoder is saved
    encoder = Encoder.load(out)
    vectors = encoder.encode(TRAIN_SENTENCES[:3])
    assert vectors.shape == (3, 32) and encoder.config.bidirectional
    assert encoder.model.config.attention_dropout == 0.0  # SimCSE's dropout is not saved
    training = out / "training"
    assert sorted(p.name for p in (training / "adapters").iterdir()) == ["1-mntp", "2-simcse", "3-supervised"]
    log = (training / "log.csv").read_text().splitlines()
    assert log[0] == "stage,step,loss,lr,tokens_per_s,elapsed_s" and len(log) == 1 + 3 * 4
    assert (training / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((training / "plan.json").read_text())["stages"]["mntp"]["steps"] == 4
    base_vectors = Encoder.load(base).encode(TRAIN_SENTENCES[:3])
    assert not torch.allclose(
        torch.from_numpy(vectors), torch.from_numpy(base_vectors)
    )  # training changed it


def test_the_paper_preset_trains_on_the_reference_inputs_and_only_it():
    paper = stage_configs(["mntp", "simcse", "supervised"], "paper")
    assert {(c.inputs, c.decay_epochs) for c in paper.values()} == {("llm2vec", 3.0)}
    small = stage_configs(["mntp", "simcse", "supervised"], "cpu-small")
    assert {(c.inputs, c.decay_epochs) for c in small.values()} == {("ragkit", None)}


def test_the_schedule_decays_over_epochs_as_the_hf_trainer_and_the_encoder_reads_llm2vecs_format(
    base, data, tmp_path
):
    """The reference's schedule: warmup from 0 (HF's `step / warmup`), decay sized for `decay_epochs`
    passes over the data, the run stopped at `steps` with the rate not yet 0."""
    configs = _configs(data, ("supervised",), steps=4, warmup_steps=2, inputs="llm2vec", decay_epochs=1.0)
    configs["supervised"].batching = "mixed"
    adapt(str(base), tmp_path / "enc", configs, show_progress=False)
    log = (tmp_path / "enc" / "training" / "log.csv").read_text().splitlines()[1:]
    # 48 pairs in batches of 8: an epoch is 6 steps; warmup 2, so the rates are 0, 1/2, then 4/4, 3/4.
    assert [float(row.split(",")[3]) for row in log] == pytest.approx([0.0, 5e-4, 1e-3, 7.5e-4])
    encoder = Encoder.load(tmp_path / "enc")
    assert encoder.config.instruction_join == "llm2vec"  # what it trained on is what it reads


def test_the_saved_adapters_rebuild_the_saved_weights(base, data, tmp_path):
    out = tmp_path / "enc"
    adapt(str(base), out, _configs(data), show_progress=False)
    adapters = [str(out / "training" / "adapters" / n) for n in ("1-mntp", "2-simcse")]
    # Both in the dtype adapt trained in (fp32 on CPU, bf16 weights on a GPU, as LLM2Vec trains): a
    # GPU-trained encoder's weights are bf16-rounded, so an fp32 rebuild differs by a bf16 step.
    dtype = resolve_dtype(None, resolve_device(None))
    rebuilt = Encoder.load(base, adapters=adapters, dtype=dtype)  # LLM2Vec: base + MNTP + SimCSE
    saved = Encoder.load(out, dtype=dtype)
    for (name, a), (_, b) in zip(
        rebuilt.model.state_dict().items(), saved.model.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=lambda message, name=name: f"{name}: {message}")


@pytest.mark.parametrize("stage_class", [MNTPStage, SimCSEStage])
def test_a_killed_run_resumes_to_the_same_weights(base, data, tmp_path, monkeypatch, stage_class):
    whole = tmp_path / "whole"
    adapt(str(base), whole, _configs(data, steps=6, checkpoint_every=2), show_progress=False)

    out = tmp_path / "resumed"
    out.mkdir()
    (out / "previous.txt").write_text("an earlier encoder")  # must survive the interruption
    _dies_at(monkeypatch, stage_class, 4)  # after checkpoints at steps 2 and 4; step 5 never finishes
    with pytest.raises(KeyboardInterrupt):
        adapt(str(base), out, _configs(data, steps=6, checkpoint_every=2), show_progress=False)
    assert (out / "previous.txt").read_text() == "an earlier encoder"
    plan_path = tmp_path / "resumed.training" / "plan.json"
    plan = json.loads(plan_path.read_text())
    for values in plan["stages"].values():  # as an older ragkit wrote it, before `tuning` existed
        assert values.pop("tuning") == "lora"
    plan_path.write_text(json.dumps(plan))
    monkeypatch.undo()

    report = adapt(str(base), out, _configs(data, steps=6, checkpoint_every=2), show_progress=False)
    resumed = {r.stage: r.resumed_from for r in report.stages}
    if stage_class is MNTPStage:
        assert resumed == {"mntp": 4, "simcse": 0}
    else:
        assert report.skipped == ["mntp"] and resumed == {"simcse": 4}
    assert not (out / "previous.txt").exists()
    a, b = load_file(whole / "model.safetensors"), load_file(out / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)
    rows = (out / "training" / "log.csv").read_text().splitlines()[1:]
    assert [r.split(",")[:2] for r in rows] == [[s, str(i)] for s in ("mntp", "simcse") for i in range(1, 7)]


def test_a_fully_fine_tuned_stage_trains_only_its_layers_and_resumes_to_the_same_weights(
    base, data, tmp_path, monkeypatch
):
    configs = _configs(data, ("simcse",), steps=6, checkpoint_every=2, tuning="full", lora_layers=1)
    adapt(str(base), tmp_path / "whole", configs, show_progress=False)
    _dies_at(monkeypatch, SimCSEStage, 4)
    with pytest.raises(KeyboardInterrupt):
        adapt(str(base), tmp_path / "resumed", configs, show_progress=False)
    monkeypatch.undo()
    report = adapt(str(base), tmp_path / "resumed", configs, show_progress=False)
    assert report.stages[0].resumed_from == 4

    start, whole = load_file(base / "model.safetensors"), load_file(tmp_path / "whole" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "model.safetensors")
    for name, tensor in whole.items():
        torch.testing.assert_close(tensor, resumed[name], rtol=1e-5, atol=1e-6, msg=name)
        changed = not torch.equal(tensor, start[f"model.{name}"])
        assert changed == (name.startswith("layers.1.") or name == "norm.weight"), name
    # The stage's saved output (the tuned weights) rebuilds the encoder from the base, as adapters do.
    stage_output = tmp_path / "whole" / "training" / "adapters" / "1-simcse"
    rebuilt = Encoder.load(base, adapters=[str(stage_output)]).encode(TRAIN_SENTENCES[:3])
    np.testing.assert_allclose(
        rebuilt, Encoder.load(tmp_path / "whole").encode(TRAIN_SENTENCES[:3]), atol=1e-6
    )


def test_a_rerun_with_other_settings_is_refused_until_restart(base, data, tmp_path, monkeypatch):
    out = tmp_path / "enc"
    _dies_at(monkeypatch, MNTPStage, 2)  # after the checkpoint at step 2
    with pytest.raises(KeyboardInterrupt):
        adapt(str(base), out, _configs(data), show_progress=False)
    monkeypatch.undo()
    with pytest.raises(RagkitError, match=r"other settings \(mntp.steps 4 vs 5\).*`restart`"):
        adapt(str(base), out, _configs(data, steps=5), show_progress=False)
    adapt(str(base), out, _configs(data, steps=5), restart=True, show_progress=False)
    assert Encoder.load(out).dim == 32


def test_a_resume_from_other_weights_under_the_same_name_is_refused(base, data, tmp_path, monkeypatch):
    # The start model is an LLM2Vec adapter folder (as a built-in encoder is adapters on a base): a
    # new release of it under the same name must not silently become the base of a half-done run.
    first = tmp_path / "first"
    adapt(str(base), first, _configs(data, ("mntp",)), show_progress=False)
    start = first / "training" / "adapters" / "1-mntp"
    out = tmp_path / "enc"
    _dies_at(monkeypatch, SimCSEStage, 2)  # after the checkpoint at step 2
    with pytest.raises(KeyboardInterrupt):
        adapt(str(start), out, _configs(data, ("simcse",)), show_progress=False)
    monkeypatch.undo()
    weights = start / "adapter_model.safetensors"
    save_file({k: v + 0.01 for k, v in load_file(weights).items()}, weights)  # "the next release"
    with pytest.raises(RagkitError, match=r"started from other weights under the name .*`restart`"):
        adapt(str(start), out, _configs(data, ("simcse",)), show_progress=False)
    report = adapt(str(start), out, _configs(data, ("simcse",)), restart=True, show_progress=False)
    assert [r.resumed_from for r in report.stages] == [0]


def test_a_run_whose_checkpoint_was_lost_goes_on_from_a_kept_snapshot(base, data, tmp_path, monkeypatch):
    # benchmarks/resume_from_snapshot.py: the snapshot's weights and the schedule at its step come back
    # (AdamW's moments do not), so the first step after it computes the loss the whole run did there.
    spec = importlib.util.spec_from_file_location(
        "resume_from_snapshot", ROOT / "benchmarks" / "resume_from_snapshot.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    settings = dict(steps=6, checkpoint_every=2, snapshot_every=2)
    whole = tmp_path / "whole"
    adapt(str(base), whole, _configs(data, ("simcse",), **settings), show_progress=False)
    expected = (whole / "training" / "log.csv").read_text().splitlines()[1:]

    out = tmp_path / "enc"
    _dies_at(monkeypatch, SimCSEStage, 4)  # checkpoint and snapshot at step 4; the run's machine dies
    with pytest.raises(KeyboardInterrupt):
        adapt(str(base), out, _configs(data, ("simcse",), **settings), show_progress=False)
    monkeypatch.undo()
    stage = tmp_path / "enc.training" / "1-simcse"
    script.rebuild(stage, stage / "snapshots" / "step-000002", step=2)  # only step 2's adapter survived
    optimizer = torch.load(stage / "checkpoint.pt", weights_only=True)["optimizer"]
    assert optimizer["state"] == {}  # the moments start again
    assert optimizer["param_groups"][0]["lr"] == pytest.approx(float(expected[2].split(",")[3]))

    report = adapt(str(base), out, _configs(data, ("simcse",), **settings), show_progress=False)
    assert [r.resumed_from for r in report.stages] == [2]
    rows = (out / "training" / "log.csv").read_text().splitlines()[1:]
    assert [r.split(",")[1] for r in rows] == ["3", "4", "5", "6"]  # the lost run's rows are not kept
    first, reference = rows[0].split(","), expected[2].split(",")
    assert first[:4] == reference[:4]  # step 3: the same loss and lr as the whole run's


@pytest.mark.parametrize(
    ("stages", "settings", "message"),
    [
        (["simcse", "mntp"], {}, "stages out of order: simcse,mntp"),
        (["mntp", "mlm"], {}, "unknown stage 'mlm'"),
        ([], {}, "no stages given"),
        (["mntp"], {"steps": 0}, "mntp: steps must be at least 1"),
        (["simcse"], {"lr": 2.0}, "simcse: lr must be between 0 and 1"),
        (["mntp"], {"mask_ratio": 1.5}, "mntp: mask_ratio"),
        (["mntp"], {"warmup": 3}, "mntp: unknown setting 'warmup'"),
    ],
)
def test_bad_settings_are_one_line_errors(stages, settings, message):
    with pytest.raises(RagkitError, match=message):
        stage_configs(stages, "paper", **settings)


def test_bad_data_and_models_are_one_line_errors_and_nothing_is_written(base, data, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    cases = [
        (str(base), {"mntp": str(empty)}, "fewer than 47 tokens"),
        (str(base), {"mntp": str(tmp_path / "missing.txt")}, "not found"),
        (str(tmp_path / "nope"), {}, "unknown model"),
    ]
    for model, sources, message in cases:
        configs = _configs(data, ("mntp",))
        for stage, source in sources.items():
            configs[stage].data = source
        with pytest.raises(RagkitError, match=message):
            adapt(model, tmp_path / "out", configs, show_progress=False)
        assert not (tmp_path / "out").exists()
    few = _configs(data, ("simcse",), batch_size=64)
    with pytest.raises(RagkitError, match="simcse: 48 training examples, fewer than batch_size 64"):
        adapt(str(base), tmp_path / "out", few, show_progress=False)


def test_an_unvalidated_model_type_is_refused(data, tmp_path):
    import transformers

    gpt2 = tmp_path / "gpt2"
    transformers.GPT2LMHeadModel(
        transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=300)
    ).save_pretrained(gpt2)
    from helpers import tiny_tokenizer

    tiny_tokenizer().save_pretrained(gpt2)
    with pytest.raises(RagkitError, match="not validated for model type 'gpt2'"):
        adapt(str(gpt2), tmp_path / "out", _configs(data, ("mntp",)), show_progress=False)
