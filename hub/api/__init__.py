"""The REST and websocket API: one module per resource (interactions, profiles, messages,
campaigns, routing, rules, outbox, auth, meta), the OpenAPI document, the console's static files.
Every list pages the same way (paging.py); attachments.py says how an attachment's bytes are served.

The top of the hub: handlers parse and answer, and call the capability that does the work. No
capability imports this folder; the JSON error answers every layer shares are hub/http_errors.py.
errors.py wraps each route once (JSON errors and its declared scope) and answers 404/405 in JSON.

May import: every capability below it. Must not be imported by any of them.
"""
