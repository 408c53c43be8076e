"""Known providers, as data: adding one is choosing its name and pasting a key.

Each preset gives the base URL, the dialect, how the key is sent, the environment variable a key
usually lives in, and the endpoint's capability profile (quirks: Target.options for every model it
serves, read by the dialect; see translate/anthropic_profile.py and openai_chat/signatures.py). Where a
vendor serves both an Anthropic-compatible and an OpenAI-compatible endpoint, the preset picks the one
that keeps more (thinking and its signatures, tool ids, images) and says why.

Sources, checked 2026-12: api-docs.deepseek.com/guides/anthropic_api (images, documents not supported;
tool_choice any behaves as auto), platform.moonshot.ai/docs (Anthropic endpoint; tool ids
functions.<name>:<n>), docs.z.ai (Anthropic endpoint), platform.minimax.io/docs (Anthropic endpoint, text
only), docs.ollama.com/api/anthropic-compatibility (no count_tokens, no tool_choice), ai.google.dev
(generateContent; OpenAI-compatible endpoint with thought signatures), and each vendor's API reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Auth = Literal["bearer", "x-api-key", "x-goog-api-key", "none"]


@dataclass(frozen=True, slots=True)
class Preset:
    key: str  # also the provider name it suggests
    label: str
    base_url: str
    dialect: str
    auth: Auth  # how the dialect sends the key (documentation: each dialect sends it its own way)
    key_env: str  # the environment variable the vendor's own docs use; "" for local servers
    quirks: tuple[str, ...] = ()
    model: str = ""  # a sensible first model for the default rule
    note: str = ""


PRESETS: tuple[Preset, ...] = (
    Preset("openai", "OpenAI", "https://api.openai.com/v1", "openai", "bearer", "OPENAI_API_KEY",
           model="gpt-4.1"),
    Preset("openrouter", "OpenRouter", "https://openrouter.ai/api/v1", "openai", "bearer",
           "OPENROUTER_API_KEY", model="anthropic/claude-sonnet-4.5"),
    Preset("deepseek", "DeepSeek", "https://api.deepseek.com/anthropic", "anthropic", "x-api-key",
           "DEEPSEEK_API_KEY",
           quirks=("tool_choice_any_is_auto", "replay_reasoning", "no_images", "no_documents",
                   "no_count_tokens"),
           model="deepseek-chat",
           note="Anthropic-compatible endpoint: thinking and its signatures round-trip as they are"),
    Preset("moonshot", "Moonshot (Kimi)", "https://api.moonshot.ai/anthropic", "anthropic", "x-api-key",
           "MOONSHOT_API_KEY", quirks=("tool_ids=functions", "no_count_tokens"),
           model="kimi-k2-0905-preview"),
    Preset("zhipu", "Zhipu GLM (Z.ai)", "https://api.z.ai/api/anthropic", "anthropic", "x-api-key",
           "ZAI_API_KEY", quirks=("no_count_tokens",), model="glm-4.6"),
    Preset("minimax", "MiniMax", "https://api.minimax.io/anthropic", "anthropic", "x-api-key",
           "MINIMAX_API_KEY", quirks=("no_images", "no_documents", "no_count_tokens"), model="MiniMax-M2"),
    Preset("groq", "Groq", "https://api.groq.com/openai/v1", "openai", "bearer", "GROQ_API_KEY",
           model="moonshotai/kimi-k2-instruct-0905"),
    Preset("together", "Together AI", "https://api.together.xyz/v1", "openai", "bearer", "TOGETHER_API_KEY",
           model="Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8"),
    Preset("gemini", "Google Gemini", "https://generativelanguage.googleapis.com", "gemini", "x-goog-api-key",
           "GEMINI_API_KEY", model="gemini-2.5-pro"),
    Preset("gemini-openai", "Google Gemini (OpenAI-compatible endpoint)",
           "https://generativelanguage.googleapis.com/v1beta/openai", "openai", "bearer", "GEMINI_API_KEY",
           quirks=("thought_signatures",), model="gemini-2.5-pro",
           note="for gateways that only pass Chat Completions; the gemini preset keeps more"),
    Preset("ollama", "Ollama", "http://localhost:11434", "anthropic", "none", "",
           quirks=("no_tool_choice", "no_count_tokens", "no_stream_errors"), model="qwen3-coder",
           note="Ollama 0.14 or later (its Anthropic-compatible API)"),
    Preset("vllm", "vLLM", "http://localhost:8000/v1", "openai", "none", "", quirks=("top_k",)),
    Preset("llamacpp", "llama.cpp server", "http://localhost:8080/v1", "openai", "none", "",
           quirks=("top_k",)),
    Preset("lmstudio", "LM Studio", "http://localhost:1234/v1", "openai", "none", ""),
)  # fmt: skip

BY_KEY: dict[str, Preset] = {p.key: p for p in PRESETS}


def preset_for(key: str) -> Preset | None:
    """The preset named `key`, or None."""
    return BY_KEY.get(key)


def available(dialects: tuple[str, ...]) -> tuple[Preset, ...]:
    """The presets whose dialect this build knows (a dialect not yet registered hides its presets)."""
    return tuple(p for p in PRESETS if p.dialect in dialects)


def form_initial(preset: Preset, *, taken: set[str], environ: dict[str, str]) -> dict[str, object]:
    """The new-provider form's fields filled from a preset: a free name, and the key variable only when
    it is set here (else the key is pasted into the form, and an unset variable would win over it)."""
    name = preset.key
    n = 2
    while name in taken:
        name, n = f"{preset.key}-{n}", n + 1
    return {
        "name": name,
        "dialect": preset.dialect,
        "base_url": preset.base_url,
        "api_key_env": preset.key_env if preset.key_env and environ.get(preset.key_env) else "",
        "quirks": list(preset.quirks),
    }
