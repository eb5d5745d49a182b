#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_backup_archive
short_description: Pack a backup into one (optionally encrypted) file for secondary storage, verified, and unpack it
description:
  - C(state=packed) streams C(tar) of the backup directory through C(gpg --symmetric) (AES256, passphrase from
    vault) or C(age) (public-key recipients) into one file, hashing the plain tar stream on the way. It then
    decrypts the file again and compares the sha256 of the decrypted stream (decrypt-and-checksum); a mismatch
    deletes the archive and fails.
  - C(state=unpacked) decrypts and extracts an archive into O(dest) and, when O(expect_sha256) is given,
    fails unless the decrypted tar stream has that sha256.
  - Every stage's exit status is kept (a failing tar, gpg or age fails the task).
version_added: 0.1.0
author: pgops.deploy contributors
options:
  state:
    description: Pack a backup directory or unpack an archive.
    type: str
    choices: [packed, unpacked]
    default: packed
  path:
    description: Backup directory to pack (C(state=packed)).
    type: path
  archive:
    description:
      - Archive file. Default for packing is C(<path>.tar), C(<path>.tar.gpg) or C(<path>.tar.age) next to the
        backup directory.
    type: path
  dest:
    description: Directory to extract into (C(state=unpacked)); the backup directory is created inside it.
    type: path
  encryption:
    description: C(none) packs a plain tar (content is already compressed).
    type: str
    choices: [none, gpg, age]
    default: none
  passphrase:
    description: gpg symmetric passphrase (from vault). Never logged; passed to gpg through a pipe, not argv.
    type: str
  age_recipients:
    description: age public keys (C(age1...)) to encrypt to.
    type: list
    elements: str
    default: []
  age_identity:
    description: age identity file (private key) to decrypt with.
    type: path
  expect_sha256:
    description: Expected sha256 of the plain tar stream when unpacking.
    type: str
notes:
  - Check mode reports what would be written.
  - C(gpg) is required for gpg encryption; C(age) is optional and only needed for age encryption.
"""

EXAMPLES = r"""
- name: Encrypt the backup for off-site copy
  pgops.deploy.pg_backup_archive:
    path: "{{ backup_result.path }}"
    encryption: gpg
    passphrase: "{{ vault_backup_passphrase }}"
  no_log: false
  register: archive

- name: Unpack it again somewhere else
  pgops.deploy.pg_backup_archive:
    state: unpacked
    archive: /srv/offsite/santri-20250101T000000Z.tar.gpg
    dest: /var/backups/pgops/santri
    encryption: gpg
    passphrase: "{{ vault_backup_passphrase }}"
    expect_sha256: "{{ archive.plain_sha256 }}"
"""

RETURN = r"""
archive:
  description: Archive path.
  returned: always
  type: str
plain_sha256:
  description: sha256 of the plain tar stream (identical before encryption and after decryption).
  returned: success
  type: str
archive_sha256:
  description: sha256 of the archive file as stored (what a copy must match).
  returned: success
  type: str
size:
  description: Archive size in bytes.
  returned: success
  type: int
extracted:
  description: Directory extracted (C(state=unpacked)).
  returned: when state=unpacked
  type: str
