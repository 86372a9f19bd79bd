"""The adapter runtime: finding the configured adapters (entry points, adapters/registry.py),
mounting their webhooks under /channels/<name>/ with the authenticity check and its 403,
handing them the hub's services (ingest, call updates, state, blobs), and the durable state and
content-addressed blob store adapters get.

Start at runtime.py. The adapters themselves live in the top-level adapters/ package. Several hubs
on one PostgreSQL database reach each other's sockets through peers.py (LISTEN/NOTIFY: a chat
reply, an agent's offer); router_link.py runs agents' operations on whichever hub routes.

May import: ingest, assignment (a waiting customer's task), outbound, and everything below them.
Must not import: backoffice, api.
"""
