"""Data files shipped with the proxy (model_limits.json). A package so setuptools installs them."""
