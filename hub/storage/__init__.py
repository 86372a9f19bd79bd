"""The database: one AsyncEngine per process (engine.py), every table (models.py and the
*_models.py beside it, one per capability, all on one MetaData), the batch statements on the shared
interaction and profile tables (batch.py), and the Alembic migrations (migrate.py, migrations/,
`omnihub migrate`).

Tables stay here, not in each capability: Alembic's one linear history needs the complete
metadata, and several capabilities read the same tables. A capability's queries live with it
(profiles/store.py, assignment/store.py, access/store.py, broker/outbox_store.py).

May import: the top-level utilities only.
"""
