"""Outbound tests send through the real twilio client against the local fake Twilio API."""

from tests.adapters.conftest import twilio, twilio_config  # noqa: F401  (pytest fixtures)
