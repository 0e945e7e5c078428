"""The turn: the agent graph run on a conversation's thread.

- :mod:`.graph`         retrieve -> reason <-> tools -> respond
- :mod:`.deps`          what one turn needs: retriever, models, tools, capabilities
- :mod:`.memory`        the checkpointer on the same database, pruned per turn
- :mod:`.sqlite_saver`  LangGraph's SqliteSaver on the database thread
"""
