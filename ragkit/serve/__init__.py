"""Serving: an OpenAI-compatible embeddings API, a search API and page (`ragkit serve`)."""

from ragkit.serve.app import create_app, served_name
from ragkit.serve.batching import DynamicBatcher
from ragkit.serve.config import ServeConfig

__all__ = ["DynamicBatcher", "ServeConfig", "create_app", "served_name"]
