"""Connector workers (`omnihub worker sql|file|http`): separate processes, one per legacy target,
each consuming its own queue bound to the event routing keys it wants (DESIGN section 5)."""
