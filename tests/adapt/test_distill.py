"""The distillation stage: its losses, the candidates and teacher cache it prepares, training and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import TRAIN_SENTENCES, tiny_decoder_dir
from safetensors.torch import load_file

from ragkit import Encoder, RagkitError, embedding_cache
from ragkit.adapt import adapt, stage_configs
from ragkit.adapt import teacher as teacher_module
from ragkit.adapt.config import DistillConfig
from ragkit.adapt.distill import DistillStage, prepare_distill, read_prepared, teacher_scores
from ragkit.adapt.distributed import World
from ragkit.adapt.losses.distillation import distill_kl, margin_mse, similarity_mse
from ragkit.adapt.registry import training_stage
from ragkit.adapt.teacher import TeacherScores, cached_vectors
from ragkit.device import resolve_device, resolve_dtype
from ragkit.encoders.loading import load_model, load_tokenizer
from ragkit.retrieval.lexical import LexicalIndex


def test_a_student_that_copies_the_teacher_has_zero_kl_and_one_that_does_not_has_more():
    teacher = torch.tensor([[0.9, 0.5, 0.1, -0.2], [0.2, 0.8, 0.3, 0.0]])
    assert distill_kl(teacher.clone(), teacher, scale=20).item() == pytest.approx(0.0, abs=1e-6)
    assert distill_kl(teacher.flip(1), teacher, scale=20).item() > 1.0
    # The same ranking with other gaps is not a copy: the student learns the distribution, not the order.
    assert distill_kl(teacher * 0.5, teacher, scale=20).item() > 0.01
    # Gradients push the student's scores toward the teacher's.
    student = teacher.flip(1).clone().requires_grad_()
    distill_kl(student, teacher, scale=20).backward()
    assert student.grad[0, 0] < 0 < student.grad[0, 3]  # raise what the teacher ranks first


def test_margin_mse_is_zero_for_equal_margins_whatever_the_offset():
    teacher = torch.tensor([[0.9, 0.5, 0.1], [0.7, 0.6, 0.2]])
    positives, negatives = torch.tensor([0, 0]), torch.tensor([[1, 2], [1, 2]])
    shifted = teacher + torch.tensor([[0.3], [-0.4]])  # each query's scores moved by a constant
    assert margin_mse(shifted, teacher, positives, negatives).item() == pytest.approx(0.0, abs=1e-7)
    # (0.9 - 0.5) - (0.5 - 0.5) = 0.4 on one margin of four
    assert (
        margin_mse(
            teacher.clone().index_fill_(1, torch.tensor([0]), 0.5), teacher, positives, negatives
        ).item()
        > 0
    )


def test_a_student_with_the_teachers_geometry_has_zero_embedding_loss_whatever_its_width():
    torch.manual_seed(0)
    teacher = torch.randn(6, 4)
    # The teacher's own vectors, through an identity map into a wider space, rotated and rescaled.
    wider = torch.cat([teacher, torch.zeros(6, 3)], dim=1)
    rotation, _ = torch.linalg.qr(torch.randn(7, 7))
    student = 3.0 * wider @ rotation
    assert similarity_mse(student, teacher).item() == pytest.approx(0.0, abs=1e-10)
    other = torch.randn(6, 7, requires_grad=True)
    assert similarity_mse(other, teacher).item() > 0.05
    # Gradients move the student's cosines toward the teacher's.
    optimizer = torch.optim.SGD([other], lr=1.0)
    before = similarity_mse(other, teacher).item()
    for _ in range(20):
        optimizer.zero_grad()
        similarity_mse(other, teacher).backward()
        optimizer.step()
    assert similarity_mse(other, teacher).item() < 0.5 * before


def test_teacher_scores_put_bm25_on_the_cosine_scale_and_fuse_by_weight():
    passages = ["red boats sail", "old maps fade", "red red boats"]
    index = LexicalIndex.build(passages)
    queries = np.eye(2, 3, dtype=np.float32)  # query 0 is passage 0's vector, query 1 passage 1's
    vectors = np.eye(3, dtype=np.float32)
    bm25 = TeacherScores(None, (index, ["red boats", "maps"]), 0.0).scores([0, 1], [0, 1, 2])
    assert bm25.max(axis=1) == pytest.approx([1.0, 1.0])  # each query's best candidate scores 1
    assert bm25[1, 1] == 1.0 and bm25[1, 0] == 0.0
    dense = TeacherScores((queries, vectors), None, 0.0).scores([0, 1], [0, 1, 2])
    np.testing.assert_allclose(dense, np.eye(2, 3))
    fused = TeacherScores((queries, vectors), (index, ["red boats", "maps"]), 0.25).scores([0, 1], [0, 1, 2])
    np.testing.assert_allclose(fused, 0.75 * dense + 0.25 * bm25, rtol=1e-6)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test its own embedding cache: teachers' vectors found there would hide the calls counted."""
    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path / "home"))


