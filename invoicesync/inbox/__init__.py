"""inbox (shell): the invoices the marketplaces issue to the seller, fetched into `<root>/inbox/`, once each.

`plan` (core) decides windows and when a pass is due; `journal` records each invoice before and after its
download, and each pass; `folder` puts a checked, fsynced file into place beside its sidecar; `fetch` runs
one pass; `runner` runs passes beside an outbox's loop in the daemon.
"""
