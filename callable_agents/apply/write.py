"""Writing a plan in one transaction: references checked, then only what differs written.

An unchanged object keeps its ``updated_at``; apply never deletes. Problems found here (an
unknown integration, a secret reference the workspace cannot resolve, a taken slug) are
collected like the checks' and stop the write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from callable_agents.apply.checks import check_problem
from callable_agents.apply.document import Problems
from callable_agents.apply.plan import Plan, SourcePlan, action_of, source_differences
from callable_agents.apply.report import ApplyReport, ReportItem
from callable_agents.apply.schema import KnowledgeBaseInput
from callable_agents.apply.values import SecretReference
from callable_agents.core.errors import CallableError
from callable_agents.core.knowledge.store import add_source, create_knowledge_base
from callable_agents.core.models import Agent, Channel, Integration, KnowledgeBase, Source, Workspace
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.agent_spec import Problem, SpecError, agent_reference_problems
from callable_agents.core.store.agents import create_or_update_agent
from callable_agents.core.store.channels import channel_reference_problems, create_or_update_channel
from callable_agents.core.store.workspaces import ensure_workspace


def _secret_reference_problems(
    runtime: Runtime, plan: Plan, integrations: dict[str, str], secrets_set: dict[str, set[str]]
) -> list[Problem]:
    return secret_reference_problems(runtime, plan.secret_references, integrations, secrets_set)


def secret_reference_problems(
    runtime: Runtime,
    references: Iterable[SecretReference],
    integrations: Mapping[str, str],
    secrets_set: Mapping[str, set[str]],
) -> list[Problem]:
    """Each ``{{secret:INTEGRATION.FIELD}}``: the integration exists in the workspace, FIELD is
    one of its provider's secret fields, and it is set (else the tool would fail on first use).

    ``integrations`` maps the workspace's integration names to providers, ``secrets_set`` to
    the names of the secrets each holds (the dashboard checks a tool's settings with this too)."""
    problems = []
    for reference in references:
        name, field = reference.integration, reference.field
        shown = f"{{{{secret:{name}.{field}}}}}"
        provider_name = integrations.get(name)
        if provider_name is None:
            problems.append(
                Problem(
                    reference.loc,
                    f"{shown}: no integration named {name!r} in this workspace; connect one first "
                    f"(e.g. `callable integrations connect http --name {name}`), then apply",
                )
            )
            continue
        provider = runtime.plugins.providers.types.get(provider_name)
        if provider is None:
            problems.append(
                Problem(reference.loc, f"{shown}: integration {name!r} is a {provider_name} integration, and no loaded plugin provides {provider_name!r}")
            )
            continue
        if field not in provider.secret_fields:
            problems.append(
                Problem(
                    reference.loc,
                    f"{shown}: {field!r} is not a secret field of {provider_name} integrations; expected one of: "
                    f"{', '.join(provider.secret_fields) or 'none'}",
                )
            )
            continue
        if field not in secrets_set.get(name, set()):
            problems.append(
                Problem(
                    reference.loc,
                    f"{shown}: integration {name!r} has no {field} set; set it with "
                    f"`callable integrations connect {provider_name} --name {name}`",
                )
            )
    return problems


async def _reference_problems(
    session: AsyncSession, runtime: Runtime, workspace_id: str | None, plan: Plan, problems: Problems
) -> None:
    integrations: dict[str, str] = {}
    secrets_set: dict[str, set[str]] = {}
    kb_names: set[str] = set()
    agent_kinds: dict[str, str] = {}
    if workspace_id is not None:
        rows = await session.execute(
            select(Integration.name, Integration.provider, Integration.secrets).where(
                Integration.workspace_id == workspace_id
            )
        )
        for name, provider, sealed in rows.all():  # the sealed secrets' names only are read
            integrations[name] = provider
            secrets_set[name] = set(sealed or {})
        kb_names = set((await session.scalars(select(KnowledgeBase.name).where(KnowledgeBase.workspace_id == workspace_id))).all())
        rows = await session.execute(select(Agent.name, Agent.kind).where(Agent.workspace_id == workspace_id))
        agent_kinds = {name: kind for name, kind in rows.all()}
    kb_names |= set(plan.sources)
    agent_kinds.update({agent.name: agent.kind for agent in plan.agents})
    problems.extend(_secret_reference_problems(runtime, plan, integrations, secrets_set))
    for index, agent in enumerate(plan.agents):
        found = agent_reference_problems(agent, integrations=integrations, knowledge_bases=kb_names)
        problems.extend([problem.within("agents", index) for problem in found])
    for index, channel in enumerate(plan.channels):
        found = channel_reference_problems(channel, agent_kinds=agent_kinds, integrations=integrations)
        problems.extend([problem.within("channels", index) for problem in found])
        if channel.slug is not None:
            holder = (
                await session.execute(
                    select(Channel.workspace_id, Channel.name).where(Channel.slug == channel.slug)
                )
            ).first()
            if holder is not None and (holder[0] != workspace_id or holder[1] != channel.name):
                problems.add(
                    Problem(("channels", index, "slug"), f"{channel.slug!r} is already used by another channel; pick another slug")
                )


async def _apply_knowledge_base(
    session: AsyncSession,
    runtime: Runtime,
    workspace_id: str,
    kb: KnowledgeBaseInput,
    plans: list[SourcePlan],
    report: ApplyReport,
    to_ingest: list[tuple[str, str]],
) -> None:
    existing = await session.scalar(
        select(KnowledgeBase).where(KnowledgeBase.workspace_id == workspace_id, KnowledgeBase.name == kb.name)
    )
    if existing is None:
        options = {"embedding_model": kb.embedding_model} if kb.embedding_model else {}
        knowledge_base = await create_knowledge_base(session, workspace_id, kb.name, runtime=runtime, **options)
        report.items.append(ReportItem("created", "knowledge base", kb.name))
    else:
        knowledge_base = existing
        if kb.embedding_model and kb.embedding_model != existing.embedding_model:
            raise SpecError(
                [
                    Problem(
                        ("embedding_model",),
                        f"knowledge base {kb.name!r} uses {existing.embedding_model!r}; apply does not re-embed a "
                        "knowledge base (change its model with the kb command)",
                    )
                ]
            )
        report.items.append(ReportItem("unchanged", "knowledge base", kb.name))
    stored = (
        await session.scalars(
            select(Source)
            .where(Source.workspace_id == workspace_id, Source.knowledge_base_id == knowledge_base.id)
            .options(undefer(Source.content))
            .order_by(Source.created_at, Source.id)
        )
    ).all()
    by_identity: dict[tuple[str, str], Source] = {}
    for row in stored:
        identity = row.title if row.kind == "text" else row.location
        by_identity.setdefault((row.kind, identity), row)
    for plan in plans:
        name = f"{kb.name}/{plan.label}"
        source = by_identity.get((plan.kind, plan.identity))
        try:
            if source is None:
                created = await add_source(
                    session,
                    workspace_id,
                    knowledge_base.id,
                    runtime=runtime,
                    kind=plan.kind,
                    location=plan.location,
                    title=plan.title,
                    content=plan.content,
                    options=plan.options,
                    refresh_interval_seconds=plan.refresh_interval_seconds,
                )
                report.items.append(ReportItem("created", "source", name))
                to_ingest.append((created.id, name))
                continue
        except CallableError as exc:
            raise SpecError([check_problem(plan.loc[2:], plan.kind, str(exc))]) from None
        differences = source_differences(source, plan)
        if differences:
            source.title = plan.title or source.title
            source.options = plan.options
            source.content = plan.content
            source.refresh_interval_seconds = plan.refresh_interval_seconds
            source.next_refresh_at = None
            if source.status != "indexing":
                source.status = "pending"
            await session.flush()
            report.items.append(ReportItem("updated", "source", name, ", ".join(differences)))
            to_ingest.append((source.id, name))
        elif source.status == "pending":
            report.items.append(ReportItem("unchanged", "source", name, "not indexed yet: indexing now"))
            to_ingest.append((source.id, name))
        elif source.status == "failed":
            report.items.append(ReportItem("unchanged", "source", name, f"failed: {source.error}"))
        else:
            report.items.append(ReportItem("unchanged", "source", name))


async def write_plan(
    session: AsyncSession, runtime: Runtime, plan: Plan, report: ApplyReport, problems: Problems
) -> list[tuple[str, str]]:
    """Check references, then write what differs. Returns the sources to index, as (id, name)."""
    declared = plan.workspace
    workspace = await session.scalar(select(Workspace).where(Workspace.slug == declared.slug))
    await _reference_problems(session, runtime, workspace.id if workspace else None, plan, problems)
    if problems.found:
        return []
    if workspace is None:
        workspace = await ensure_workspace(session, runtime.vault, declared.name or declared.slug, declared.slug)
        report.items.append(ReportItem("created", "workspace", workspace.slug))
    elif declared.name and workspace.name != declared.name:
        workspace.name = declared.name
        await session.flush()
        report.items.append(ReportItem("updated", "workspace", workspace.slug, "name"))
    else:
        report.items.append(ReportItem("unchanged", "workspace", workspace.slug))

    to_ingest: list[tuple[str, str]] = []
    for index, kb in enumerate(plan.knowledge_bases):
        try:
            await _apply_knowledge_base(session, runtime, workspace.id, kb, plan.sources[kb.name], report, to_ingest)
        except SpecError as exc:
            problems.extend([problem.within("knowledge_bases", index) for problem in exc.problems])
            return []
        except CallableError as exc:
            problems.add(Problem(("knowledge_bases", index), str(exc)))
            return []
    for index, agent in enumerate(plan.agents):
        existed = await session.scalar(select(Agent.id).where(Agent.workspace_id == workspace.id, Agent.name == agent.name))
        try:
            _agent, changed = await create_or_update_agent(session, runtime, workspace.id, agent)
        except SpecError as exc:
            problems.extend([problem.within("agents", index) for problem in exc.problems])
            return []
        except CallableError as exc:
            problems.add(Problem(("agents", index), str(exc)))
            return []
        report.items.append(ReportItem(action_of(changed, existed is not None), "agent", agent.name))
    for index, channel in enumerate(plan.channels):
        existed = await session.scalar(
            select(Channel.id).where(Channel.workspace_id == workspace.id, Channel.name == channel.name)
        )
        try:
            _row, changed = await create_or_update_channel(
                session,
                runtime,
                workspace.id,
                name=channel.name,
                kind=channel.kind,
                agent=channel.agent,
                integration=channel.integration,
                slug=channel.slug,
                config=channel.config,
                replies=channel.replies,
                takeover_notice=channel.takeover_notice,
                return_notice=channel.return_notice,
                enabled=channel.enabled,
            )
        except SpecError as exc:
            problems.extend([problem.within("channels", index) for problem in exc.problems])
            return []
        except CallableError as exc:
            problems.add(Problem(("channels", index), str(exc)))
            return []
        report.items.append(ReportItem(action_of(changed, existed is not None), "channel", channel.name))
    return to_ingest