def test_teacher_vectors_are_cached_by_block_for_every_run_and_a_killed_run_embeds_only_the_rest(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(embedding_cache, "BLOCK", 2)
    texts = [f"text {i}" for i in range(5)]
    calls: list[list[str]] = []
    die_on_call = 2  # killed while embedding the second block

    def embed(rows):
        calls.append(list(rows))
        if len(calls) == die_on_call:
            raise KeyboardInterrupt
        return np.array([[float(t.split()[1])] for t in rows], dtype=np.float32)

    first = tmp_path / "run-1" / "teacher" / "passages.npy"
    with pytest.raises(KeyboardInterrupt):
        cached_vectors(first, "teacher|t|passages", texts, embed)
    assert not first.exists()
    calls.clear()
    die_on_call = 0
    vectors = cached_vectors(first, "teacher|t|passages", texts, embed)
    assert calls == [["text 2", "text 3"], ["text 4"]]  # block 0 came from the cache
    np.testing.assert_array_equal(vectors[:, 0], np.arange(5))
    np.testing.assert_array_equal(np.load(first), vectors)  # the stage's own copy, whole
    # Another run with the same teacher and texts embeds nothing; another teacher embeds everything.
    calls.clear()
    again = cached_vectors(
        tmp_path / "run-2" / "teacher" / "passages.npy", "teacher|t|passages", texts, embed
    )
    np.testing.assert_array_equal(again, vectors)
    assert calls == []
    cached_vectors(tmp_path / "run-3" / "teacher" / "passages.npy", "teacher|u|passages", texts, embed)
    assert len(calls) == 3


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    with path.open("w") as f:
        for i, s in enumerate(TRAIN_SENTENCES):
            row = {
                "query": " ".join(s.split()[-2:]),
                "positive": s,
                "negative": TRAIN_SENTENCES[(i + 5) % 48],
            }
            f.write(json.dumps(row) + "\n")
    return path


class FakeTeacher:
    """A dense teacher whose vectors are bags of words: it knows which words a passage has."""

    def __init__(self) -> None:
        self.words = sorted({w.strip(".").lower() for s in TRAIN_SENTENCES for w in s.split()})
        self.calls = 0

    def _vectors(self, texts):
        self.calls += 1
        v = np.array([[w in t.lower() for w in self.words] for t in texts], dtype=np.float32)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-6)

    def embed_queries(self, texts, instructions):
        return self._vectors(texts)

    def embed_passages(self, texts):
        return self._vectors(texts)

    def fingerprint(self):
        return "fake"


def test_prepare_mines_candidates_from_teacher_and_bm25_and_a_rerun_reuses_everything(
    pairs, tmp_path, monkeypatch
):
    fake = FakeTeacher()
    monkeypatch.setattr("ragkit.adapt.distill.load_teacher", lambda name, batch_size: fake)
    config = DistillConfig(data=str(pairs), teacher="fake", negatives=3, batch_size=8, steps=3, queries=20)
    prepared = prepare_distill(None, config, tmp_path, show_progress=False)
    assert prepared.data == str(tmp_path) and fake.calls == 2
    queries, pool = read_prepared(tmp_path)
    assert len(queries) == 20 and len(pool) == len(TRAIN_SENTENCES)  # positives and negatives, once each
    for q in queries:
        positive, *negatives = q.candidates
        assert q.query.split()[-1] in pool[positive]  # the labeled positive comes first
        assert len(set(negatives)) == 3 and positive not in negatives
        # The best mined negative shares the query's words (the teacher's or BM25's top, not random).
        assert set(q.query.lower().split()) & set(pool[negatives[0]].lower().strip(".").split())
    assert all(q.instruction.endswith("; ") for q in queries)  # llm2vec's training separator
    before = (tmp_path / "distill.jsonl").stat().st_mtime_ns
    monkeypatch.setattr("ragkit.adapt.distill.load_teacher", lambda *a: pytest.fail("teacher loaded twice"))
    assert prepare_distill(None, config, tmp_path, show_progress=False).data == str(tmp_path)
    assert (tmp_path / "distill.jsonl").stat().st_mtime_ns == before
    # The cached vectors give the teacher's own cosines.
    candidates = queries[0].candidates
    scores = teacher_scores(tmp_path, config, queries).scores([0], candidates)
    expected = fake._vectors([queries[0].query]) @ fake._vectors([pool[c] for c in candidates]).T
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


