"""Every ``imageport`` command pays for what ``import cli.main`` imports: the heavy SDKs stay out of it.

The SMB stack (smbclient, spnego, cryptography), azure-core and Prefect are imported by the code that
uses them; a command that never touches a share, Azure or the Prefect API does not load them.
"""

from __future__ import annotations

import subprocess
import sys

from tests.infra.services import REPO

HEAVY = ("smbclient", "spnego", "azure", "prefect", "pyVmomi", "guestfs")


def test_importing_the_cli_loads_no_heavy_sdk() -> None:
    code = (
        "import sys\n"
        "import cli.main\n"
        f"print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [], f"import cli.main loaded {done.stdout.strip()}"
