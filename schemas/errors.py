"""The one exception root every omnihub package raises from."""


class OmnihubError(Exception):
    """Base of every error omnihub raises on purpose."""
