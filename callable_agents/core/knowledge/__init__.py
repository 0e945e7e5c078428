"""Knowledge bases: sources -> passages -> hybrid retrieval with citations.

The modules, one concept each:

- :mod:`.store` — knowledge bases and sources (workspace-scoped data access)
- :mod:`.ingest` — load -> chunk -> embed -> store, content hashing, model changes
- :mod:`.chunking` — text normalisation and token-aware passages
- :mod:`.embeddings` — resolving and running embedding models
- :mod:`.dense`, :mod:`.keyword`, :mod:`.index` — FAISS, BM25 and the per-KB index cache files
- :mod:`.search` — :class:`KnowledgeService` and :class:`Passage`
- :mod:`.refresh` — re-fetching URL sources, the background refresh loop
- :mod:`.background` — indexing in a server process's background (requests return at once),
  with each running source's progress
"""

from callable_agents.core.knowledge.background import (
    BackgroundIndexer,
    index_in_background,
    indexing_progress,
    refresh_in_background,
)
from callable_agents.core.knowledge.ingest import (
    IngestProgress,
    ProgressCallback,
    change_embedding_model,
    ingest_source,
)
from callable_agents.core.knowledge.refresh import (
    refresh_due_sources,
    refresh_sources,
    sources_to_refresh,
    start_refresh_loop,
)
from callable_agents.core.knowledge.search import SEARCH_MODES, KnowledgeService, Passage, SearchMode
from callable_agents.core.knowledge.store import (
    add_source,
    agents_using_knowledge_base,
    create_knowledge_base,
    delete_knowledge_base,
    find_source,
    get_knowledge_base,
    get_source,
    knowledge_base_stats,
    list_knowledge_bases,
    list_sources,
    remove_source,
    rename_knowledge_base,
)

__all__ = [
    "SEARCH_MODES",
    "BackgroundIndexer",
    "IngestProgress",
    "KnowledgeService",
    "Passage",
    "ProgressCallback",
    "SearchMode",
    "add_source",
    "agents_using_knowledge_base",
    "change_embedding_model",
    "create_knowledge_base",
    "delete_knowledge_base",
    "find_source",
    "get_knowledge_base",
    "get_source",
    "index_in_background",
    "indexing_progress",
    "ingest_source",
    "knowledge_base_stats",
    "list_knowledge_bases",
    "list_sources",
    "refresh_due_sources",
    "refresh_in_background",
    "refresh_sources",
    "remove_source",
    "rename_knowledge_base",
    "sources_to_refresh",
    "start_refresh_loop",
]