"""

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_backup import sha256_file


class Crypto(object):
    """argv builders for gpg / age with the secret kept off the command line."""

    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.tmp = None
        self.fds = []

    def __enter__(self):
        if self.p["encryption"] == "gpg":
            self.tmp = tempfile.mkdtemp(prefix="pgops-gpg-")
            os.chmod(self.tmp, 0o700)
        return self

    def __exit__(self, *exc):
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        if self.tmp:
            subprocess.run(["gpgconf", "--homedir", self.tmp, "--kill", "gpg-agent"], capture_output=True)
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _pass_fd(self):
        r, w = os.pipe()
        os.write(w, self.p["passphrase"].encode("utf-8"))
        os.close(w)
        self.fds.append(r)
        return r

    def encrypt(self):
        """(argv, pass_fds) reading plain data on stdin, writing ciphertext on stdout."""
        if self.p["encryption"] == "gpg":
            fd = self._pass_fd()
            return ["gpg", "--homedir", self.tmp, "--batch", "--yes", "--quiet", "--pinentry-mode", "loopback",
                    "--passphrase-fd", str(fd), "--symmetric", "--cipher-algo", "AES256", "--compress-algo", "none",
                    "--output", "-"], (fd,)
        argv = ["age", "--encrypt"]
        for rcpt in self.p["age_recipients"]:
            argv += ["--recipient", rcpt]
        return argv, ()

    def decrypt(self, archive):
        if self.p["encryption"] == "gpg":
            fd = self._pass_fd()
            return ["gpg", "--homedir", self.tmp, "--batch", "--quiet", "--pinentry-mode", "loopback",
                    "--passphrase-fd", str(fd), "--decrypt", archive], (fd,)
        return ["age", "--decrypt", "--identity", self.p["age_identity"], archive], ()


def _drain(stream, sink):
    sink.append(stream.read().decode("utf-8", "replace"))
    stream.close()


def run_hashing(producer, consumer, producer_fds=(), consumer_fds=(), out_path=None, cwd=None):
    """producer | (sha256 tap) | consumer; returns (sha256, {argv0: rc}, stderr text)."""
    errs = [[], []]
    prod = subprocess.Popen(producer, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=producer_fds, cwd=cwd)
    out = open(out_path, "wb") if out_path else subprocess.DEVNULL
    try:
        cons = subprocess.Popen(consumer, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.PIPE,
                                pass_fds=consumer_fds, cwd=cwd) if consumer else None
    finally:
        if out_path:
            out.close()
    threads = [threading.Thread(target=_drain, args=(prod.stderr, errs[0]))]
    if cons:
        threads.append(threading.Thread(target=_drain, args=(cons.stderr, errs[1])))
    for t in threads:
        t.start()
    h = hashlib.sha256()
    broken = False
    while True:
        chunk = prod.stdout.read(1 << 20)
        if not chunk:
            break
        h.update(chunk)
        if cons and not broken:
            try:
                cons.stdin.write(chunk)
            except BrokenPipeError:
                broken = True
    if cons:
        try:
            cons.stdin.close()
        except BrokenPipeError:
            broken = True
    rcs = {os.path.basename(producer[0]): prod.wait()}
    if cons:
        rcs[os.path.basename(consumer[0])] = cons.wait()
        if broken and rcs[os.path.basename(consumer[0])] == 0:
            rcs[os.path.basename(consumer[0])] = -1
    for t in threads:
        t.join()
    return h.hexdigest(), rcs, " | ".join(x.strip() for x in errs[0] + errs[1] if x.strip())


def main():
    module = AnsibleModule(argument_spec=dict(
        state=dict(type="str", default="packed", choices=["packed", "unpacked"]),
        path=dict(type="path"),
        archive=dict(type="path"),
        dest=dict(type="path"),
        encryption=dict(type="str", default="none", choices=["none", "gpg", "age"]),
        passphrase=dict(type="str", no_log=True),
        age_recipients=dict(type="list", elements="str", default=[]),
        age_identity=dict(type="path"),
        expect_sha256=dict(type="str"),
    ), supports_check_mode=True, required_if=[
        ("state", "packed", ("path",)), ("state", "unpacked", ("archive", "dest")),
    ])
    p = module.params
    enc = p["encryption"]
    if enc == "gpg" and not p["passphrase"]:
        module.fail_json(msg="encryption=gpg needs passphrase (keep it in vault)")
    if enc == "gpg" and len(p["passphrase"]) < 12:
        module.fail_json(msg="gpg passphrase must be at least 12 characters, got %d" % len(p["passphrase"]))
    if enc == "age":
        if not shutil.which("age"):
            module.fail_json(msg="encryption=age needs the `age` binary on this host (apt install age); or use gpg")
        if p["state"] == "packed" and not p["age_recipients"]:
            module.fail_json(msg="encryption=age needs age_recipients (age1... public keys)")
        if p["state"] == "unpacked" and not p["age_identity"]:
            module.fail_json(msg="decrypting with age needs age_identity (identity file)")
    if enc == "gpg" and not shutil.which("gpg"):
        module.fail_json(msg="encryption=gpg needs gpg on this host (apt install gnupg)")
    if p["state"] == "packed":
        pack(module)
    unpack(module)


def pack(module):
    p = module.params
    path = p["path"].rstrip("/")
    if not os.path.isdir(path):
        module.fail_json(msg="backup directory %s does not exist" % path)
    suffix = {"none": ".tar", "gpg": ".tar.gpg", "age": ".tar.age"}[p["encryption"]]
    archive = p["archive"] or path + suffix
    if module.check_mode:
        module.exit_json(changed=True, archive=archive, msg="would pack %s into %s" % (path, archive))
    tar = ["tar", "-C", os.path.dirname(path), "-cf", "-", os.path.basename(path)]
    old = os.umask(0o077)
    try:
        with Crypto(module) as crypto:
            if p["encryption"] == "none":
                consumer, cfds = ["cat"], ()
            else:
                consumer, cfds = crypto.encrypt()
            plain, rcs, err = run_hashing(tar, consumer, consumer_fds=cfds, out_path=archive)
            if any(rcs.values()):
                _remove(archive)
                module.fail_json(msg="packing %s failed (exit status %s): %s" % (path, rcs, err), archive=archive)
            # Decrypt-and-checksum: the archive must give back exactly the tar stream we wrote.
            if p["encryption"] == "none":
                back, rcs2, err2 = run_hashing(["cat", archive], None)
            else:
                dec, dfds = crypto.decrypt(archive)
                back, rcs2, err2 = run_hashing(dec, None, producer_fds=dfds)
    finally:
        os.umask(old)
    if any(rcs2.values()) or back != plain:
        _remove(archive)
        module.fail_json(msg="archive %s did not verify after writing (decrypted sha256 %s, expected %s; %s %s); "
                         "deleted it" % (archive, back, plain, rcs2, err2), archive=archive)
    os.chmod(archive, 0o600)
    module.exit_json(changed=True, archive=archive, plain_sha256=plain, archive_sha256=sha256_file(archive),
                     size=os.path.getsize(archive), encryption=p["encryption"], verified=True,
                     msg="packed %s into %s (%s), decrypted again and the sha256 matches" % (path, archive, p["encryption"]))


def unpack(module):
    p = module.params
    archive = p["archive"]
    if not os.path.isfile(archive):
        module.fail_json(msg="archive %s does not exist" % archive)
    if module.check_mode:
        module.exit_json(changed=True, archive=archive, msg="would unpack %s into %s" % (archive, p["dest"]))
    if not os.path.isdir(p["dest"]):
        os.makedirs(p["dest"], mode=0o700)
    # Extract into a staging directory first: a wrong passphrase or a bad archive leaves nothing behind.
    stage = tempfile.mkdtemp(prefix=".unpack-", dir=p["dest"])
    try:
        with Crypto(module) as crypto:
            producer, pfds = (["cat", archive], ()) if p["encryption"] == "none" else crypto.decrypt(archive)
            plain, rcs, err = run_hashing(producer, ["tar", "-C", stage, "-xf", "-"], producer_fds=pfds)
        if any(rcs.values()):
            module.fail_json(msg="unpacking %s failed (exit status %s): %s" % (archive, rcs, err))
        if p["expect_sha256"] and plain != p["expect_sha256"]:
            module.fail_json(msg="archive %s decrypted to sha256 %s, expected %s; nothing extracted"
                             % (archive, plain, p["expect_sha256"]))
        names = os.listdir(stage)
        if len(names) != 1:
            module.fail_json(msg="archive %s holds %d top-level entries, expected one backup directory" % (archive, len(names)))
        target = os.path.join(p["dest"], names[0])
        if os.path.exists(target):
            module.fail_json(msg="%s already exists; remove it or unpack elsewhere" % target)
        os.rename(os.path.join(stage, names[0]), target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    module.exit_json(changed=True, archive=archive, extracted=target, plain_sha256=plain,
                     archive_sha256=sha256_file(archive), size=os.path.getsize(archive),
                     msg="unpacked %s into %s" % (archive, target))


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass


if __name__ == "__main__":
    main()
