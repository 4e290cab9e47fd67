"""Adapters for the frameworks RAG apps are written in: `langchain` and `llama_index`.

Each needs its framework (the extras `ragkit[langchain]`, `ragkit[llama-index]`); import the
submodule you use, so that the other framework need not be installed.
"""
