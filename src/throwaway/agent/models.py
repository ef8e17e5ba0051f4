"""Models: chosen by name, configured from the environment.

A model name is ``provider:model``:

- ``anthropic:claude-sonnet-5-5`` (key in ``ANTHROPIC_API_KEY``)
- ``openai:gpt-5`` (key in ``OPENAI_API_KEY``; OpenAI's Responses API)
- ``openai-compatible:llama3.1@http://localhost:11434/v1`` for any server that
  speaks OpenAI's Chat Completions (Ollama, vLLM, llama.cpp); without
  ``@url`` the base URL comes from ``OPENAI_BASE_URL``. The key (if the
  server wants one) comes from ``THROWAWAY_OPENAI_COMPATIBLE_API_KEY``, or
  from ``OPENAI_API_KEY`` only when the URL came from ``OPENAI_BASE_URL``
  (set together, they name one server): a key never goes to a host it was
  not meant for. ``OPENAI_ORG_ID`` and ``OPENAI_PROJECT_ID`` are not sent.
- any other ``provider:model`` pydantic-ai knows, configured as it documents

The name comes from ``--model``, else ``THROWAWAY_MODEL``, else a default for
whichever of ``ANTHROPIC_API_KEY`` / ``OPENAI_API_KEY`` is set.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pydantic-ai loads when a model is made: reading tasks needs only the errors below
    from pydantic_ai.models import Model

# The key an openai-compatible server gets, whatever its URL.
COMPATIBLE_KEY = "THROWAWAY_OPENAI_COMPATIBLE_API_KEY"

# The model used when only a provider's key is configured.
DEFAULT_MODELS = {
    "ANTHROPIC_API_KEY": "anthropic:claude-sonnet-5-5",
    "OPENAI_API_KEY": "openai:gpt-5",
}

HOW_TO_CONFIGURE = """\
Choose a model with --model or THROWAWAY_MODEL, and put its key in the environment:

  Anthropic   export ANTHROPIC_API_KEY=sk-ant-...
              throwaway run --model anthropic:claude-sonnet-5-5 "..."
  OpenAI      export OPENAI_API_KEY=sk-...
              throwaway run --model openai:gpt-5 "..."
  A local OpenAI-compatible server (Ollama, vLLM, llama.cpp):
              throwaway run --model openai-compatible:llama3.1@http://localhost:11434/v1 "..."
              (or export OPENAI_BASE_URL=http://localhost:11434/v1 and --model openai-compatible:llama3.1)
              A key it needs goes in THROWAWAY_OPENAI_COMPATIBLE_API_KEY (OPENAI_API_KEY only with OPENAI_BASE_URL).

With only ANTHROPIC_API_KEY or OPENAI_API_KEY set, that provider's default model is used."""


class ModelNotConfigured(RuntimeError):
    """No usable model: the message says how to configure one."""


class ModelFailed(RuntimeError):
    """The model could not be asked: its server is unreachable, or answered with an error.

    The message is one line: which model and URL, and what went wrong.
    """


def model_failure(model: Model, label: str, error: BaseException, attempts: int = 1) -> ModelFailed:
    """A `ModelFailed` that says which model (`label`, at its URL) failed, how, and after how many attempts."""
    from pydantic_ai.exceptions import ModelAPIError, ModelHTTPError

    name = label.partition("@")[0] or f"{model.system}:{model.model_name}"
    where = f"model {name}" + (f" at {model.base_url}" if model.base_url else "")
    if isinstance(error, ModelHTTPError):
        body = error.body if isinstance(error.body, str) else json.dumps(error.body, default=str)
        what = f"answered HTTP {error.status_code}" + (f": {_one_line(body, 200)}" if error.body else "")
    elif isinstance(error, ModelAPIError) and "connect" in type(error).__name__.lower() + str(error).lower():
        what = f"could not be reached ({_one_line(str(_root_cause(error)), 200)})"
    else:
        what = f"failed: {type(error).__name__}: {_one_line(str(error), 300)}"
    tries = f" ({attempts} attempts)" if attempts > 1 else ""
    return ModelFailed(f"the {where} {what}{tries}")


def _root_cause(error: BaseException) -> BaseException:
    """The innermost cause (the socket's error, not the SDK's "Connection error.")."""
    seen = {id(error)}
    while error.__cause__ is not None and id(error.__cause__) not in seen and len(seen) < 20:
        error = error.__cause__
        seen.add(id(error))
    return error


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_registry: dict[str, Model] = {}


def register_model(name: str, model: Model) -> None:
    """Make `model` available under `name` (e.g. ``"scripted:demo"``) to `resolve_model`.

    A task records its model by name, so a process that resumes it must be able
    to resolve the same name: register custom models at import time.
    """
    _registry[name] = model


def configured_model_name(name: str | None = None) -> str:
    """The model name to use: `name`, else ``THROWAWAY_MODEL``, else a default for a configured key."""
    name = name or os.environ.get("THROWAWAY_MODEL")
    if name:
        return name
    for key, default in DEFAULT_MODELS.items():
        if os.environ.get(key):
            return default
    raise ModelNotConfigured("No model is configured.\n\n" + HOW_TO_CONFIGURE)


def resolve_model(name: str | Model | None = None) -> Model:
    """The model for `name` (see the module docs), ready for `pydantic_ai.direct.model_request`.

    Raises `ModelNotConfigured`, with instructions, when there is no model name
    or the provider it names has no key.
    """
    from pydantic_ai.models import Model

    if isinstance(name, Model):
        return name
    name = configured_model_name(name)
    if name in _registry:
        return _registry[name]
    provider, sep, model_name = name.partition(":")
    if not sep or not model_name:
        raise ModelNotConfigured(f"Model {name!r} is not of the form provider:model.\n\n" + HOW_TO_CONFIGURE)
    if provider == "anthropic":
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        return AnthropicModel(model_name, provider=AnthropicProvider(api_key=_key("ANTHROPIC_API_KEY", name)))
    if provider == "openai":
        from pydantic_ai.models.openai import OpenAIResponsesModel
        from pydantic_ai.providers.openai import OpenAIProvider

        return OpenAIResponsesModel(model_name, provider=OpenAIProvider(api_key=_key("OPENAI_API_KEY", name)))
    if provider == "openai-compatible":
        return _openai_compatible(name, model_name)
    try:
        from pydantic_ai.models import infer_model

        return infer_model(name)
    except Exception as e:  # noqa: BLE001 - pydantic-ai says what is missing; we add how to fix it
        raise ModelNotConfigured(f"Cannot use model {name!r}: {e}\n\n" + HOW_TO_CONFIGURE) from None


def _key(variable: str, name: str) -> str:
    key = os.environ.get(variable)
    if not key:
        raise ModelNotConfigured(
            f"Model {name!r} needs {variable}, which is not set: export {variable}=...\n\n" + HOW_TO_CONFIGURE
        )
    return key


def _openai_compatible(name: str, spec: str) -> Model:
    from openai import Omit
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model_name, _, explicit_url = spec.partition("@")
    base_url = explicit_url or os.environ.get("OPENAI_BASE_URL", "")
    if not base_url:
        raise ModelNotConfigured(
            f"Model {name!r} needs a server: write openai-compatible:{model_name}@http://host:port/v1 "
            "or export OPENAI_BASE_URL.\n\n" + HOW_TO_CONFIGURE
        )
    # A key goes only where it was meant to: OPENAI_API_KEY belongs with
    # OPENAI_BASE_URL (or with OpenAI), never with a URL written in the name.
    api_key = os.environ.get(COMPATIBLE_KEY) or (None if explicit_url else os.environ.get("OPENAI_API_KEY"))
    # Local servers mostly ignore the key, but the client insists on one. No
    # organization or project headers: the client reads those from the
    # environment too, and would send them along.
    provider = OpenAIProvider(base_url=base_url, api_key=api_key or "not-needed")
    client = provider.client.copy(default_headers={"OpenAI-Organization": Omit(), "OpenAI-Project": Omit()})
    return OpenAIChatModel(model_name, provider=OpenAIProvider(openai_client=client))
