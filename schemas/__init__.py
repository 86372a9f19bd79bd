"""The contact schema and event envelope. Imports nothing else of omnihub's."""

from .errors import OmnihubError
from .events import EVENT_SOURCE, CloudEvent, EventType, routing_key
from .identifiers import (
    DEFAULT_REGION_KEY,
    Identifier,
    IdentifierType,
    normalize_email,
    normalize_identifier,
    normalize_phone,
    parse_identifier,
)
from .interaction import (
    BUILTIN_CHANNELS,
    CHANNELS_KEY,
    CONSENT_CHANGE_KEY,
    Attachment,
    CallInfo,
    CallStatus,
    Channel,
    Content,
    Direction,
    Interaction,
    Kind,
    MetadataValue,
    Party,
    Transaction,
    TransactionItem,
    call_status_rank,
)
from .profile import Profile

__all__ = [
    "BUILTIN_CHANNELS", "CHANNELS_KEY", "CONSENT_CHANGE_KEY", "DEFAULT_REGION_KEY", "EVENT_SOURCE", "Attachment", "CallInfo",
    "CallStatus", "Channel", "CloudEvent", "Content", "Direction", "EventType", "Identifier", "IdentifierType",
    "Interaction", "Kind", "MetadataValue", "OmnihubError", "Party", "Profile", "Transaction", "TransactionItem", "call_status_rank",
    "normalize_email", "normalize_identifier", "normalize_phone", "parse_identifier", "routing_key",
]
