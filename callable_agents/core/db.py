"""The async database: engine, sessions, schema state and migrations.

SQLite runs in WAL mode with a busy timeout so the server, the worker and the CLI can share
one file; PostgreSQL is used as it is. Migrations are Alembic revisions shipped inside the
package (``core/migrations``) so an installed wheel can migrate itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, TypeVarTuple, Unpack

from sqlalchemy import Connection, Engine, Select, create_engine, event, make_url, or_, select
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, StaticPool

from callable_agents.core.config import sync_database_url
from callable_agents.core.errors import NotMigrated
from callable_agents.core.models import Base

if TYPE_CHECKING:  # alembic is imported when migrating, not by every command
    from alembic.config import Config as AlembicConfig

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
# A PostgreSQL connection back from the pool after this long idle is pinged before use.
IDLE_PING_SECONDS = 5.0
_CHECKED_IN_AT = "callable_checked_in_at"

ModelT = TypeVar("ModelT", bound=Base)
ResultT = TypeVar("ResultT")
ArgsT = TypeVarTuple("ArgsT")


def alembic_config(url: str) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sync_database_url(url).replace("%", "%%"))
    return config


@functools.cache
def head_revision() -> str:
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    return heads[0]


def _set_sqlite_pragmas(
    dbapi_connection: DBAPIConnection | sqlite3.Connection, _record: ConnectionPoolEntry | None = None
) -> None:
    # The driver's own implicit BEGIN is turned off: _begin issues ours, for writes.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


WRITE_OPTION = "callable_sqlite_write"


def _begin(connection: Connection) -> None:
    """Begin SQLite write transactions ourselves, holding the write lock from the start.

    A deferred transaction that reads and then writes cannot take the write lock if another
    connection committed in between: SQLite fails it at once ("database is locked") instead
    of waiting out the busy timeout. Write sessions (:meth:`Database.session`, or any
    session passed to :meth:`Database.mark_write`) therefore begin IMMEDIATE and queue on the
    busy timeout. Read-only sessions (``Database.sessions()``) begin nothing: each read
    stands alone, as the sqlite3 driver does by default, and never holds a lock.
    """
    if connection.get_execution_options().get(WRITE_OPTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_thread_engine(url: str, *, echo: bool = False) -> Engine:
    """A synchronous engine on one kept-open SQLite connection, for the database thread.

    One connection (StaticPool): every use ends in a commit or a rollback of its own, so the
    pool's reset-on-return would only repeat it. Its sessions begin IMMEDIATE when given
    ``execution_options(**{WRITE_OPTION: True})`` (see :func:`_begin`).
    """
    engine = create_engine(
        sync_database_url(url),
        echo=echo,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        poolclass=StaticPool,
        pool_reset_on_return=None,
    )
    event.listen(engine, "connect", _set_sqlite_pragmas)
    event.listen(engine, "begin", _begin)
    return engine


def _ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled PostgreSQL connection before use only when it sat idle a while.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: a round trip per transaction,
    about one statement in eight on the worker's path. A connection in steady use proves
    itself by the statements it runs, and a statement that fails on a dead one invalidates
    the whole pool (SQLAlchemy's disconnect handling), so the caller's retry reconnects. An
    idle connection is the one likely to have died unseen (a database restart, a firewall
    dropping idle sockets): it is pinged, and a failed ping replaces it and every connection
    older than it, as the pre-ping did (SQLAlchemy's documented pessimistic check, on the
    pool's ``checkout`` event).
    """
    dialect = engine.dialect

    def note_checkin(_dbapi_connection: DBAPIConnection | None, record: ConnectionPoolEntry) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    def ping_if_idle(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None or time.monotonic() - checked_in_at < idle_seconds:
            return  # new, or in use moments ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise InvalidatePoolError(f"an idle connection failed its ping: {exc}") from exc

    event.listen(engine, "checkin", note_checkin)
    event.listen(engine, "checkout", ping_if_idle)


class Database:
    """One engine and session factory for a process.

    ``url`` is an async URL (see :func:`callable_agents.core.config.async_database_url`).
    ``idle_ping_seconds``: how long a pooled PostgreSQL connection may sit idle before it is
    pinged on its next use.
    """

    def __init__(self, url: str, *, echo: bool = False, idle_ping_seconds: float = IDLE_PING_SECONDS) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            _ensure_sqlite_parent(url)
            # aiosqlite gives each connection its own thread; a small pool keeps them warm.
            self.engine: AsyncEngine = create_async_engine(
                url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
            )
            event.listen(self.engine.sync_engine, "connect", _set_sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _begin)
        else:
            self.engine = create_async_engine(url, echo=echo, pool_size=10, max_overflow=10)
            _ping_idle_connections(self.engine.sync_engine, idle_ping_seconds)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # The same pool, each connection switched to autocommit while it serves run()'s
        # statements that need no transaction (PostgreSQL; a driver setting, no round trip).
        self._autocommit_sessions = async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )
        self._echo = echo
        self._thread_engine: Engine | None = None
        self._thread_write_engine: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None

    async def run(
        self, work: Callable[[Session], ResultT], *, write: bool = True, transaction: bool = True
    ) -> ResultT:
        """Run ``work(session)`` in one transaction, committed if it returns, and return its result.

        For the hot paths (storing webhooks, claiming jobs, a turn's reads and its result):
        ``work`` is plain synchronous code on a synchronous :class:`~sqlalchemy.orm.Session`,
        so a whole transaction costs one hand-off instead of one per statement.

        * SQLite: ``work`` runs on the database's own thread, on a connection of the stdlib
          driver. The process's hot-path transactions queue there, which is how SQLite
          wants its writers anyway (one at a time), and the event loop keeps serving
          requests meanwhile.
        * PostgreSQL: ``work`` runs through the async driver (``AsyncSession.run_sync``).

        ``write=False`` for reads: each read stands alone, in no transaction (on SQLite no
        write transaction begins; on PostgreSQL no ``BEGIN``/``COMMIT``, two round trips
        that would buy nothing, since at READ COMMITTED each statement reads its own snapshot
        anyway). Not for reads that lock rows (``FOR UPDATE``). ``transaction=False`` for
        work that is one write statement (a job's claim): on PostgreSQL it commits on its
        own, atomic as any statement, without the two round trips; SQLite runs it as usual.
        Don't call this from inside an open write :meth:`session` on SQLite: it would wait
        on that session's lock.
        """
        if not self.is_sqlite:
            if not write or not transaction:
                # Autocommit: the driver sends no BEGIN, and the pool's reset has nothing
                # to roll back.
                async with self._autocommit_sessions() as session:
                    return await session.run_sync(work)
            async with self.sessions() as session:
                async with session.begin():
                    return await session.run_sync(work)
        return await self.call_on_thread(self._run_on_thread, work, write)

    async def call_on_thread(self, function: Callable[[Unpack[ArgsT]], ResultT], *args: Unpack[ArgsT]) -> ResultT:
        """Run ``function(*args)`` on the SQLite thread of :meth:`run`, for code with its own
        connection opened there (the conversation checkpointer). SQLite only."""
        return await asyncio.wrap_future(self.submit_on_thread(function, *args))

    def submit_on_thread(
        self, function: Callable[[Unpack[ArgsT]], ResultT], *args: Unpack[ArgsT]
    ) -> concurrent.futures.Future[ResultT]:
        """Queue ``function(*args)`` on the SQLite thread without waiting for it (SQLite only).

        For work that hands its results back itself (the inbound writer's drain); the
        returned future holds its result or error.
        """
        if not self.is_sqlite:
            raise RuntimeError("the database thread is for SQLite; PostgreSQL work goes through the async driver")
        if self._thread is None:  # one thread: SQLite takes one writer at a time anyway
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callable-sqlite")
        return self._thread.submit(function, *args)

    def _engines(self) -> tuple[Engine, Engine]:
        if self._thread_engine is None or self._thread_write_engine is None:
            self._thread_engine = _sqlite_thread_engine(self.url, echo=self._echo)
            self._thread_write_engine = self._thread_engine.execution_options(**{WRITE_OPTION: True})
        return self._thread_engine, self._thread_write_engine

    def _run_on_thread(self, work: Callable[[Session], ResultT], write: bool) -> ResultT:
        read_engine, write_engine = self._engines()
        # The transaction begins (IMMEDIATE, for writes) at the first statement: work that
        # finds nothing to do costs no transaction at all.
        with Session(write_engine if write else read_engine, expire_on_commit=False) as session, session.begin():
            return work(session)

    @property
    def libpq_url(self) -> str:
        """The PostgreSQL URL as psycopg takes it (without SQLAlchemy's driver name)."""
        return "postgresql://" + self.url.split("://", 1)[1]

    @property
    def sqlite_path(self) -> str:
        """The SQLite database file (SQLite only)."""
        if not self.is_sqlite:
            raise RuntimeError("sqlite_path: this database is not SQLite")
        return str(make_url(self.url).database)

    def connect_without_waiting(self) -> sqlite3.Connection:
        """A stdlib connection for writes on the event loop (the inbound queue's appends):
        the usual settings, but it never waits. Busy timeout 0, so a locked database fails
        at once (the caller hands its write to the database thread), and no automatic
        checkpoints, whose ``fsync`` would block the loop (call :meth:`checkpoint` on the
        database thread instead). SQLite only."""
        connection = sqlite3.connect(self.sqlite_path, isolation_level=None, check_same_thread=False)
        _set_sqlite_pragmas(connection)
        connection.execute("PRAGMA busy_timeout=0")
        connection.execute("PRAGMA wal_autocheckpoint=0")
        return connection

    def checkpoint(self) -> None:
        """On the SQLite thread: copy the write-ahead log into the database file and have the
        next writer start the log over, for connections that never checkpoint themselves
        (the inbound queue's).

        First ``PASSIVE``, which copies the log while writers go on appending (the bulk of
        the work, and the file's ``fsync``), then ``RESTART``, which holds writers off
        briefly to copy the few pages appended meanwhile and lets the next writer start the
        log over. ``PASSIVE`` alone never catches up with a connection that keeps appending,
        so the log would grow without end; ``RESTART`` alone holds writers off for the whole
        copy (~25 ms here, a p99 spike on the webhook).
        """
        pooled = self._engines()[0].raw_connection()
        try:
            connection = _stdlib_connection(pooled)
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
        finally:
            pooled.close()

    @contextmanager
    def driver_transaction(self) -> Iterator[sqlite3.Connection]:
        """On the SQLite thread: a write transaction on the thread's connection, as the stdlib
        driver's own object; committed if the block succeeds, rolled back if it raises.

        For the inbound writer's plain SQL, where SQLAlchemy's session would cost more than
        the statements (see :mod:`callable_agents.core.conversation.inbound.sql`).
        """
        pooled = self._engines()[0].raw_connection()
        try:
            connection = _stdlib_connection(pooled)
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:  # also after a failed COMMIT
                    connection.execute("ROLLBACK")
                raise
        finally:
            pooled.close()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A write session in a transaction: committed on success, rolled back on error.

        On SQLite it holds the write lock from its start (see :func:`_begin`), so don't open
        one inside another; for reads alone use ``sessions()`` (a read-only session: its
        statements are not one transaction on SQLite).
        """
        async with self.sessions() as session:
            async with session.begin():
                await self.mark_write(session)
                yield session

    async def mark_write(self, session: AsyncSession) -> None:
        """Make the session's transaction a write transaction (call right after it begins)."""
        if self.is_sqlite:
            await session.connection(execution_options={WRITE_OPTION: True})

    async def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        async with self.engine.connect() as conn:
            return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())

    async def is_migrated(self) -> bool:
        return await self.current_revision() == await asyncio.to_thread(head_revision)

    async def require_migrated(self) -> None:
        current = await self.current_revision()
        if current != await asyncio.to_thread(head_revision):
            state = "empty" if current is None else f"at revision {current}"
            raise NotMigrated(
                f"the database is {state}, not at the latest schema: run `callable migrate` "
                "(or start with CALLABLE_AUTO_MIGRATE=true)"
            )

    async def migrate(self) -> None:
        """Upgrade to the latest revision (Alembic runs synchronously, so off the event loop)."""
        await asyncio.to_thread(migrate_sync, self.url)

    async def dispose(self) -> None:
        if self._thread is not None:
            thread, self._thread = self._thread, None
            if self._thread_engine is not None:
                await asyncio.get_running_loop().run_in_executor(thread, self._thread_engine.dispose)
                self._thread_engine = self._thread_write_engine = None
            thread.shutdown(wait=False)
        await self.engine.dispose()


