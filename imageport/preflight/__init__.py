"""Checks before data moves: what a port or a stage can know in seconds, reported all at once.

``report`` holds the typed report (``Problem``, ``Checked``, ``CheckReport``) and the collector the
checks write into; ``limits`` the platform rules that need no connection (boot firmware against the
Hyper-V generation, Azure's upload sizes, the MBR limit). The checks that ask the platforms live in
the Prefect layer (``tasks/checks/``), which resolves connectors.
"""
