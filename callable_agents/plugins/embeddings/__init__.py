"""Embedding models: WordLlama (local, the default) and OpenAI."""
