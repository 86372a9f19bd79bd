"""The shared customer profile: identity resolution (identity.py), configured segments
(segments.py), and the profile API's statements: get, timeline, patch, merge, unmerge, erase
(store.py).

The batch statements the ingest writer shares with this folder (load, merge, purchases) are
hub/storage/batch.py, since the ingest writer and the profile API run them in one transaction each.

May import: broker (event rows), storage, the utilities, the rules package (segment conditions).
Must not import: any capability above it.
"""
