"""Platform adapters: everything that depends on a disk reference's kind, one module per kind.

``protocol`` defines what an adapter does, ``registry`` is the one table that selects it; every
caller (CLI, blocks, tasks, flows, caching, the reaper) asks the registry and never branches on a
kind itself. See docs/architecture.md, "Platform adapters".
"""
