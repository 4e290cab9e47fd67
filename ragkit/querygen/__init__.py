"""Queries an LLM writes for passages that have none: training pairs for a corpus without labels
(the synthetic stage) and the questions an index calibrates its default search on."""

from ragkit.querygen.cache import cache_path, passage_key, read_cache
from ragkit.querygen.generate import GenerationSettings, generate_queries
from ragkit.querygen.prompt import PROMPT_QUERIES, QUERY_PROMPT, clean_query, usable_query

__all__ = [
    "PROMPT_QUERIES",
    "QUERY_PROMPT",
    "GenerationSettings",
    "cache_path",
    "clean_query",
    "generate_queries",
    "passage_key",
    "read_cache",
    "usable_query",
]
