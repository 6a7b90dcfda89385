"""`python -m invoicesync` is the `invoicesync` command."""

import sys

from invoicesync.cli import main

sys.exit(main())
