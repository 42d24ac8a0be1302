"""The compositing engine (CE): a task-scoped helper that works on a copy of a disk and always goes away.

``lifecycle.compositing_engine`` creates it through a backend (``local``,
``azure``, ``vsphere``), records every resource in a ledger the moment it
exists, runs the one agent program (``python -m imageport.engine.agent``) on
the attached copy, and deletes what it created in reverse order whatever
happened. Everything created is tagged with run id, stage and expiry
(``tags``), so ``reaper`` can find what a killed run left behind.
"""
