"""Backup sets: ``pgshift backup``, ``restore``, ``verify-backup`` and ``backup list``.

Public API (used by the CLI and the tests)::

    plan = plan_backup(BackupOptions(source, to=DIR), sink=sink)      # reads the source, writes nothing
    result = run_backup(options, sink=sink)                          # a complete set, or an error
    plan = plan_restore(RestoreOptions(set_path, target), sink=sink)
    result = run_restore(options, sink=sink)
    report = verify_backup(VerifyBackupOptions(set_path), sink=sink)
    entries = list_sets(DIR)

A backup and a restore are plans of migrate's steps (``migrate.plan.Step``) run through migrate's
step wrapper and journal; see ``backup.sets`` for the layout of a set and what makes it complete.
"""

from __future__ import annotations

from pgshift.backup.sets import BackupSet, SetEntry, list_sets, open_set
from pgshift.backup.take import BackupOptions, BackupPlan, BackupResult, plan_backup, run_backup

__all__ = [
    "BackupOptions",
    "BackupPlan",
    "BackupResult",
    "BackupSet",
    "SetEntry",
    "list_sets",
    "open_set",
    "plan_backup",
    "run_backup",
]
