"""The back office: commands in from RabbitMQ (`profile.upsert`, `message.send`,
`interaction.import`; commands.py consumes, command_store.py writes) and the connector workers
that carry events out to legacy targets (connectors/: SQL table, flat file, signed HTTP;
`omnihub worker`).

May import: ingest (an imported interaction goes through the pipeline), and everything below it.
Must not import: channels, api.
"""
