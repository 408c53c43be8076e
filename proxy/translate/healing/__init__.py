"""Tool-call healing (issue #15): every tool call checked against its tool's schema before the client
sees it; repaired when the repair is certain, else retried. Pure: the retry itself is served elsewhere.

decide.py judges one call; syntax.py and schema.py hold the repairs; stream.py is the stage over a
translated Anthropic stream; feedback.py writes the retry request.
"""
