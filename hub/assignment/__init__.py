"""The hub side of the router (routing/): the live router service that rebuilds from the database,
matches tasks to agents, persists every transition and publishes `task.*` events; the task rules
(`task.sla_breached`, `task.abandoned`) run at each flush; the task and agent queries.

Start at router_service.py (the service's lifecycle and operations); transitions.py is its flush,
agent_consoles.py its agent websockets, task_views.py a task's shape for the API, consoles and
events. store.py holds the routing tables' queries (routing_models.py in storage holds the tables).

May import: automation (rule effects), outbound, profiles, broker, storage, the utilities, and the
routing package. Must not import: ingest, channels, backoffice, api. New tasks reach it from the
ingest pipeline as rows plus a wake-up callback, never as a call upward.
"""
