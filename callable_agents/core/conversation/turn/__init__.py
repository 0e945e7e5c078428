"""The turn: the agent graph run on a conversation's thread, and its result persisted.

- :mod:`.run`          the ``turn`` job: read, run the graph, hand its result on
- :mod:`.load`         what a turn reads before it runs, in one read
- :mod:`.graph`        retrieve -> reason <-> tools -> respond
- :mod:`.state`        what the graph checkpoints (messages, passages, effects, result)
- :mod:`.context`      the run context: what one run needs (``TurnDeps``)
- :mod:`.deps`         resolving it: retriever, models, tools, offline routes, capabilities
- :mod:`.prompt`       the model's prompt within a token budget
- :mod:`.tools`        the tools node on LangGraph's ``ToolNode``; ``call_tool`` for tests
- :mod:`.effect_tool`  building a tool that answers with effects (a ``Command``)
- :mod:`.offline`      offline mode: extractive answers, tools' offline routes
- :mod:`.result`       ``TurnResult``: parts, citations, effects, outcome, decided once
- :mod:`.persist`      the result stored in one transaction, then its replies sent
- :mod:`.superseding`  a newer customer message withdraws a running turn (reply policy ``interrupt``)
- :mod:`.memory`       the checkpointer on the same database, pruned per turn
- :mod:`.sqlite_saver` LangGraph's SqliteSaver on the database thread
"""
