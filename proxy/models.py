"""Providers and routing rules (the configuration) and Exchanges (the record)."""

from __future__ import annotations

from django.db import models

from proxy.fields import BodyField, FastJSONField
from proxy.security.crypto import SecretField


class Provider(models.Model):
    """A backend endpoint: one wire dialect, one base URL, one key."""

    name = models.SlugField(max_length=64, unique=True)
    # A key of proxy.translate.dialects.DIALECTS, checked by routing: no choices, so no migration per dialect.
    dialect = models.CharField(max_length=32, default="openai")
    base_url = models.CharField(max_length=500)
    # The key is either the name of an environment variable (preferred: nothing secret in the DB)
    # or a secret stored here that the UI never shows again. Neither set = forward the client's key.
    api_key_env = models.CharField(max_length=128, blank=True, default="")
    api_key_secret = SecretField(blank=True, default="")  # encrypted at rest (proxy/security/crypto.py)
    extra_headers = models.JSONField(default=dict, blank=True)
    connect_timeout = models.FloatField(default=10.0)
    # Seconds; 0 = no limit. First byte: from sending the request to the backend's first byte (a
    # stream's first chunk), generous for models that think silently and local servers reading a long
    # prompt. Idle: the longest silence between two chunks. Total: the whole answer (none by default:
    # long answers are legitimate, and the client has its own limit).
    first_byte_timeout = models.FloatField(default=300.0)
    idle_timeout = models.FloatField(default=120.0)  # was read_timeout (httpx's read timeout is this)
    total_timeout = models.FloatField(default=0.0)
    # {model_id: {"max_output_tokens": int, "context_window": int, "input_price": $/Mtok,
    #  "output_price": $/Mtok, "cache_read_price": $/Mtok, "options": [..]}}: overrides of built-in tables.
    model_settings = models.JSONField(default=dict, blank=True)
    # Tool-call healing (issue #15): every call checked against its tool's schema, repaired or retried.
    heal_tool_calls = models.BooleanField(default=True)
    tool_call_retries = models.PositiveSmallIntegerField(default=1)  # per broken call; 0: repairs only
    # The endpoint's capability profile, as Target.options for every model it serves ("no_tool_choice",
    # "tool_ids=functions", ...): filled from a preset (proxy/routing/presets.py), editable.
    quirks = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class Rule(models.Model):
    """One routing rule. Rules are tried by position; the first match wins."""

    name = models.CharField(max_length=100, unique=True)
    position = models.IntegerField(default=0, db_index=True)
    enabled = models.BooleanField(default=True)
    # {"model": "*haiku*", "task": "background", "agent": "Explore", "client": "...", "session": "..."}
    conditions = models.JSONField(default=dict, blank=True)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="rules")
    model = models.CharField(max_length=200, blank=True, default="")  # "" = keep the client's model
    # {"max_tokens": int ceiling, "temperature": float, "reasoning_effort": "low|medium|high"}
    overrides = models.JSONField(default=dict, blank=True)
    # [{"provider": "name", "model": "id"}, ...] tried in order when an attempt fails before the first byte
    fallbacks = models.JSONField(default=list, blank=True)
    # Virtual claude-… model ids this rule answers to, listed in GET /v1/models.
    aliases = models.JSONField(default=list, blank=True)
    is_default = models.BooleanField(default=False)
    # None: the provider's setting
    heal_tool_calls = models.BooleanField(null=True, blank=True, default=None)
    tool_call_retries = models.PositiveSmallIntegerField(null=True, blank=True, default=None)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name


class ConfigVersion(models.Model):
    """A single row whose counter is bumped on every configuration edit: every process re-reads on change."""

    version = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)


class ClientKey(models.Model):
    """A client key made in the dashboard. Only its SHA-256 is kept: the key is shown once, when made."""

    label = models.CharField(max_length=100, unique=True)  # shown on the exchanges it authenticates
    digest = models.CharField(max_length=64, unique=True)  # sha256 hex of the key
    hint = models.CharField(max_length=16, blank=True, default="")  # its first characters, to tell keys apart
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # None: the SWITCHBOARD_KEY_* defaults; 0: no limit.
    max_concurrent = models.PositiveIntegerField(null=True, blank=True)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.label


