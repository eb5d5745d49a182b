#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_backup_retention
short_description: Apply keep-last / keep-days retention to pg_backup backups
description:
  - Failed, unverified and broken backups are deleted first; they are never counted as backups.
  - Verified backups are kept when they are among the newest O(keep_last) or younger than O(keep_days)
    (either rule keeps a backup). The newest verified backup (the C(latest) one) is never deleted.
  - With neither O(keep_last) nor O(keep_days) only failed/unverified backups are removed.
version_added: 0.1.0
author: pgops.deploy contributors
options:
  backup_root:
    description: Directory holding the backups.
    type: path
    required: true
  keep_last:
    description: Number of newest verified backups to keep.
    type: int
  keep_days:
    description: Keep verified backups younger than this many days.
    type: float
  protect:
    description: Backup ids never deleted (for example the one this run is still working on).
    type: list
    elements: str
    default: []
notes:
  - Check mode reports the plan (C(deleted) lists what would go) without deleting.
"""

EXAMPLES = r"""
- name: Keep a week and at least the last 5 verified backups
  pgops.deploy.pg_backup_retention:
    backup_root: /var/backups/pgops/santri
    keep_last: 5
    keep_days: 7
"""

RETURN = r"""
kept:
  description: Kept backups with the reason (C(id), C(reason)).
  returned: always
  type: list
deleted:
  description: Deleted (or, in check mode, to be deleted) backups with the reason.
  returned: always
  type: list
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_backup import (
    latest_verified_id, list_backups, remove_path, retention_plan)


def main():
    module = AnsibleModule(argument_spec=dict(
        backup_root=dict(type="path", required=True),
        keep_last=dict(type="int"),
        keep_days=dict(type="float"),
        protect=dict(type="list", elements="str", default=[]),
    ), supports_check_mode=True)
    p = module.params
    if p["keep_last"] is not None and p["keep_last"] < 1:
        module.fail_json(msg="keep_last must be >= 1 (the newest verified backup is always kept), got %s" % p["keep_last"])
    if p["keep_days"] is not None and p["keep_days"] < 0:
        module.fail_json(msg="keep_days must be >= 0, got %s" % p["keep_days"])
    backups = list_backups(p["backup_root"])
    keep, delete = retention_plan(backups, p["keep_last"], p["keep_days"])
    protected = set(p["protect"])
    latest = latest_verified_id(p["backup_root"])
    if latest:
        protected.add(latest)
    final_delete = []
    for bid, reason in delete:
        if bid in protected:
            keep.append((bid, "protected (%s)" % ("latest" if bid == latest else "protect list")))
        else:
            final_delete.append((bid, reason))
    if not module.check_mode:
        for bid, _reason in final_delete:
            remove_path(os.path.join(p["backup_root"], bid))
    module.exit_json(
        changed=bool(final_delete),
        kept=[dict(id=b, reason=r) for b, r in sorted(keep)],
        deleted=[dict(id=b, reason=r) for b, r in sorted(final_delete)],
        msg="kept %d, %s %d backups under %s" % (len(keep), "would delete" if module.check_mode else "deleted",
                                                 len(final_delete), p["backup_root"]))


if __name__ == "__main__":
    main()