@pytest.fixture(scope="module")
def broad_texts(tmp_path_factory):
    """Texts of no query: sentences of the training data, reworded, as the embedding loss may take any."""
    path = tmp_path_factory.mktemp("texts") / "texts.jsonl"
    rows = [{"text": s.replace(".", " indeed.")} for s in TRAIN_SENTENCES] + [{"text": TRAIN_SENTENCES[0]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_prepare_embeds_the_texts_once_and_a_rerun_never_loads_the_teacher(
    pairs, broad_texts, tmp_path, monkeypatch
):
    fake = FakeTeacher()
    monkeypatch.setattr("ragkit.adapt.distill.load_teacher", lambda name, batch_size: fake)
    settings = dict(data=str(pairs), teacher="fake", negatives=2, batch_size=8, steps=3, queries=20)
    config = DistillConfig(**settings, loss="embedding", texts=str(broad_texts), max_texts=30)
    prepare_distill(None, config, tmp_path, show_progress=False)
    assert fake.calls == 3  # queries, passages, texts
    texts = [json.loads(line)["text"] for line in (tmp_path / "texts.jsonl").read_text().splitlines()]
    assert len(texts) == 30 == len(set(texts))  # distinct, cut to max_texts
    np.testing.assert_allclose(np.load(tmp_path / "teacher" / "texts.npy"), fake._vectors(texts))
    monkeypatch.setattr("ragkit.adapt.distill.load_teacher", lambda *a: pytest.fail("teacher loaded twice"))
    prepare_distill(None, config, tmp_path, show_progress=False)
    # Another run with the same teacher reads every vector from the embedding cache; texts given to a run
    # prepared without them are added then, the queries' work kept.
    other = tmp_path / "later"
    monkeypatch.setattr("ragkit.adapt.distill.load_teacher", lambda name, batch_size: fake)
    calls = fake.calls
    prepare_distill(None, DistillConfig(**settings), other, show_progress=False)
    prepare_distill(None, config, other, show_progress=False)
    assert fake.calls == calls and (other / "teacher" / "texts.npy").is_file()
    np.testing.assert_array_equal(
        np.load(other / "teacher" / "texts.npy"), np.load(tmp_path / "teacher" / "texts.npy")
    )


def test_embedding_settings_are_checked():
    with pytest.raises(RagkitError, match="learns a dense teacher's vectors and BM25 has none"):
        DistillConfig(teacher="bm25", loss="embedding").check()
    with pytest.raises(RagkitError, match="`texts` feed the embedding loss"):
        DistillConfig(teacher="t", texts="x.jsonl").check()
    with pytest.raises(RagkitError, match="embedding_weight must be positive"):
        DistillConfig(teacher="t", loss="kl+embedding", embedding_weight=0).check()


def _stage(tmp_path, pairs, **settings):
    path = tiny_decoder_dir(tmp_path / "lm")
    lm, _ = load_model(str(path))
    settings.setdefault("teacher", "bm25")
    config = DistillConfig(
        data=str(pairs),
        instruction="Find",
        negatives=2,
        batch_size=8,
        steps=30,
        max_length=32,
        lr=1e-2,
        **settings,
    )
    config = prepare_distill(None, config, tmp_path / "stage", show_progress=False)
    return training_stage("distill", lm, load_tokenizer(str(path)), config, World()), lm


def test_the_loss_falls_and_gradients_reach_only_lora(pairs, tmp_path):
    context, _ = _stage(tmp_path, pairs, lora_dropout=0.0)
    with context as (stage, model):
        assert isinstance(stage, DistillStage)
        assert all(
            any(k in n for k in ("lora_A", "lora_B")) for n, p in model.named_parameters() if p.requires_grad
        )
        losses = _train_only_lora(stage, model, steps=30)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def _train_only_lora(stage, model, steps: int) -> list[float]:
    """The stage's losses over `steps` AdamW steps; its first step's gradients reach the trained (LoRA)
    weights and nothing else."""
    params = [p for p in model.parameters() if p.requires_grad]
    assert params
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    model.train()
    losses = []
    for step in range(steps):
        optimizer.zero_grad()
        loss, tokens = stage.step(step)
        assert tokens > 0
        if step == 0:
            assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
            assert any(p.grad.abs().max() > 0 for p in params)
        optimizer.step()
        losses.append(loss)
    return losses


@pytest.mark.parametrize("loss", ["embedding", "kl+embedding"])
def test_the_embedding_loss_falls_on_queries_candidates_and_texts_and_trains_only_lora(
    loss, pairs, broad_texts, tmp_path, monkeypatch
):
    monkeypatch.setattr("ragkit.adapt.distill.load_teacher", lambda name, batch_size: FakeTeacher())
    context, _ = _stage(
        tmp_path, pairs, teacher="fake", loss=loss, texts=str(broad_texts), texts_per_step=6, lora_dropout=0.0
    )
    seen = []

    def recorded(student, teacher):
        value = similarity_mse(student, teacher)
        seen.append((student.shape, teacher.shape, value.item()))
        return value

    monkeypatch.setattr("ragkit.adapt.distill.similarity_mse", recorded)
    with context as (stage, model):
        assert stage.text_rows(3) == stage.text_rows(3) != stage.text_rows(4)  # fixed per step: resumable
        losses = _train_only_lora(stage, model, steps=30)
    # Every text of the step: 8 queries, their 8 x 3 candidates and 6 texts, student and teacher alike.
    words = len(FakeTeacher().words)
    assert seen[0][0][0] == seen[0][1][0] == 8 + 24 + 6 and seen[0][1][1] == words
    assert sum(losses[-5:]) / 5 < (0.7 if loss == "embedding" else 0.8) * sum(losses[:5]) / 5


def test_in_batch_candidates_are_scored_by_the_teacher_too(pairs, tmp_path, monkeypatch):
    seen = []
    original = TeacherScores.scores
    monkeypatch.setattr(
        TeacherScores, "scores", lambda self, q, p: seen.append((list(q), list(p))) or original(self, q, p)
    )
    context, _ = _stage(tmp_path, pairs)
    with context as (stage, _model):
        stage.step(0)
    rows, columns = seen[0]
    assert len(rows) == 8 and len(columns) == 8 * 3  # every query against all 24 candidates of the batch
    assert columns == [c for r in rows for c in stage.queries[r].candidates]


@pytest.mark.parametrize("loss", ["kl", "kl+embedding"])
def test_a_killed_distillation_resumes_to_the_same_weights(loss, pairs, broad_texts, tmp_path, monkeypatch):
    base = tiny_decoder_dir(tmp_path / "base")
    geometry = {"teacher": "fake", "texts": str(broad_texts), "texts_per_step": 4} if loss != "kl" else {}
    monkeypatch.setattr("ragkit.adapt.distill.load_teacher", lambda name, batch_size: FakeTeacher())

    def configs():
        return stage_configs(
            ["distill"],
            "cpu-smoke",
            data={"distill": str(pairs)},
            settings={"distill": {"loss": loss, **geometry}},
            steps=6,
            checkpoint_every=2,
            snapshot_every=3,
            lr=1e-3,
        )

    adapt(str(base), tmp_path / "whole", configs(), show_progress=False)
    # Snapshots for choosing a step on a dev split: the last one is the saved encoder.
    snapshots = tmp_path / "whole" / "training" / "snapshots" / "1-distill"
    assert sorted(p.name for p in snapshots.iterdir()) == ["step-000003", "step-000006"]
    # Both in the dtype adapt trained in (bf16 weights on a GPU: an fp32 rebuild is a bf16 step off).
    dtype = resolve_dtype(None, resolve_device(None))
    last = Encoder.load(base, adapters=[str(snapshots / "step-000006")], dtype=dtype)
    saved = Encoder.load(tmp_path / "whole", dtype=dtype)
    np.testing.assert_allclose(last.encode(TRAIN_SENTENCES[:2]), saved.encode(TRAIN_SENTENCES[:2]), atol=1e-5)
    original = DistillStage.step

    def dies_at_step_5(self, step):
        if step == 4:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(DistillStage, "step", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        adapt(str(base), tmp_path / "resumed", configs(), show_progress=False)
    monkeypatch.setattr(DistillStage, "step", original)
    # The rerun reuses the candidates and teacher scores the killed run prepared.
    monkeypatch.setattr(LexicalIndex, "build", lambda *a, **k: pytest.fail("prepared twice"))
    monkeypatch.setattr("ragkit.adapt.distill.load_teacher", lambda *a: pytest.fail("teacher loaded twice"))
    report = adapt(str(base), tmp_path / "resumed", configs(), show_progress=False)
    assert [r.resumed_from for r in report.stages] == [4]
    a, b = (
        load_file(tmp_path / "whole" / "model.safetensors"),
        load_file(tmp_path / "resumed" / "model.safetensors"),
    )
    for name in a:
        torch.testing.assert_close(
            a[name], b[name], rtol=1e-5, atol=1e-6, msg=lambda message, name=name: f"{name}: {message}"
        )


def test_bad_distill_settings_are_one_line_errors(pairs):
    with pytest.raises(RagkitError, match="distill: needs a teacher"):
        stage_configs(["distill"], "paper")
    with pytest.raises(RagkitError, match=r"teacher_bm25_weight must be in \[0, 1\], got 2"):
        DistillConfig(teacher="bm25", teacher_bm25_weight=2).check()
    with pytest.raises(
        RagkitError, match="loss must be one of kl, margin-mse, embedding, kl\\+embedding, got 'mse'"
    ):
        DistillConfig(teacher="bm25", loss="mse").check()


def test_teachers_are_found_by_name_folder_or_hub_id(tmp_path, monkeypatch):
    chosen = []
    monkeypatch.setattr(
        teacher_module, "SentenceTransformerTeacher", lambda name, b: chosen.append(("st", name))
    )
    monkeypatch.setattr(teacher_module, "EncoderTeacher", lambda name, b: chosen.append(("ragkit", name)))
    st_dir = tmp_path / "st"
    st_dir.mkdir()
    (st_dir / "modules.json").write_text("[]")
    for name in (
        "all-minilm-l6-v2",
        str(st_dir),
        "sentence-transformers/all-MiniLM-L6-v2",
        "llm2vec-smollm2-135m",
    ):
        teacher_module.load_teacher(name)
    assert chosen == [
        ("st", "all-minilm-l6-v2"),
        ("st", str(st_dir)),
        ("st", "sentence-transformers/all-MiniLM-L6-v2"),  # a Hub id goes to sentence-transformers
        ("ragkit", "llm2vec-smollm2-135m"),
    ]


def test_an_unreachable_hub_teacher_is_a_one_line_error(monkeypatch):
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import: no retries
    with pytest.raises(
        RagkitError, match="could not load sentence-transformers model 'nobody/no-such-model'"
    ):
        teacher_module.load_teacher("nobody/no-such-model")


class _FixedTeacher:
    """A dense teacher whose vectors are seeded unit vectors, one per text."""

    def __init__(self, seed: int, dim: int) -> None:
        self.seed, self.dim = seed, dim

    def _vectors(self, texts) -> np.ndarray:
        rng = np.random.default_rng([self.seed, *(len(t) for t in texts)])
        v = rng.standard_normal((len(texts), self.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def embed_queries(self, texts, instructions):
        return self._vectors(texts)

    def embed_passages(self, texts):
        return self._vectors(texts)

    def fingerprint(self) -> str:
        return f"fixed-{self.seed}"


def test_a_mean_teachers_cosines_are_the_mean_of_its_teachers_cosines():
    first, second = _FixedTeacher(1, 384), _FixedTeacher(2, 768)  # MiniLM's and mpnet's widths
    mean = teacher_module.MeanTeacher([first, second])
    texts = ["a", "bb", "ccc", "dddd"]
    queries, passages = mean.embed_queries(texts, [""] * 4), mean.embed_passages(texts)
    assert queries.shape == (4, 384 + 768) and queries.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, rtol=1e-6)
    parts = [t.embed_queries(texts, [""] * 4) @ t.embed_passages(texts).T for t in (first, second)]
    np.testing.assert_allclose(queries @ passages.T, (parts[0] + parts[1]) / 2, atol=1e-6)
    assert mean.fingerprint() == "mean|fixed-1|fixed-2"


def test_teacher_names_joined_by_plus_are_their_mean_unless_a_folder_has_that_name(tmp_path, monkeypatch):
    monkeypatch.setattr(teacher_module, "SentenceTransformerTeacher", lambda name, b: name)
    mean = teacher_module.load_teacher("all-minilm-l6-v2+sentence-transformers/all-mpnet-base-v2")
    assert isinstance(mean, teacher_module.MeanTeacher)
    assert mean.teachers == ["all-minilm-l6-v2", "sentence-transformers/all-mpnet-base-v2"]
    with pytest.raises(RagkitError, match="fuse it by `teacher_bm25_weight`"):
        teacher_module.load_teacher("all-minilm-l6-v2+bm25")
    folder = tmp_path / "c++"
    folder.mkdir()
    (folder / "modules.json").write_text("[]")
    assert teacher_module.load_teacher(str(folder)) == str(folder)
