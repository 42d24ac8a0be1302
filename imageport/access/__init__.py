"""Who may do what on the Prefect server: users, roles and the allow-list over Prefect's REST routes.

Pure (no Prefect, no web framework): ``deployments/gateway.py`` applies it in front of Prefect's own
server app, ``cli/users.py`` manages the users file. See docs/architecture.md, "Roles in front of Prefect".
"""
