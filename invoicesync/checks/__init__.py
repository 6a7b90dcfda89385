"""checks (shell): one vocabulary for the content checks, in one place.

- `content` (core): a file's name, order and bytes -> its verdict (`judge`), with `pdf`, `ubl` and
  `zipsafety` (core) for each kind and `schemas` (edge: the UBL 2.1 XSDs, loaded once);
- `examine` (shell): one file on disk -> its order, size, hash and verdict;
- `pool` (shell): the checker processes, each file with a time limit; `child` (shell) is the process
  itself and the wire format between them; `template` (shell) is the process checkers are forked from.
"""

import logging


def quiet_libraries() -> None:
    """pypdf reports what it repairs in a PDF as logging warnings: a verdict is our only output about a
    file. Called by every process that judges files (the CLI's, each checker); here, not in `logs`, so a
    checker starts without structlog."""
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
