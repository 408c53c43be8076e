"""Route editor forms. Field-level checks here; whole-configuration checks are proxy.routing.snapshot's
(`config_edit()` validates every edit before it commits)."""

from __future__ import annotations

import json
import time
from collections import defaultdict, deque
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm

from proxy.models import Provider, Rule
from proxy.security.access import key_env_problem
from proxy.security.redact import masked_headers, unmasked_headers
from proxy.translate.dialects import dialect_names


class Form(forms.Form):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class ModelForm(forms.ModelForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")  # labels read "Model", not "Model:"
        super().__init__(*args, **kwargs)


class JSONText(forms.CharField):
    """A JSON value typed in a textarea, with the expected top-level type."""

    def __init__(self, *, kind: type, **kwargs: Any) -> None:
        self.kind = kind
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 2, "class": "mono", "spellcheck": "false"}))
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, dict | list):
            return json.dumps(value) if value else ""
        return value or ""

    def clean(self, value: Any) -> Any:
        text = super().clean(value).strip()
        if not text:
            return self.kind()
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from exc
        if not isinstance(parsed, self.kind):
            raise forms.ValidationError(f"expected a JSON {'object' if self.kind is dict else 'list'}")
        return parsed


class RuleForm(ModelForm):
    conditions = JSONText(
        kind=dict, help_text='e.g. {"model": "*haiku*"}, {"task": "background"}, {"agent": "Explore"}'
    )
    overrides = JSONText(kind=dict, help_text='e.g. {"max_tokens": 8192, "reasoning_effort": "low"}')
    fallbacks = JSONText(
        kind=list, help_text='e.g. [{"provider": "openrouter", "model": "deepseek/deepseek-chat"}]'
    )
    aliases = forms.CharField(
        required=False, help_text="claude-… ids this rule answers to in /v1/models, comma separated"
    )
    # Shown 1-based, as the list numbers rules; stored 0-based. Empty: just above the default rule.
    position = forms.IntegerField(
        required=False,
        min_value=1,
        help_text="1 is tried first; the default rule is always tried last, whatever its position",
    )

    class Meta:
        model = Rule
        fields = [
            "name",
            "position",
            "enabled",
            "is_default",
            "provider",
            "model",
            "conditions",
            "overrides",
            "fallbacks",
            "aliases",
            "heal_tool_calls",
            "tool_call_retries",
        ]
        labels = {"heal_tool_calls": "Heal tool calls", "tool_call_retries": "Tool-call retries"}
        help_texts = {
            "model": "the backend model id; empty keeps the client's model (Anthropic passthrough)",
            "heal_tool_calls": "check every tool call against its tool's schema; repair it, or retry it; "
            "unknown: the provider's setting (this rule's wins, for its fallbacks too)",
            "tool_call_retries": "retries per broken call (0: repairs only); empty: the provider's",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["aliases"] = ", ".join(self.instance.aliases or [])
            # where the list shows it (the default last), not the stored number
            order = Rule.objects.order_by("is_default", "position", "id").values_list("pk", flat=True)
            self.initial["position"] = list(order).index(self.instance.pk) + 1
            if self.instance.is_default:  # it is tried last whatever the number says: do not offer one
                self.fields["position"].disabled = True
                self.fields["position"].help_text = "the default rule is always tried last"
        provider = self.fields["provider"]
        assert isinstance(provider, forms.ModelChoiceField)  # the model's foreign key
        provider.empty_label = None

    def clean_position(self) -> int:
        shown = self.cleaned_data.get("position")
        if shown is None:  # at the end of the rules that can be reached, above the default
            return Rule.objects.filter(is_default=False).exclude(pk=self.instance.pk).count()
        return shown - 1

    def clean_aliases(self) -> list[str]:
        return [a.strip() for a in self.cleaned_data.get("aliases", "").split(",") if a.strip()]


class ProviderForm(ModelForm):
    # Write-only: the stored secret is never sent back to the browser.
    new_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        label="API key",
        help_text="stored in the database; leave empty to keep the current one",
    )
    clear_secret = forms.BooleanField(required=False, label="remove the stored key")
    extra_headers = JSONText(kind=dict)
    model_settings = JSONText(
        kind=dict,
        help_text='per model, globs allowed: {"gpt-5": {"max_output_tokens": 128000}, '
        '"*": {"input_price": 0, "output_price": 0}}',
    )

    class Meta:
        model = Provider
        fields = [
            "name",
            "dialect",
            "base_url",
            "api_key_env",
            "extra_headers",
            "connect_timeout",
            "first_byte_timeout",
            "idle_timeout",
            "total_timeout",
            "model_settings",
            "heal_tool_calls",
            "tool_call_retries",
            "quirks",
        ]
        labels = {
            "api_key_env": "API key from env var",
            "connect_timeout": "Connect timeout (s)",
            "first_byte_timeout": "First-byte timeout (s)",
            "idle_timeout": "Idle timeout (s)",
            "total_timeout": "Total timeout (s)",
            "heal_tool_calls": "Heal tool calls",
            "tool_call_retries": "Tool-call retries",
        }
        help_texts = {
            "api_key_env": "preferred: the name of an environment variable holding the key",
            "first_byte_timeout": "request sent to the backend's first byte; 0 = no limit",
            "idle_timeout": "the longest silence between two chunks of the answer; 0 = no limit",
            "total_timeout": "the whole answer; 0 = no limit",
            "heal_tool_calls": "check every tool call against its tool's schema before the client sees it: "
            "repair what is certain, else retry the call (not on Anthropic passthrough)",
            "tool_call_retries": "retries per broken call, to this backend (0: repairs only)",
            "quirks": "what this endpoint lacks, which Switchboard covers (comma separated): no_tool_choice, "
            "tool_choice_any_is_auto, no_images, no_documents, tool_ids=functions, no_count_tokens, "
            "replay_reasoning, thought_signatures, top_k",
            # Repointing a provider is how a key would be stolen: say what goes there.
            "base_url": "requests go here; with no key set, each client's own API key is forwarded to it",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The registry's names, read per form: the model's field has no choices, so a new dialect
        # needs no migration.
        self.fields["dialect"] = forms.ChoiceField(choices=[(d, d) for d in dialect_names()])
        allowed = ", ".join(settings.API_KEY_ENV_ALLOWED)
        self.fields["api_key_env"].help_text += f" (allowed names: {allowed})"
        self.fields["tool_call_retries"].required = False  # empty: the default, one retry
        # Secret extra headers are write-only too: shown as "[stored]", which keeps them on save.
        self.initial["extra_headers"] = masked_headers(self.instance.extra_headers or {})
        self.fields["quirks"] = forms.CharField(
            required=False, help_text=self.fields["quirks"].help_text, label="Quirks"
        )
        # What a preset leaves to the user (a key) right after what it fills in.
        self.order_fields(
            ["name", "dialect", "base_url", "new_secret", "api_key_env", "clear_secret", "quirks"]
        )
        quirks = self.initial.get("quirks", self.instance.quirks)
        self.initial["quirks"] = ", ".join(quirks) if isinstance(quirks, list | tuple) else quirks or ""

    def clean_quirks(self) -> list[str]:
        return [q.strip() for q in self.cleaned_data.get("quirks", "").split(",") if q.strip()]

    def clean_tool_call_retries(self) -> int:
        value = self.cleaned_data.get("tool_call_retries")
        return 1 if value is None else int(value)

    def clean_api_key_env(self) -> str:
        name = self.cleaned_data.get("api_key_env", "").strip()
        if (problem := key_env_problem(name)) is not None:
            raise forms.ValidationError(problem)
        return name

    def clean_extra_headers(self) -> dict[str, str]:
        return unmasked_headers(
            self.cleaned_data.get("extra_headers") or {}, self.instance.extra_headers or {}
        )

    def save(self, commit: bool = True) -> Provider:
        provider = super().save(commit=False)
        if self.cleaned_data.get("clear_secret"):
            provider.api_key_secret = ""
        elif self.cleaned_data.get("new_secret"):
            provider.api_key_secret = self.cleaned_data["new_secret"]
        if commit:
            provider.save()
        return provider


class ExplainForm(Form):
    exchange = forms.IntegerField(
        required=False, label="stored exchange id", min_value=1, max_value=2**63 - 1
    )
    body = forms.CharField(
        required=False,
        label="or paste a request body",
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono", "spellcheck": "false"}),
    )


class LoginForm(AuthenticationForm):
    """Django's login form, with failed attempts per user name limited (per process): a guessed password
    costs the guesser a wait, not only the server a hash."""

    MAX_FAILURES = 10
    WINDOW_S = 15 * 60
    _failures: dict[str, deque[float]] = defaultdict(deque)

    def clean(self) -> dict[str, Any]:
        name = str(self.cleaned_data.get("username") or "").lower()[:150]
        now = time.monotonic()
        failures = self._failures[name]
        while failures and failures[0] < now - self.WINDOW_S:
            failures.popleft()
        if len(failures) >= self.MAX_FAILURES:
            wait = int(failures[0] + self.WINDOW_S - now) // 60 + 1
            raise forms.ValidationError(f"Too many failed logins for this user: try again in {wait} min.")
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            if len(self._failures) > 10_000:  # many names tried: forget all but this one's
                self._failures.clear()
                self._failures[name] = failures
            failures.append(now)
            raise
        self._failures.pop(name, None)
        return cleaned
