"""OpenAI (or OpenAI-compatible) embeddings, keyed by the workspace's ``openai`` integration.

Model names: ``openai`` (``text-embedding-3-small``), ``openai:MODEL``, or
``openai:MODEL@INTEGRATION`` to pick one of several ``openai`` integrations. Without an
integration name the workspace's only ``openai`` integration is used, and with none at all
the ``OPENAI_API_KEY`` environment variable.
"""

from __future__ import annotations

from langchain_core.embeddings import Embeddings
from sqlalchemy import select

from callable_agents.core.errors import InvalidInput
from callable_agents.core.contracts.hookspecs import hookimpl
from callable_agents.core.store.integrations import get_integration, list_integrations, read_secret
from callable_agents.core.llm import ModelConfig, build_embeddings
from callable_agents.core.contracts.loaders import EmbeddingsRequest, EmbeddingsType
from callable_agents.core.models import Integration, Workspace

DEFAULT_MODEL = "text-embedding-3-small"


async def build(request: EmbeddingsRequest) -> Embeddings:
    model, _, integration_name = request.model.partition("@")
    model = model or DEFAULT_MODEL
    integration: Integration | None
    async with request.runtime.db.session() as session:
        if integration_name:
            integration = await get_integration(session, request.workspace_id, integration_name)
            if integration.provider != "openai":
                raise InvalidInput(
                    f"embedding_model: integration {integration_name!r} is a {integration.provider} integration; "
                    "expected an openai one"
                )
        else:
            found = await list_integrations(session, request.workspace_id, provider="openai")
            if len(found) > 1:
                names = ", ".join(item.name for item in found)
                raise InvalidInput(
                    f"embedding_model: the workspace has several openai integrations ({names}); "
                    f"name one as openai:{model}@NAME"
                )
            integration = found[0] if found else None
        if integration is None:
            return build_embeddings(ModelConfig(model=model))
        workspace = await session.scalar(select(Workspace).where(Workspace.id == request.workspace_id))
        assert workspace is not None
        api_key = await read_secret(session, request.runtime.vault, workspace, integration, "api_key")
    public = integration.public or {}
    return build_embeddings(
        ModelConfig(
            model=model, api_key=api_key, base_url=public.get("base_url"), organization=public.get("organization")
        )
    )


@hookimpl
def register_embeddings() -> list[EmbeddingsType]:
    return [
        EmbeddingsType(
            name="openai",
            description="OpenAI embeddings (text-embedding-3-*) through the workspace's openai integration",
            factory=build,
        )
    ]
