"""The pure translation core: Anthropic Messages <-> each backend's wire dialect.

Imports only the stdlib, typing, orjson (fast JSON) and bpe-openai (offline token counts):
no Django, no httpx, no clock, no randomness. Ids and keys are passed in.
The registry of dialects is `proxy.translate.dialects.DIALECTS`.
"""
