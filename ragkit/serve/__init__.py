"""Serving: an OpenAI-compatible embeddings API, a search API and page (`ragkit serve`)."""

from ragkit.serve.app import ServeConfig, create_app, served_name
from ragkit.serve.batching import DynamicBatcher

__all__ = ["DynamicBatcher", "ServeConfig", "create_app", "served_name"]
