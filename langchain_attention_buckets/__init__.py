"""Attention Buckets for LangChain: a local chat model that reads long contexts better."""
__version__ = "0.1.0"
