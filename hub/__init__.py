"""The hub: every interaction through one pipeline, one shared profile, rules, routing, outbound
and an outbox to RabbitMQ (DESIGN section 1).

One folder a capability; the folders import downward only, in this order (import-linter keeps it,
pyproject.toml):

    cli > demo > app > api > channels | backoffice > ingest > assignment > automation > outbound
        > profiles | access > broker > storage > settings, keys, ids, logs, metrics, tasks, http_errors

Start reading at app.py (create_app: the wiring) and ingest/pipeline.py (the path of every
interaction). README.md's Architecture section has the table of folders.
"""
