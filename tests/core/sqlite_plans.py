"""Recording the statements run on SQLite's database thread, and their query plans."""

from __future__ import annotations

from callable_agents.core.runtime import Runtime

HOT_TABLES = {"conversations", "messages", "jobs"}


class QueryPlans:
    """``await plans.start()``, run the work, then ``await plans.explain()``: (statement,
    plan line) for every SELECT, INSERT and UPDATE run on the thread's connection meanwhile."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.statements: list[str] = []

    async def start(self) -> None:
        def trace() -> None:
            with self.runtime.db.driver_transaction() as connection:
                connection.set_trace_callback(self.statements.append)

        await self.runtime.db.call_on_thread(trace)

    async def explain(self) -> list[tuple[str, str]]:
        def plans() -> list[tuple[str, str]]:
            with self.runtime.db.driver_transaction() as connection:
                connection.set_trace_callback(None)
                found = []
                for statement in self.statements:
                    if statement.split(None, 1)[0].upper() in {"SELECT", "INSERT", "UPDATE"}:
                        for row in connection.execute("EXPLAIN QUERY PLAN " + statement):
                            found.append((statement, row[3]))
                return found

        return await self.runtime.db.call_on_thread(plans)


def table_scans(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The plan lines that read a whole hot table."""
    return [(statement, detail) for statement, detail in found if detail.startswith("SCAN") and detail.split()[1] in HOT_TABLES]
