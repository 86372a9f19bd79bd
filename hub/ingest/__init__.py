"""Every interaction's way in: the group-commit pipeline (pipeline.py) and its unit of work
(batch_write.py: dedupe, identity, steps, inserts in one transaction), the steps it runs (rules,
consent, routing), how the hub assembles it (setup.py), a call's later reports (call_updates.py),
and `omnihub import pos` (pos_import.py).

Start at pipeline.py, then batch_write.py.

May import: assignment, automation, outbound, profiles, broker, storage, the utilities. Must not
import: channels, backoffice, api; they hand work to it.
"""
