"""The one sentence splitter: SimCSE's sentences and calibration's pseudo-queries both come from it."""

from __future__ import annotations

from ragkit.adapt.data import training_sentences
from ragkit.index.calibration import pseudo_queries
from ragkit.retrieval.sentences import split_sentences


def test_a_sentence_ends_at_a_stop_before_whitespace_but_not_after_an_abbreviation():
    text = "Dr. Smith arrived. He sat down! Was it 3 p.m.? Yes. See e.g. Fig. 2 of Jones et al. for more."
    assert split_sentences(text) == [
        "Dr. Smith arrived.",
        "He sat down!",
        "Was it 3 p.m.?",
        "Yes.",
        "See e.g. Fig. 2 of Jones et al. for more.",
    ]


def test_lowercased_text_and_line_breaks_split_and_nothing_is_empty_or_padded():
    # Cranfield and MS MARCO are lowercased: their sentences still end at the stop.
    assert split_sentences("the flow was laminar. the wing stalled at 12 degrees.") == [
        "the flow was laminar.",
        "the wing stalled at 12 degrees.",
    ]
    assert split_sentences("A Title\n\n  first line\nsecond line.  \n") == [
        "A Title",
        "first line",
        "second line.",
    ]
    assert split_sentences("no stop at all") == ["no stop at all"]
    assert split_sentences(" \n\n ") == [] and split_sentences("") == []
    assert split_sentences("3.5 kg, not 3. 5 kg?") == [
        "3.5 kg, not 3.",
        "5 kg?",
    ]  # a stop then a space ends one


def test_training_sentences_join_a_paragraphs_lines_and_drop_fragments():
    paragraph = "The module is\nimported once. Then it is cached\nfor the process. Ok."
    assert training_sentences(paragraph) == [
        "The module is imported once.",
        "Then it is cached for the process.",
    ]


def test_calibration_draws_its_queries_from_the_same_sentences():
    texts = [
        "Dr. Smith studied the heart of the whale in detail. The heart weighs about one hundred and "
        "eighty kilograms in an adult. It beats slowly when the whale dives deep."
    ] * 3
    for query in pseudo_queries(texts, n=3):
        assert query.query in split_sentences(texts[query.source])
        assert query.context == " ".join(s for s in split_sentences(texts[query.source]) if s != query.query)
        assert not query.query.startswith("Smith")  # "Dr." did not end a sentence