def _stdlib_connection(pooled: PoolProxiedConnection) -> sqlite3.Connection:
    """The stdlib driver's connection under a pooled one (the SQLite thread's engines use pysqlite)."""
    connection = pooled.driver_connection
    if not isinstance(connection, sqlite3.Connection):
        raise TypeError(f"expected a sqlite3 connection from the SQLite thread's engine, got {type(connection).__name__}")
    return connection


def _ensure_sqlite_parent(url: str) -> None:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def migrate_sync(url: str, revision: str = "head") -> None:
    from alembic import command

    _ensure_sqlite_parent(url)
    command.upgrade(alembic_config(url), revision)


def downgrade_sync(url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def _text_column(model: type[Base], name: str) -> InstrumentedAttribute[str]:
    """``model.<name>`` for a string column every model passed here has (``workspace_id``,
    ``name``, ``id``): the helpers below are generic over models, which share no base class
    declaring them."""
    column: InstrumentedAttribute[str] = getattr(model, name)
    return column


def scoped(model: type[ModelT], workspace_id: str) -> Select[ModelT]:
    """``SELECT model WHERE workspace_id = ...``: the one way data-access functions start a query."""
    return select(model).where(_text_column(model, "workspace_id") == workspace_id)


async def find_named(session: AsyncSession, model: type[ModelT], workspace_id: str, name_or_id: str) -> ModelT | None:
    """The workspace's row of ``model`` whose name or id is ``name_or_id``, or None.

    For the named entities (agents, channels, integrations, knowledge bases), which people
    refer to by name and APIs by id.
    """
    column_name, column_id = _text_column(model, "name"), _text_column(model, "id")
    return await session.scalar(scoped(model, workspace_id).where(or_(column_name == name_or_id, column_id == name_or_id)))


async def fetch_all(session: AsyncSession, query: Select[ModelT]) -> Sequence[ModelT]:
    return (await session.scalars(query)).all()


__all__ = ["Database", "scoped", "find_named", "fetch_all", "migrate_sync", "head_revision"]
