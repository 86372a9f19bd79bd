"""Commands back-office systems send the hub over RabbitMQ (DESIGN section 5).

A command is a JSON body published to the `omnihub.commands` exchange with the command's name as
the routing key and a `message_id` the hub dedupes on. These models are the contract: the hub
validates every command against them, and their JSON Schemas go into the AsyncAPI document.
"""

from __future__ import annotations

import enum
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from .identifiers import Identifier, IdentifierType, normalize_identifier
from .interaction import Interaction
from .profile import ProfilePatch


class CommandName(enum.StrEnum):
    PROFILE_UPSERT = "profile.upsert"
    MESSAGE_SEND = "message.send"
    INTERACTION_IMPORT = "interaction.import"


class ProfileUpsert(BaseModel):
    """Create or update the profile an ERP (or CRM) record describes, found by its external id.

    The external id becomes an `external` identifier of the profile. Fields follow the profile
    PATCH rules (null clears; attributes and consents merge key by key). Extra identifiers are
    attached when no other profile holds them; one that another profile holds is reported in the
    result, never merged: a back-office record is not evidence that two customers are one.
    """

    model_config = ConfigDict(extra="forbid")

    external_id: Annotated[str, StringConstraints(min_length=3, max_length=161)] = Field(
        description="'system:id', e.g. 'erp:C-1001'")
    identifiers: list[Identifier] = Field(default_factory=list, max_length=20)
    fields: ProfilePatch = Field(default_factory=ProfilePatch)

    @field_validator("external_id")
    @classmethod
    def _external(cls, v: str) -> str:
        return normalize_identifier(IdentifierType.EXTERNAL, v)


class Recipient(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile_id: uuid.UUID | None = None
    identifier: Identifier | None = None

    @model_validator(mode="after")
    def _one(self) -> Recipient:
        if (self.profile_id is None) == (self.identifier is None):
            raise ValueError("give exactly one of profile_id and identifier")
        return self


ChannelName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class MessageSend(BaseModel):
    """Send a message to a customer through the hub's outbound path (`POST /v1/messages`)."""

    model_config = ConfigDict(extra="forbid")

    to: Recipient
    channel: Literal["auto"] | list[ChannelName] = Field("auto", description="'auto' or channels in order of preference")
    template: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    variables: dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], Any] = Field(default_factory=dict)
    body: Annotated[str, StringConstraints(min_length=1, max_length=10_000)] | None = None
    purpose: Literal["transactional", "marketing"] = "transactional"

    @model_validator(mode="after")
    def _content(self) -> MessageSend:
        if (self.template is None) == (self.body is None):
            raise ValueError("give exactly one of template and body")
        return self


class InteractionImport(BaseModel):
    """A contact recorded elsewhere (a branch visit, a call logged in the ERP), ingested as if it had
    arrived on its channel. Without a provider_ref the command's message_id becomes the dedupe key."""

    model_config = ConfigDict(extra="forbid")

    interaction: Interaction


COMMAND_MODELS: dict[CommandName, type[BaseModel]] = {
    CommandName.PROFILE_UPSERT: ProfileUpsert,
    CommandName.MESSAGE_SEND: MessageSend,
    CommandName.INTERACTION_IMPORT: InteractionImport,
}


def command_json_schema(name: CommandName) -> dict[str, Any]:
    schema = COMMAND_MODELS[name].model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:omnihub:command:{name.value}"
    return schema
