"""``make demo``: the most complete real path on the embedded default.

Runs on Prefect's ephemeral server (state in $PREFECT_HOME) with the local
platform: saves a ``local`` connector over ./demo-output and runs the
``check-connectors`` flow, which logs in with every saved connector and
publishes a Markdown report artifact. The workflows issue replaces this with
a full MCS->MCS run.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from blocks.registry import save_connector
from flows.check_connectors import check_connectors

DEMO_ROOT = Path("demo-output").absolute()


def main() -> None:
    save_connector("local", "local", {"root": str(DEMO_ROOT)}, overwrite=True)
    print(f"saved connector 'local' -> {DEMO_ROOT}")
    report = check_connectors(names=["local"])
    print("\nconnector check:")
    for row in report:
        print(f"  {row['name']:<12} {row['kind']:<10} {'; '.join(row['checks'])}")  # type: ignore[arg-type]
    print(
        "\nThe run, its task runs and the 'connector-check' artifact are stored in "
        f"{os.environ.get('PREFECT_HOME', '~/.prefect')}.\n"
        "See them in the UI: `make ui`, then open http://127.0.0.1:4200/runs"
    )


if __name__ == "__main__":
    main()
