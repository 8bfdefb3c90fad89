"""`python -m appgw ARGS` for tests, without the CLI's ~0.4 s of imports on every call.

A helper process per test process imports the CLI once; each command is a fork of it that runs
`appgw`'s `__main__` as `python -m appgw` would (runpy, so program name, argv and exit code are
the same), with the command's own environment, stdin, and stdout/stderr captured to files. The
command still runs in a process of its own against the real server; only the imports are
shared. A call made while another is running (a test's second thread) runs as a plain
subprocess instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

# Each command is killed after this, as `subprocess.run(timeout=60)` did.
COMMAND_TIMEOUT = 60

_SERVER = r"""
import json, os, runpy, signal, sys
import appgw.cli.main  # the imports every command shares

channel_in, channel_out = os.fdopen(int(sys.argv[1]), "r"), os.fdopen(int(sys.argv[2]), "w")
for line in channel_in:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        signal.alarm(request["timeout"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        for fd, path, mode in ((0, request["stdin"], os.O_RDONLY), (1, request["stdout"],
                os.O_WRONLY), (2, request["stderr"], os.O_WRONLY)):
            os.dup2(os.open(path, mode), fd)
        sys.stdin = open(0, encoding="utf-8", closefd=False)
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)
        sys.argv = ["appgw", *request["args"]]
        code = 0
        try:
            runpy.run_module("appgw", run_name="__main__", alter_sys=True)
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
            if not isinstance(done.code, (int, type(None))):
                print(done.code, file=sys.stderr)
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    channel_out.write(json.dumps({"returncode": code}) + "\n")
    channel_out.flush()
"""


class _Server:
    def __init__(self) -> None:
        to_server, self._requests = os.pipe()
        self._replies, from_server = os.pipe()
        environment = {k: v for k, v in os.environ.items() if not k.startswith("APPGW_")}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(to_server), str(from_server)],
            pass_fds=(to_server, from_server),
            env=environment,
            stdin=subprocess.DEVNULL,
        )
        os.close(to_server)
        os.close(from_server)
        self.requests = os.fdopen(self._requests, "w")
        self.replies = os.fdopen(self._replies, "r")
        self.lock = threading.Lock()

    def run(
        self, args: list[str], env: dict[str, str], stdin: str
    ) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory(prefix="appgw-cli-") as scratch:
            files = {name: Path(scratch) / name for name in ("stdin", "stdout", "stderr")}
            files["stdin"].write_text(stdin, encoding="utf-8")
            files["stdout"].touch()
            files["stderr"].touch()
            request = {
                "args": args,
                "env": env,
                "cwd": os.getcwd(),
                "timeout": COMMAND_TIMEOUT,
                **{name: str(path) for name, path in files.items()},
            }
            self.requests.write(json.dumps(request) + "\n")
            self.requests.flush()
            reply = self.replies.readline()
            if not reply:
                raise RuntimeError("the CLI fork server ended")
            return subprocess.CompletedProcess(
                ["appgw", *args],
                json.loads(reply)["returncode"],
                files["stdout"].read_text(encoding="utf-8"),
                files["stderr"].read_text(encoding="utf-8"),
            )


_server: _Server | None = None
_server_lock = threading.Lock()


def run_appgw(
    args: list[str], env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """`python -m appgw *args` with exactly `env` as its environment."""
    global _server
    with _server_lock:
        if _server is None or _server.process.poll() is not None:
            _server = _Server()
        server = _server
    if server.lock.acquire(blocking=False):
        try:
            return server.run(args, env, stdin)
        finally:
            server.lock.release()
    return subprocess.run(
        [sys.executable, "-m", "appgw", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
