"""Who may do what: logins (scrypt passwords, expiring session tokens), API keys with scopes, the
per-route authorization every route declares, and `omnihub users|keys` (DESIGN section 9).

Start at auth.py (Authenticator, Scope, `requires`). Its tables' queries are store.py; the tables
themselves are hub/storage/auth_models.py. Confinement of agents to their own tasks is applied in
the web layer (hub/api/confine.py), which reads what this folder decides.

May import: storage and the top-level utilities. Must not import: any other capability (it sits
beside profiles, below everything that serves requests).
"""
