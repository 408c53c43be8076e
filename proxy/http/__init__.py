"""The /v1/ edge: the ASGI fast path, the views, request parsing and validation, Anthropic's error format."""
