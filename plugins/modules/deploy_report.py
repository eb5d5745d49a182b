#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: deploy_report
short_description: Write the deployment report (JSON, Markdown, self-contained HTML)
version_added: 0.1.0
description:
  - Turns the run record that C(deploy.yml) collects (run metadata, phase timings,
    the result facts of the preflight, backup, postgis_migration, app_release,
    matview_refresh and verification steps) into the runbook's sign-off sheet.
  - Computes the final status, V(SUCCESS), V(ROLLED BACK) or V(FAILED), from the phases.
  - Runs on the controller. Files are only rewritten when their content changes.
options:
  record:
    description:
      - The run record. Keys C(run) (id, started, finished, started_at, finished_at,
        operator, limit, version, check_mode), C(phases) (name -> started, finished,
        status, hosts, message), C(hosts), C(backup), C(migrations), C(releases)
        (host -> release result), C(matviews), C(verification), C(errors),
        C(findings), C(rolled_back), C(rollback_actions).
    type: dict
    required: true
  output_dir:
    description: Directory for the report files; created when missing.
    type: path
    required: true
  basename:
    description: File name without extension. Defaults to C(deploy-<run id>).
    type: str
  formats:
    description: Which files to write.
    type: list
    elements: str
    choices: [json, markdown, html]
    default: [json, markdown, html]
  latest_link:
    description: Also point C(latest.<ext>) symlinks in O(output_dir) at this run's files.
    type: bool
    default: true
author:
  - pgops.deploy maintainers
"""

EXAMPLES = r"""
- name: Write the report
  pgops.deploy.deploy_report:
    record: "{{ __deploy_report_record }}"
    output_dir: "{{ playbook_dir }}/reports"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
status:
  description: Final status of the run.
  returned: always
  type: str
  sample: SUCCESS
summary:
  description: One human line.
  returned: always
  type: str
  sample: "SUCCESS: deploy 20261121T093000Z of v1.1.0 (production) in 95.2s"
files:
  description: Paths written (or that would be written in check mode), by format.
  returned: always
  type: dict
  sample: {json: reports/deploy-20261121T093000Z.json, html: reports/deploy-20261121T093000Z.html}
report:
  description: The normalised report document (the JSON file's content).
  returned: always
  type: dict
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgops.deploy.plugins.module_utils.pgops_deploy_report import (
    build_report, render_html, render_markdown, summary_line)

EXTENSIONS = {"json": "json", "markdown": "md", "html": "html"}


def _write_if_changed(path, content, check_mode):
    try:
        with open(path, "r") as fh:
            if fh.read() == content:
                return False
    except (IOError, OSError):
        pass
    if not check_mode:
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(content)
        os.rename(tmp, path)
    return True


def _link(output_dir, target, ext, check_mode):
    link = os.path.join(output_dir, "latest." + ext)
    if os.path.islink(link) and os.readlink(link) == target:
        return False
    if not check_mode:
        tmp = link + ".tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.rename(tmp, link)
    return True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            record=dict(type="dict", required=True),
            output_dir=dict(type="path", required=True),
            basename=dict(type="str"),
            formats=dict(type="list", elements="str", choices=list(EXTENSIONS), default=list(EXTENSIONS)),
            latest_link=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    report = build_report(module.params["record"])
    run_id = report["run"].get("id") or "unknown"
    basename = module.params["basename"] or "deploy-%s" % run_id
    output_dir = module.params["output_dir"]
    renderers = {
        "json": lambda: json.dumps(report, indent=2, sort_keys=True, default=str) + "\n",
        "markdown": lambda: render_markdown(report),
        "html": lambda: render_html(report),
    }
    changed = False
    files = {}
    if not os.path.isdir(output_dir):
        changed = True
        if not module.check_mode:
            os.makedirs(output_dir)
    for fmt in module.params["formats"]:
        name = "%s.%s" % (basename, EXTENSIONS[fmt])
        path = os.path.join(output_dir, name)
        files[fmt] = path
        changed |= _write_if_changed(path, renderers[fmt](), module.check_mode)
        if module.params["latest_link"]:
            changed |= _link(output_dir, name, EXTENSIONS[fmt], module.check_mode)
    module.exit_json(changed=changed, status=report["status"], summary=summary_line(report), files=files,
                     report=report)


if __name__ == "__main__":
    main()
