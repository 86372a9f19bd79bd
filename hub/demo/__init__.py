"""`omnihub demo`: the hub shown end to end on a fresh machine (bundled config, SQLite, no broker)."""