class Exchange(models.Model):
    """One client request and everything that happened answering it."""

    class Status(models.TextChoices):
        PENDING = "pending"
        OK = "ok"
        ERROR = "error"
        CANCELLED = "cancelled"

    created_at = models.DateTimeField(db_index=True)  # when the request was received
    # The id the client saw (`request-id` header, `request_id` in error bodies): what a user quotes.
    request_id = models.CharField(max_length=40, blank=True, default="", db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    endpoint = models.CharField(max_length=32, default="messages")  # messages | count_tokens
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    http_status = models.IntegerField(null=True, blank=True)
    error_type = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    stream = models.BooleanField(default=False)

    session_id = models.CharField(max_length=100, blank=True, default="", db_index=True)
    agent = models.CharField(max_length=100, blank=True, default="", db_index=True)
    user_agent = models.CharField(max_length=300, blank=True, default="")
    client_model = models.CharField(max_length=200, blank=True, default="", db_index=True)
    backend_model = models.CharField(max_length=200, blank=True, default="", db_index=True)  # feed filter
    provider = models.CharField(max_length=64, blank=True, default="")
    dialect = models.CharField(max_length=32, blank=True, default="")
    rule = models.CharField(max_length=100, blank=True, default="", db_index=True)
    client_key = models.CharField(max_length=100, blank=True, default="", db_index=True)  # its label
    route_reason = models.TextField(blank=True, default="")
    task = models.CharField(max_length=32, blank=True, default="")

    # Both sides of the translation. Secrets never reach these: headers are filtered first.
    client_request = BodyField(null=True, blank=True)  # its repeated and large parts: in Blob
    client_headers = FastJSONField(default=dict, blank=True)
    upstream_request = BodyField(null=True, blank=True)
    upstream_response = models.TextField(blank=True, default="")  # raw JSON body or SSE transcript
    client_response = FastJSONField(null=True, blank=True)  # the Message the client got (accumulated)
    changes = FastJSONField(default=list, blank=True)  # [{"kind", "detail"}]: what translation altered
    attempts = FastJSONField(default=list, blank=True)  # every upstream attempt, fallbacks included

    # Timings in milliseconds after created_at.
    upstream_first_byte_ms = models.FloatField(null=True, blank=True)
    first_token_ms = models.FloatField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)

    input_tokens = models.IntegerField(default=0)
    output_tokens = models.IntegerField(default=0)
    cache_read_tokens = models.IntegerField(default=0)
    cache_write_tokens = models.IntegerField(default=0)
    cost_usd = models.FloatField(null=True, blank=True)  # estimate on the backend model
    claude_cost_usd = models.FloatField(null=True, blank=True)  # the same tokens on the model asked for

    tool_calls = models.IntegerField(default=0)
    # Calls in the answer that failed through the model: malformed arguments, or the client refusing
    # the call in a later request (bad arguments, unknown tool; added by the recorder then). The feed's
    # "failed tool calls" filter.
    tool_call_errors = models.IntegerField(default=0, db_index=True)
    # Tools that ran and reported an error (`is_error` results that are not Claude Code refusing the
    # call): a failing `Bash` test run is the tool's result, not the model's failure.
    tool_result_errors = models.IntegerField(default=0)
    origin = models.CharField(max_length=16, blank=True, default="")  # "" client | "test" | "replay"

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"exchange {self.pk} {self.client_model} {self.status}"


class Blob(models.Model):
    """A value stored once (a system block, the tools, an earlier turn, an image): see recording/blobs.py."""

    sha256 = models.CharField(max_length=64, primary_key=True)
    data = models.TextField()  # the value's JSON text
    size = models.IntegerField(default=0)
    # The newest exchange id that may refer to it: the prune sweeps blobs older than every kept exchange.
    last_id = models.BigIntegerField(default=0, db_index=True)
    first_id = models.BigIntegerField(default=0, db_index=True)  # the exchange that stored it (search)
    created_at = models.DateTimeField()


class Retention(models.Model):
    """How much of the record to keep, as edited in the dashboard (one row; none: the environment's)."""

    days = models.PositiveIntegerField(null=True, blank=True)  # None: no age limit
    max_gb = models.FloatField(null=True, blank=True)  # None: no size limit
    updated_at = models.DateTimeField(auto_now=True)


class UsageSums(models.Model):
    """What the costs page and the sessions list add up, kept per bucket by database triggers on Exchange
    (recording/rollups.py): every insert, update and delete of an exchange adjusts its buckets in the same
    statement, so the sums stay equal to a recount whatever writes the rows (the recorder, a prune)."""

    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    unpriced = models.BigIntegerField(default=0)  # used tokens on a model with no known price
    input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost_usd = models.FloatField(default=0.0)  # of the exchanges with a known cost (`priced` of them)
    priced = models.BigIntegerField(default=0)
    claude_cost_usd = models.FloatField(default=0.0)  # of the `claude_priced` with a Claude-side cost
    claude_priced = models.BigIntegerField(default=0)
    claude_cost_priced_usd = models.FloatField(default=0.0)  # Claude-side cost of the priced exchanges
    claude_priced_both = models.BigIntegerField(default=0)
    tool_calls = models.BigIntegerField(default=0)
    tool_call_errors = models.BigIntegerField(default=0)
    tool_result_errors = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class DailyUsage(UsageSums):
    """Messages exchanges per UTC day and route: the costs page reads these instead of every row."""

    day = models.DateField()
    provider = models.CharField(max_length=64, default="")
    backend_model = models.CharField(max_length=200, default="")
    client_model = models.CharField(max_length=200, default="")
    rule = models.CharField(max_length=100, default="")
    agent = models.CharField(max_length=100, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "provider", "backend_model", "client_model", "rule", "agent"],
                name="proxy_dailyusage_bucket",
            )
        ]


class SessionUsage(UsageSums):
    """One session's exchanges of one endpoint: the sessions list (and the costs page's top sessions)."""

    session_id = models.CharField(max_length=100)
    endpoint = models.CharField(max_length=32, default="messages")
    first_at = models.DateTimeField()
    last_at = models.DateTimeField(db_index=True)
    first_id = models.BigIntegerField(default=0)
    last_id = models.BigIntegerField(default=0)
    user_agent = models.CharField(max_length=300, default="")  # the greatest, as the list showed it
    # The newest exchange's route (what answered last).
    last_provider = models.CharField(max_length=64, default="")
    last_backend_model = models.CharField(max_length=200, default="")
    last_rule = models.CharField(max_length=100, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session_id", "endpoint"], name="proxy_sessionusage_bucket")
        ]
        indexes = [models.Index(fields=["first_at"], name="proxy_sessionusage_first")]
