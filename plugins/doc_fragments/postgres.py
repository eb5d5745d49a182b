# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options shared by every pgops.deploy module
    # (plugins/module_utils/pgops_postgres.py: postgres_common_argument_spec).
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host running the database. Empty means the local Unix socket.
    type: str
    default: ''
    aliases: [host]
  login_port:
    description: Database port.
    type: int
    default: 5432
    aliases: [port]
  login_user:
    description: Role to connect as.
    type: str
    default: postgres
    aliases: [user]
  login_password:
    description: Password of O(login_user). Never logged.
    type: str
    default: ''
    aliases: [password]
  login_db:
    description: Database to connect to.
    type: str
    default: postgres
    aliases: [db, database]
  login_unix_socket:
    description: Directory of the Unix socket; takes precedence over O(login_host).
    type: str
    default: ''
    aliases: [unix_socket]
  ssl_mode:
    description: libpq C(sslmode).
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description: CA certificate(s) used to verify the server (libpq C(sslrootcert)).
    type: path
    aliases: [ssl_rootcert]
  ssl_cert:
    description: Client certificate (libpq C(sslcert)).
    type: path
  ssl_key:
    description: Client private key (libpq C(sslkey)).
    type: path
  connect_timeout:
    description: Seconds to wait for the connection.
    type: int
    default: 10
  session_role:
    description: Role to C(SET ROLE) to right after connecting.
    type: str
  application_name:
    description: C(application_name) shown in C(pg_stat_activity).
    type: str
    default: pgops.deploy
requirements:
  - psycopg2 >= 2.8 or psycopg >= 3.1 on the host that runs the module
notes:
  - The module uses psycopg 3 when it imports, psycopg2 otherwise.
"""
