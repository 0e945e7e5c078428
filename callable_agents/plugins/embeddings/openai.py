"""OpenAI (or OpenAI-compatible) embeddings, keyed by the workspace's ``openai`` integration.

Model names: ``openai`` (``text-embedding-3-small``), ``openai:MODEL``, or
``openai:MODEL@INTEGRATION`` to pick one of several ``openai`` integrations. Without an
integration name the workspace's only ``openai`` integration is used, and with none at all
the ``OPENAI_API_KEY`` environment variable.
"""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from callable_agents.plugin import (
    EmbeddingsRequest,
    EmbeddingsType,
    InvalidInput,
    ModelConfig,
    StoredIntegration,
    build_embeddings,
    hookimpl,
    read_integration_secret,
    read_named_integration,
    read_provider_integrations,
)

DEFAULT_MODEL = "text-embedding-3-small"


async def build(request: EmbeddingsRequest) -> Embeddings:
    model, _, integration_name = request.model.partition("@")
    model = model or DEFAULT_MODEL
    integration: StoredIntegration | None
    if integration_name:
        integration = await read_named_integration(request.runtime, request.workspace_id, integration_name)
        if integration.provider != "openai":
            raise InvalidInput(
                f"embedding_model: integration {integration_name!r} is a {integration.provider} integration; "
                "expected an openai one"
            )
    else:
        found = await read_provider_integrations(request.runtime, request.workspace_id, "openai")
        if len(found) > 1:
            names = ", ".join(item.name for item in found)
            raise InvalidInput(
                f"embedding_model: the workspace has several openai integrations ({names}); "
                f"name one as openai:{model}@NAME"
            )
        integration = found[0] if found else None
    if integration is None:
        return build_embeddings(ModelConfig(model=model))
    api_key = read_integration_secret(request.runtime, integration, "api_key")
    public = integration.public
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
