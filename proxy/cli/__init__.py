"""The `switchboard` console script: serve, claude (the launcher), statusline, workers, the start banner."""
