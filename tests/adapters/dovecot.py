"""A throwaway Dovecot IMAP server for the tests: its own config, mail and run directories and a
free port, passdb/userdb from a passwd-file; started with `dovecot -F -c`, stopped at the end.

Run as root (as in CI containers), Dovecot refuses to run its login and mail processes as root,
so they run as Debian's `dovenull` and `dovecot` users, and the directories live under a fresh
world-traversable temporary directory (pytest's tmp_path sits under a 0700 directory those users
cannot enter). Run as anyone else, every Dovecot process runs as that user under tmp_path.
Without Dovecot the tests skip, or fail under OMNIHUB_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.services import port_open, unavailable

from .email_support import free_port

DOVECOT = os.environ.get("OMNIHUB_TEST_DOVECOT", "/usr/sbin/dovecot")


@dataclass
class Dovecot:
    host: str
    port: int
    username: str
    password: str
    root: Path
    process: subprocess.Popen

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _users() -> tuple[str, str, int, int]:
    """(internal user, login user, mail uid, mail gid)."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        return me.pw_name, me.pw_name, me.pw_uid, me.pw_gid
    try:
        mail, login = pwd.getpwnam("dovecot"), pwd.getpwnam("dovenull")
    except KeyError:
        unavailable("running as root, Dovecot needs the system users dovecot and dovenull")
    return mail.pw_name, login.pw_name, mail.pw_uid, mail.pw_gid


def _config(root: Path, port: int, internal: str, login: str, uid: int, gid: int) -> str:
    return f"""
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {internal}
default_login_user = {login}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


def start_dovecot(tmp_path: Path) -> Dovecot:
    if not os.access(DOVECOT, os.X_OK):
        unavailable(f"Dovecot is not installed at {DOVECOT} (apt-get install dovecot-imapd)")
    internal, login, uid, gid = _users()
    if os.geteuid() == 0:
        root = Path(tempfile.mkdtemp(prefix="omnihub-dovecot-"))
        root.chmod(0o755)
    else:
        root = tmp_path / "dovecot"
        root.mkdir()
    for sub in ("run", "state", "mail"):
        (root / sub).mkdir()
    if os.geteuid() == 0:
        os.chown(root / "mail", uid, gid)
    port = free_port()
    username, password = "agent", "imap-secret"
    (root / "users").write_text(f"{username}:{{PLAIN}}{password}\n")
    (root / "dovecot.conf").write_text(_config(root, port, internal, login, uid, gid))
    process = subprocess.Popen([DOVECOT, "-F", "-c", str(root / "dovecot.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = Dovecot("127.0.0.1", port, username, password, root, process)
    deadline = time.monotonic() + 15
    while not port_open("127.0.0.1", port, timeout=0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            log = server.log()
            stop_dovecot(server)
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"dovecot did not start: {err}\n{log}")
        time.sleep(0.05)
    return server


def stop_dovecot(server: Dovecot) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(5)
    if server.process.stderr:
        server.process.stderr.close()
    if os.geteuid() == 0:
        shutil.rmtree(server.root, ignore_errors=True)
