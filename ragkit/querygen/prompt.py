"""The prompt a generator writes queries from, and how its output becomes one query."""

from __future__ import annotations

# InPars' "vanilla" prompt (its MS MARCO examples), cut to two examples so that a passage of
# `passage_words` words and the examples fit a small model's attention and a CPU's time.
QUERY_PROMPT = """Example 1:
Document: We don't know a lot about the effects of caffeine during pregnancy on you and your baby. \
So it's best to limit the amount you get each day. If you are pregnant, limit caffeine to 200 \
milligrams each day.
Relevant Query: is a little caffeine ok during pregnancy

Example 2:
Document: Passiflora herbertiana. A rare passion fruit native to Australia. Fruits are \
green-skinned, white fleshed, with an unknown edible rating.
Relevant Query: what fruit is native to australia

Example 3:
Document: {passage}
Relevant Query:"""
PROMPT_QUERIES = ("is a little caffeine ok during pregnancy", "what fruit is native to australia")


def query_prompt_for(passage: str, words: int) -> str:
    """The generator's prompt for one passage, cut to its first `words` words."""
    return QUERY_PROMPT.format(passage=" ".join(passage.split()[:words]))


def clean_query(text: str) -> str:
    """The generated query: its first line, without surrounding quotes or spaces."""
    line = text.strip().split("\n", 1)[0] if text.strip() else ""
    return line.strip().strip("\"'").strip()


def usable_query(query: str) -> bool:
    """Whether a written query can stand for its passage: two words at least, and not one of the
    prompt's example queries copied back."""
    return len(query.split()) >= 2 and query not in PROMPT_QUERIES
