"""Route editor forms. Field-level checks here; whole-configuration checks are proxy.routing's
(`config_edit()` validates every edit before it commits)."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from proxy.models import Provider, Rule


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
        ]
        help_texts = {"model": "the backend model id; empty keeps the client's model (Anthropic passthrough)"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["aliases"] = ", ".join(self.instance.aliases or [])
        self.fields["provider"].empty_label = None

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
        ]
        labels = {
            "api_key_env": "API key from env var",
            "connect_timeout": "Connect timeout (s)",
            "first_byte_timeout": "First-byte timeout (s)",
            "idle_timeout": "Idle timeout (s)",
            "total_timeout": "Total timeout (s)",
        }
        help_texts = {
            "api_key_env": "preferred: the name of an environment variable holding the key",
            "first_byte_timeout": "request sent to the backend's first byte; 0 = no limit",
            "idle_timeout": "the longest silence between two chunks of the answer; 0 = no limit",
            "total_timeout": "the whole answer; 0 = no limit",
        }

    def __init__(
        self, *args: Any, dialects: tuple[str, ...] = ("openai", "anthropic"), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["dialect"] = forms.ChoiceField(choices=[(d, d) for d in dialects])

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
    exchange = forms.IntegerField(required=False, label="stored exchange id")
    body = forms.CharField(
        required=False,
        label="or paste a request body",
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono", "spellcheck": "false"}),
    )
