#!/usr/bin/env python3
"""Fresh-machine proof: the README's Quick start on a brand-new Debian 12, from a clone of HEAD.

`mise run -f test:fresh` (root; minutes; not part of `check`). Standard library only: it runs on
the host's python3 and needs nothing from `.venv`. Read top to bottom:

1. base: a minimal Debian 12 root file system, `debootstrap --variant=minbase bookworm` from the
   Debian mirror named in this machine's apt sources. The pristine result is cached as a tarball
   in `.data/fresh/cache/`, keyed by suite, mirror, architecture, variant and debootstrap version;
   every run unpacks a fresh copy into `.data/fresh/root` (left there afterwards for inspection,
   replaced by the next run). Downloaded .debs are kept in `.data/fresh/apt-archives` and bound
   into the machine's `/var/cache/apt/archives`: the only host cache the machine sees (no pip, uv
   or npm cache: those downloads are part of what this proves).
2. enter: `unshare` makes new mount, pid, network, uts and ipc namespaces. Its first process (this
   file with --ns-init, pid 1 inside) bind-mounts the rootfs onto itself, mounts proc, sysfs, a
   small /dev with its own devpts, tmpfs /tmp and /run, binds the host's cgroup tree (recursively)
   and resolv.conf, then `pivot_root`s into it and detaches the old root; after that it only
   reaps orphans. Unlike `chroot`, this lets the machine create user namespaces (bwrap, the
   sandbox). Network: `slirp4netns` (user-mode NAT) gives the new network namespace the host's
   route to the registries, while every port the machine binds is its own (the test suite binds
   fixed ports; no stack on the host can collide with it). Checks printed: user namespaces as
   root and as an unprivileged user with every namespace `bwrap --unshare-all` makes, cgroup v1
   memory/pids writable and joinable, the v2 `unified` tree with `cgroup.kill`.
   The machine's TLS trust is this host's: its site CA files (/usr/local/share/ca-certificates)
   and the variables pointing tools at the system bundle (here an egress proxy re-signs every
   registry's certificate; without them no HTTPS download works on this kind of machine).
3. prerequisites: `apt-get install --no-install-recommends python3 npm git ca-certificates`, then
   the README's own mise install line (`npm install -g @jdxcode/mise`).
4. bwrap check: `bwrap --unshare-all` (run from Debian's bubblewrap .deb unpacked in /tmp, not
   installed: installing it is setup's job) as root with --uid 65534 and as an unprivileged user.
5. clone: `git clone` (the machine's git) of a bare copy of HEAD: the committed tree only.
6. The Quick-start commands, read verbatim from the fenced bash block under `## Quick start` in
   README.md, run in the clone with PATH (+ npm's global bin), HOME=/root and PORT=3700 (env
   FRESH_PORT). The first must print a RunView with status `succeeded`, the second must exit 0
   with pytest's summary showing no failures.
Always, pass or fail: `mise run down` in the clone, SIGKILL the namespace's pid 1 (every process
in the pid namespace dies with it), stop slirp4netns by PID, and check that no process is left in
the machine's namespaces and no mount under the rootfs. Exit 1 naming the step that failed.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SUITE = "bookworm"
VARIANT = "minbase"  # required packages + apt: stricter than an installer's minimal system
PREREQUISITES = ["python3", "npm", "git", "ca-certificates"]  # the README's, and what a clone needs
PORT = os.environ.get("FRESH_PORT", "3700")
HOSTNAME = "fresh-debian12"
CLONE = "/root/intent-harness"
SBX_LOCK_DIR = "/run/intent-harness-sbx"  # the sandbox's uid leases: shared, see ns_init
TIMEOUTS = {"prerequisites: apt": 1200, "prerequisites: mise": 600, "command 1": 1800, "command 2": 3600}

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / ".data" / "fresh"
ROOT = DATA / "root"
CACHE = DATA / "cache"
APT_ARCHIVES = DATA / "apt-archives"
ORIGIN = DATA / "origin.git"
LOGS = DATA / "logs"

# This machine's TLS trust travels with it (here an egress proxy re-signs every registry's
# certificate): the variables that point tools at the system bundle (pip, uv and node do not use it
# by default), and the CA files themselves (fresh_copy). Nothing else from the host's environment.
TRUST_ENV = {k: v for k, v in sorted(os.environ.items()) if v.startswith("/etc/ssl/")}
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root", "USER": "root", "LOGNAME": "root", "SHELL": "/bin/bash", "LANG": "C.UTF-8",
    **TRUST_ENV,
}


class Failed(Exception):
    """A step failed; the message says what and where to look."""


# ---------------------------------------------------------------- reading the README and the host


def quick_start(readme: str) -> tuple[str, list[str]]:
    """The mise install line and the fenced bash commands under `## Quick start`, comments stripped."""
    section = re.search(r"^## Quick start\n(.*?)(?=^## )", readme, re.S | re.M)
    if not section:
        raise Failed("README.md has no '## Quick start' section")
    install = re.search(r"`(npm install -g [^`]+)`", section.group(1))
    block = re.search(r"^```bash\n(.*?)^```", section.group(1), re.S | re.M)
    if not install or not block:
        raise Failed("README.md's Quick start lacks the `npm install -g …` line or its ```bash block")
    commands = []
    for line in block.group(1).splitlines():
        command = re.sub(r"(^|\s+)#.*$", "", line).strip()
        if command:
            commands.append(command)
    if len(commands) != 2:
        raise Failed(f"README.md's Quick start has {len(commands)} commands {commands}; this proof checks two "
                     "(demo, then check): update scripts/fresh_machine.py with the README")
    return install.group(1), commands


def apt_sources(etc_apt: Path = Path("/etc/apt")) -> list[dict[str, list[str]]]:
    """This machine's enabled `deb` entries: one-line sources.list files and deb822 .sources files."""
    entries: list[dict[str, list[str]]] = []
    one_line = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()  # drop [options]
            if len(words) >= 3 and words[0] == "deb":
                entries.append({"uris": [words[1]], "suites": [words[2]], "components": words[3:]})
    for path in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        for paragraph in re.split(r"\n\s*\n", path.read_text()):
            fields: dict[str, str] = {}
            key = None
            for line in paragraph.splitlines():
                if line.startswith("#"):
                    continue
                if line[:1].isspace() and key:
                    fields[key] += " " + line.strip()
                elif ":" in line:
                    key, value = line.split(":", 1)
                    key = key.strip().lower()
                    fields[key] = value.strip()
            if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
                entries.append({k: fields.get(k, "").split() for k in ("uris", "suites", "components")})
    return entries


def debian_mirror(entries: list[dict[str, list[str]]]) -> tuple[str, list[dict[str, list[str]]]]:
    """The mirror serving SUITE itself, and every entry for SUITE or its -updates/-security suites."""
    ours = [e for e in entries if any(s == SUITE or s.startswith(SUITE + "-") for s in e["suites"])]
    mirrors = [u for e in ours if SUITE in e["suites"] for u in e["uris"]]
    if not mirrors:
        raise Failed(f"no apt source on this machine serves '{SUITE}' (looked in /etc/apt/sources.list"
                     " and /etc/apt/sources.list.d/*.list, *.sources)")
    return mirrors[0].rstrip("/"), ours


def host_tools() -> None:
    """debootstrap and slirp4netns from the host's apt (installed here if missing)."""
    missing = [pkg for tool, pkg in (("debootstrap", "debootstrap"), ("slirp4netns", "slirp4netns"))
               if not any(Path(d, tool).exists() for d in ("/usr/sbin", "/usr/bin"))]
    if not missing:
        return
    print(f"    installing on the host: {' '.join(missing)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, check=True)
        subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=True)


def output_of(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


# ---------------------------------------------------------------- the pristine base and a fresh copy


def mounts_under(path: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if target == str(path) or target.startswith(f"{path}/"):
            found.append(target)
    return found


def remove_tree(path: Path) -> None:
    """rm -rf, refusing while anything is mounted beneath (a bound host tree would be emptied)."""
    if mounts_under(path):
        raise Failed(f"refusing to remove {path}: still mounted there: {mounts_under(path)}")
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


def base_tarball(mirror: str) -> tuple[Path, bool]:
    """The cached pristine rootfs for (suite, mirror, arch, variant, debootstrap version); built if missing."""
    key = {"suite": SUITE, "mirror": mirror, "arch": output_of("dpkg", "--print-architecture"),
           "variant": VARIANT, "debootstrap": output_of("dpkg-query", "-W", "-f=${Version}", "debootstrap")}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    tarball = CACHE / f"base-{SUITE}-{key['arch']}-{VARIANT}-{digest}.tar"
    if tarball.exists():
        return tarball, True
    build = CACHE / f"build-{digest}"
    remove_tree(build)
    CACHE.mkdir(parents=True, exist_ok=True)
    APT_ARCHIVES.mkdir(parents=True, exist_ok=True)
    log = LOGS / "debootstrap.log"
    with log.open("w") as out:
        rc = subprocess.run(["debootstrap", f"--variant={VARIANT}", f"--cache-dir={APT_ARCHIVES}", SUITE,
                             str(build), mirror], stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise Failed(f"debootstrap exited {rc}; see {log}:\n{tail(log)}")
    subprocess.run(["tar", "-C", str(build), "--numeric-owner", "-cf", f"{tarball}.tmp", "."], check=True)
    os.rename(f"{tarball}.tmp", tarball)
    (CACHE / f"{tarball.name}.json").write_text(json.dumps(key, indent=2) + "\n")
    remove_tree(build)
    return tarball, False


def fresh_copy(tarball: Path, sources: list[dict[str, list[str]]]) -> None:
    """Unpack the pristine base into ROOT; give it the host's Debian sources, a hostname and hosts."""
    remove_tree(ROOT)
    ROOT.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(ROOT), "--numeric-owner", "-xpf", str(tarball)], check=True)
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    paragraphs = []
    for e in sources:
        lines = ["Types: deb", f"URIs: {' '.join(e['uris'])}", f"Suites: {' '.join(e['suites'])}",
                 f"Components: {' '.join(e['components'])}"]
        if Path(ROOT, keyring.lstrip("/")).exists():
            lines.append(f"Signed-By: {keyring}")
        paragraphs.append("\n".join(lines))
    Path(ROOT, "etc/apt/sources.list.d/debian.sources").write_text("\n\n".join(paragraphs) + "\n")
    Path(ROOT, "etc/apt/sources.list").unlink(missing_ok=True)
    Path(ROOT, "etc/hostname").write_text(HOSTNAME + "\n")
    Path(ROOT, "etc/hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{HOSTNAME}\n"
                                       "::1\tlocalhost ip6-localhost ip6-loopback\n")
    Path(ROOT, "etc/resolv.conf").touch()
    # This machine's own TLS trust (an egress proxy's CA here): the site CAs an admin adds under
    # /usr/local/share/ca-certificates; installing ca-certificates puts them in the system bundle.
    local_cas = Path(ROOT, "usr/local/share/ca-certificates")
    local_cas.mkdir(parents=True, exist_ok=True)
    for ca in sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt")):
        (local_cas / ca.name).write_bytes(ca.read_bytes())
    Path(ROOT, "mnt/origin.git").mkdir(parents=True, exist_ok=True)
    remove_tree(ORIGIN)
    ORIGIN.mkdir()


def bare_head() -> tuple[str, str]:
    """A bare repository holding HEAD (and its history) on one branch: what the machine clones.

    ORIGIN is the (empty) directory bound into the machine at /mnt/origin.git when it was entered.
    """
    sha = output_of("git", "-C", str(REPO), "rev-parse", "HEAD")
    branch = subprocess.run(["git", "-C", str(REPO), "symbolic-ref", "-q", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "fresh-proof"
    subprocess.run(["git", "init", "-q", "--bare", str(ORIGIN)], check=True)
    subprocess.run(["git", "-C", str(REPO), "push", "-q", str(ORIGIN), f"HEAD:refs/heads/{branch}"], check=True)
    subprocess.run(["git", "-C", str(ORIGIN), "symbolic-ref", "HEAD", f"refs/heads/{branch}"], check=True)
    return sha, branch


# ---------------------------------------------------------------- the namespace's pid 1


def ns_init(root: str, apt_archives: str, origin: str) -> None:
    """Pid 1 of the fresh machine: mount its file systems, pivot_root into it, then reap orphans.

    Runs in the private mount namespace unshare made (propagation private: nothing here is seen
    by the host). Everything it needs after pivot_root (ctypes, os) is loaded before it.
    """
    libc = ctypes.CDLL(None, use_errno=True)

    def mount(*args: str) -> None:
        subprocess.run(["mount", *args], check=True)

    try:
        mount("--bind", root, root)
        mount("-t", "proc", "-o", "nosuid,nodev,noexec", "proc", f"{root}/proc")
        mount("-t", "sysfs", "-o", "nosuid,nodev,noexec", "sysfs", f"{root}/sys")
        mount("--rbind", "/sys/fs/cgroup", f"{root}/sys/fs/cgroup")
        mount("-t", "tmpfs", "-o", "nosuid,mode=755,size=64k", "dev", f"{root}/dev")
        for node in ("null", "zero", "full", "random", "urandom", "tty"):
            Path(f"{root}/dev/{node}").touch()
            mount("--bind", f"/dev/{node}", f"{root}/dev/{node}")
        os.makedirs(f"{root}/dev/pts")
        mount("-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec", "devpts",
              f"{root}/dev/pts")
        os.symlink("pts/ptmx", f"{root}/dev/ptmx")
        os.makedirs(f"{root}/dev/shm")
        mount("-t", "tmpfs", "-o", "nosuid,nodev,mode=1777", "shm", f"{root}/dev/shm")
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
            os.symlink(target, f"{root}/dev/{name}")
        mount("-t", "tmpfs", "-o", "nosuid,nodev,mode=1777", "tmp", f"{root}/tmp")
        mount("-t", "tmpfs", "-o", "nosuid,nodev,mode=755", "run", f"{root}/run")
        os.makedirs(f"{root}/run/lock", mode=0o1777)
        # The sandbox leases per-run uids (200000+slot) by flock in this directory and names its
        # cgroups after them in the shared cgroup tree: sharing the host's directory keeps the
        # machine's runs from taking (and, as "stale", killing) a host stack's running sandbox.
        os.makedirs(SBX_LOCK_DIR, mode=0o700, exist_ok=True)
        os.makedirs(f"{root}{SBX_LOCK_DIR}", mode=0o700)
        mount("--bind", SBX_LOCK_DIR, f"{root}{SBX_LOCK_DIR}")
        mount("--bind", apt_archives, f"{root}/var/cache/apt/archives")
        mount("--bind", "-o", "ro", origin, f"{root}/mnt/origin.git")
        mount("--bind", "-o", "ro", os.path.realpath("/etc/resolv.conf"), f"{root}/etc/resolv.conf")
        socket.sethostname(HOSTNAME)
        os.chdir(root)
        os.makedirs(".oldroot", exist_ok=True)
        subprocess.run(["pivot_root", ".", ".oldroot"], check=True)  # moves our root and cwd too
        if libc.umount2(b"/.oldroot", 2) != 0:  # MNT_DETACH
            raise OSError(ctypes.get_errno(), "umount2 /.oldroot")
        os.rmdir("/.oldroot")
        os.chdir("/")
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the step
        print(f"error: {exc}", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    while True:  # pid 1: reap every orphan so `mise run down` sees its processes go
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(0.5)


# ---------------------------------------------------------------- the host side of the machine


def set_pdeathsig() -> None:
    """In the child before exec: die with the parent (this script), so nothing outlives a crash."""
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Machine:
    """The running namespaces: unshare (host side), its child (pid 1 inside), slirp4netns."""

    def __init__(self) -> None:
        self.unshare: subprocess.Popen[str] | None = None
        self.init_pid: int | None = None
        self.slirp: subprocess.Popen[bytes] | None = None
        self.slirp_exit_w: int | None = None
        self.ns: dict[str, str] = {}

    def enter(self) -> None:
        self.unshare = subprocess.Popen(
            ["unshare", "--mount", "--pid", "--net", "--uts", "--ipc", "--fork", "--kill-child",
             "--propagation", "private", sys.executable, "-I", __file__, "--ns-init",
             str(ROOT), str(APT_ARCHIVES), str(ORIGIN)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=(LOGS / "unshare.log").open("w"),
            text=True, preexec_fn=set_pdeathsig)
        assert self.unshare.stdout is not None
        first = self.unshare.stdout.readline().strip()
        if first != "ready":
            raise Failed(f"the namespace's init could not enter the rootfs: {first or 'no answer'}; "
                         f"see {LOGS / 'unshare.log'}")
        self.init_pid = next(int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                             and _ppid(p) == self.unshare.pid)
        self.ns = {n: os.readlink(f"/proc/{self.init_pid}/ns/{n}") for n in ("pid", "mnt", "net")}
        ready_r, ready_w = os.pipe()
        exit_r, self.slirp_exit_w = os.pipe()
        self.slirp = subprocess.Popen(
            ["slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback",
             f"--ready-fd={ready_w}", f"--exit-fd={exit_r}", str(self.init_pid), "tap0"],
            stdout=subprocess.DEVNULL, stderr=(LOGS / "slirp4netns.log").open("w"),
            pass_fds=(ready_w, exit_r), preexec_fn=set_pdeathsig)
        os.close(ready_w)
        os.close(exit_r)
        sel = selectors.DefaultSelector()
        sel.register(ready_r, selectors.EVENT_READ)
        ready = sel.select(timeout=20) and os.read(ready_r, 1) == b"1"
        os.close(ready_r)
        if not ready:
            raise Failed(f"slirp4netns did not configure the network; see {LOGS / 'slirp4netns.log'}")

    def run(self, name: str, script: str, *, env: dict[str, str] | None = None, timeout: float = 300,
            show: bool = False) -> tuple[int, str]:
        """Run a bash script inside the machine (all its namespaces, its root), log and maybe show it."""
        argv = ["nsenter", f"--target={self.init_pid}", "--mount", "--uts", "--ipc", "--net", "--pid",
                "--root", "--wd", "--", "/usr/bin/env", "-i",
                *(f"{k}={v}" for k, v in {**BASE_ENV, **(env or {})}.items()), "/bin/bash", "-c", script]
        log = LOGS / (re.sub(r"[^\w.-]+", "_", name) + ".log")
        lines: list[str] = []
        with log.open("w") as out, subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                    stderr=subprocess.STDOUT) as proc:
            assert proc.stdout is not None
            sel = selectors.DefaultSelector()
            sel.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout
            pending = b""
            quiet_since = None
            while True:
                if time.monotonic() > deadline:
                    proc.kill()  # nsenter only; what it started dies with the pid namespace at cleanup
                    raise Failed(f"{name}: no end after {timeout:.0f}s; see {log}")
                if not sel.select(timeout=1):
                    # The command is done but something it started in the background still holds
                    # the output pipe: stop reading after a short grace (its output is lost).
                    if proc.poll() is not None:
                        quiet_since = quiet_since or time.monotonic()
                        if time.monotonic() - quiet_since > 3:
                            break
                    continue
                quiet_since = None
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    line = raw.decode(errors="replace")
                    lines.append(line)
                    out.write(line + "\n")
                    if show:
                        print(f"    | {line}", flush=True)
            if pending:
                lines.append(pending.decode(errors="replace"))
                out.write(lines[-1] + "\n")
                if show:
                    print(f"    | {lines[-1]}", flush=True)
            rc = proc.wait()
        return rc, "\n".join(lines)

    def stop(self, clone_ready: bool) -> list[str]:
        """Stop the stack, then everything: pid 1 by SIGKILL ends the pid namespace. Returns a report."""
        report = []
        if self.init_pid and clone_ready and _alive(self.init_pid):
            try:
                rc, out = self.run("cleanup mise run down", f"cd {CLONE} && mise run down", timeout=180,
                                   env={"PORT": PORT})
                report.append(f"`mise run down` in the clone exited {rc}"
                              + ("" if rc == 0 else f" (see {LOGS / 'cleanup_mise_run_down.log'})"))
            except Failed as exc:
                report.append(str(exc))
        if self.init_pid and _alive(self.init_pid):
            os.kill(self.init_pid, signal.SIGKILL)
        if self.unshare:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.unshare.wait(timeout=30)
            if self.unshare.poll() is None:
                self.unshare.kill()
                self.unshare.wait()
        if self.slirp_exit_w is not None:
            os.close(self.slirp_exit_w)  # slirp4netns exits when this closes
        if self.slirp:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.slirp.wait(timeout=10)
            if self.slirp.poll() is None:
                self.slirp.kill()
                self.slirp.wait()
        deadline = time.monotonic() + 30
        while (left := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.2)
        mounts = mounts_under(ROOT)
        report.append(f"processes left in the machine's namespaces ({', '.join(self.ns.values())}): "
                      f"{len(left)}{' ' + str(left) if left else ''}")
        report.append(f"mounts left under {ROOT}: {len(mounts)}{' ' + str(mounts) if mounts else ''}")
        if left or mounts:
            raise Failed("cleanup left something behind: " + "; ".join(report[-2:]))
        return report

    def leftovers(self) -> list[int]:
        found = []
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                with contextlib.suppress(OSError):
                    if any(os.readlink(p / "ns" / n) == v for n, v in self.ns.items()):
                        found.append(int(p.name))
        return found


def _ppid(proc: Path) -> int:
    with contextlib.suppress(OSError):
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    return -1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def tail(log: Path, n: int = 30) -> str:
    return "\n".join("    | " + line for line in log.read_text(errors="replace").splitlines()[-n:])


# ---------------------------------------------------------------- what the Quick start must print


def run_views(output: str) -> list[dict]:
    """Every RunView printed as an indented JSON object (mise's `[task] ` prefixes removed)."""
    lines = [re.sub(r"^\[[^\]\s]+\] ", "", line) for line in output.splitlines()]
    views = []
    for i, line in enumerate(lines):
        if line != "{":
            continue
        for j in range(i + 1, len(lines)):
            if lines[j] == "}":
                with contextlib.suppress(ValueError):
                    obj = json.loads("\n".join(lines[i:j + 1]))
                    if isinstance(obj, dict) and {"runId", "status"} <= obj.keys():
                        views.append(obj)
                break
    return views


def pytest_summary(output: str) -> tuple[str, dict[str, int]] | None:
    """pytest's last summary line ("455 passed, 2 warnings in 301.2s") and its counts."""
    word = r"(passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?|rerun)"
    found = None
    for line in output.splitlines():
        if re.search(rf"\d+ {word}\b.* in \d+(\.\d+)?s", line):
            counts = {w.rstrip("s") if w.startswith(("error", "warning")) else w: int(n)
                      for n, w in re.findall(rf"(\d+) {word}\b", line)}
            found = (re.sub(r"^\[[^\]\s]+\] ", "", line).strip(" ="), counts)
    return found


# ---------------------------------------------------------------- the proof, top to bottom


def main() -> int:
    if os.geteuid() != 0:
        print("test:fresh: needs root (debootstrap, namespaces, mounts)", file=sys.stderr)
        return 1
    for d in (CACHE, APT_ARCHIVES, LOGS):
        d.mkdir(parents=True, exist_ok=True)
    lock = (DATA / "lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("test:fresh: another run holds .data/fresh/lock", file=sys.stderr)
        return 1

    times: list[tuple[str, float, str]] = []
    machine = Machine()
    clone_ready = False
    failure: str | None = None
    current = "read README"
    started = time.monotonic()

    def step(name: str) -> float:
        nonlocal current
        current = name
        print(f"==> {name}", flush=True)
        return time.monotonic()

    def done(name: str, t0: float, note: str) -> None:
        dt = time.monotonic() - t0
        times.append((name, dt, note))
        print(f"    {name}: {note} ({dt:.1f}s)", flush=True)

    try:
        install_line, commands = quick_start((REPO / "README.md").read_text())
        mirror, sources = debian_mirror(apt_sources())
        dirty = output_of("git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no")
        print(f"test:fresh: Debian 12 ({SUITE}, debootstrap --variant={VARIANT}) from {mirror}; "
              f"prerequisites {' '.join(PREREQUISITES)}; then `{install_line}`")
        print("test:fresh: README Quick start: " + "; ".join(f"({i}) `{c}`" for i, c in enumerate(commands, 1)))
        cas = sorted(p.name for p in Path("/usr/local/share/ca-certificates").glob("**/*.crt"))
        print(f"test:fresh: this machine's TLS trust goes along: CA files {', '.join(cas) or '(none)'}; "
              f"env {', '.join(TRUST_ENV) or '(none)'}")
        if dirty:
            print("test:fresh: note: the working tree has uncommitted changes; the machine gets HEAD only")

        t0 = step("base: debootstrap or cache")
        host_tools()
        tarball, cached = base_tarball(mirror)
        fresh_copy(tarball, sources)
        size = tarball.stat().st_size / 2**20
        done("base", t0, f"{'cached' if cached else 'built'} {tarball.relative_to(REPO)} ({size:.0f} MiB), "
                         f"fresh copy in {ROOT.relative_to(REPO)}")

        t0 = step("enter: namespaces, pivot_root, checks")
        machine.enter()
        checks = r"""
            set -u
            ok() { echo "ok   $*"; }; bad() { echo "FAIL $*"; fails=$((fails+1)); }; fails=0
            echo "     hostname $(cat /proc/sys/kernel/hostname); pid 1: $(cat /proc/1/comm) (fresh_machine.py --ns-init)"
            echo "     interfaces: $(awk -F: 'NR>2 {gsub(/ /,"",$1); printf "%s ", $1}' /proc/net/dev)"
            unshare -U true && ok "unshare -U true (root)" || bad "unshare -U true (root)"
            setpriv --reuid=65534 --regid=65534 --clear-groups \
              unshare --user --map-root-user --ipc --pid --net --uts --cgroup --mount --fork --mount-proc true \
              && ok "as uid 65534: user+ipc+pid+net+uts+cgroup+mount namespaces and a new /proc (bwrap --unshare-all's)" \
              || bad "as uid 65534: unshare of bwrap --unshare-all's namespaces"
            for c in memory pids; do
              d=/sys/fs/cgroup/$c/intent-harness-fresh-check-$$
              if mkdir "$d" 2>/dev/null; then
                if [ $c = memory ]; then f=memory.limit_in_bytes; v=67108864; else f=pids.max; v=16; fi
                if echo $v >"$d/$f" && sh -c "echo \$\$ >'$d/cgroup.procs' && grep -q ':$c:/intent-harness-fresh-check-$$' /proc/self/cgroup"; then
                  ok "cgroup v1 $c: mkdir, $f=$(cat "$d/$f"), join"
                else bad "cgroup v1 $c: write $f or join"; fi
                rmdir "$d"
              else bad "cgroup v1 $c: mkdir $d"; fi
            done
            d=/sys/fs/cgroup/unified/intent-harness-fresh-check-$$
            if mkdir "$d" 2>/dev/null && [ -e "$d/cgroup.kill" ]; then ok "cgroup v2 unified: mkdir, cgroup.kill present"
            else bad "cgroup v2 unified: mkdir or cgroup.kill"; fi
            rmdir "$d" 2>/dev/null
            exit $fails
        """
        rc, out = machine.run("enter checks", checks)
        print("\n".join(f"    {line}" for line in out.splitlines()), flush=True)
        if rc != 0:
            raise Failed(f"{rc} namespace/cgroup check(s) failed inside the machine (above)")
        done("enter", t0, f"ok (pid 1 is host pid {machine.init_pid}; network via slirp4netns)")

        t0 = step(f"prerequisites: apt-get install {' '.join(PREREQUISITES)}")
        rc, _ = machine.run("prerequisites: apt", "set -e; apt-get update -q; apt-get install -y -q "
                            f"--no-install-recommends {' '.join(PREREQUISITES)}",
                            env={"DEBIAN_FRONTEND": "noninteractive"}, timeout=TIMEOUTS["prerequisites: apt"])
        if rc != 0:
            raise Failed(f"apt-get exited {rc}; see {LOGS / 'prerequisites_apt.log'}:\n"
                         f"{tail(LOGS / 'prerequisites_apt.log')}")
        _, versions = machine.run("versions", "echo $(dpkg-query -W -f='.\\n' | wc -l) packages in all: "
                                  f"$(dpkg-query -W -f='${{Package}} ${{Version}}, ' {' '.join(PREREQUISITES)} nodejs)")
        done("prerequisites: apt", t0, f"ok, {versions.strip().rstrip(',')}")

        t0 = step(f"prerequisites: `{install_line}` (the README's line)")
        rc, out = machine.run("prerequisites: mise", f"set -e; {install_line}; echo \"npm global bin: "
                              "$(npm prefix -g)/bin\"; mise --version", timeout=TIMEOUTS["prerequisites: mise"])
        if rc != 0:
            raise Failed(f"`{install_line}` exited {rc}; see {LOGS / 'prerequisites_mise.log'}:\n"
                         f"{tail(LOGS / 'prerequisites_mise.log')}")
        npm_bin = re.findall(r"npm global bin: (\S+)", out)[-1]
        done("prerequisites: mise", t0, f"ok, mise {out.strip().splitlines()[-1]} in {npm_bin}")

        t0 = step("bwrap check (Debian's bubblewrap unpacked in /tmp, not installed)")
        rc, out = machine.run("bwrap check", r"""
            set -u; fails=0; cd /tmp
            apt-get download -q bubblewrap >/dev/null 2>&1 && dpkg-deb -x bubblewrap_*.deb /tmp/bwrap-check || exit 9
            B=/tmp/bwrap-check/usr/bin/bwrap
            fs="--ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --proc /proc --dev /dev"
            if $B --unshare-all --uid 65534 $fs sh -c 'test "$(id -u)" = 65534'; then
              echo "ok   bwrap --unshare-all --uid 65534 (started as root)"; else echo "FAIL bwrap as root"; fails=1; fi
            if setpriv --reuid=65534 --regid=65534 --clear-groups $B --unshare-all --die-with-parent $fs true; then
              echo "ok   bwrap --unshare-all started as uid 65534 (how the sandbox starts it)"; else echo "FAIL bwrap as uid 65534"; fails=1; fi
            rm -rf /tmp/bwrap-check /tmp/bubblewrap_*.deb
            exit $fails
        """, timeout=120)
        print("\n".join(f"    {line}" for line in out.splitlines()), flush=True)
        if rc != 0:
            raise Failed(f"bwrap cannot make its namespaces inside the machine (exit {rc}, above)")
        done("bwrap check", t0, "ok")

        t0 = step("clone: git clone of HEAD")
        sha, branch = bare_head()
        # The README's one-time `mise trust` in the clone (mise runs no task from an untrusted config).
        rc, out = machine.run("clone", f"set -e; git clone -q file:///mnt/origin.git {CLONE}; "
                              f"cd {CLONE} && mise trust -q; "
                              f"git -C {CLONE} log -1 --format='%h %s' | cut -c1-80",
                              env={"PATH": f"{BASE_ENV['PATH']}:{npm_bin}"})
        if rc != 0:
            raise Failed(f"git clone exited {rc}: {out.strip()}")
        clone_ready = True
        done("clone", t0, f"{CLONE}: {branch} @ {out.strip()}")

        env = {"PORT": PORT, "PATH": f"{BASE_ENV['PATH']}:{npm_bin}"}
        for i, command in enumerate(commands, 1):
            name = f"command {i}"
            t0 = step(f"{name}: `{command}` in {CLONE} (PORT={PORT})")
            rc, out = machine.run(name, f"cd {CLONE} && {command}", env=env, timeout=TIMEOUTS[name], show=True)
            if i == 1:
                views = run_views(out)
                status = views[-1]["status"] if views else None
                if rc != 0 or status != "succeeded":
                    raise Failed(f"`{command}` exited {rc}; RunView status: {status or 'no RunView printed'}; "
                                 f"see {LOGS / 'command_1.log'}")
                done(name, t0, f"ok: RunView {views[-1]['runId']} status succeeded")
            else:
                summary = pytest_summary(out)
                counts = summary[1] if summary else {}
                if rc != 0 or not summary or counts.get("failed") or counts.get("error") or not counts.get("passed"):
                    raise Failed(f"`{command}` exited {rc}; pytest: {summary[0] if summary else 'no summary line'}; "
                                 f"see {LOGS / 'command_2.log'}")
                done(name, t0, f"ok: {summary[0]}")
    except Failed as exc:
        failure = f"step '{current}': {exc}"
    except KeyboardInterrupt:
        failure = f"step '{current}': interrupted"
    except Exception as exc:  # noqa: BLE001 - an unexpected error still gets the cleanup and a clear report
        failure = f"step '{current}': {type(exc).__name__}: {exc}"
    finally:
        print("==> cleanup", flush=True)
        try:
            for line in machine.stop(clone_ready):
                print(f"    {line}", flush=True)
        except Failed as exc:
            print(f"    {exc}", flush=True)
            failure = failure or f"cleanup: {exc}"

    print("\ntest:fresh: step times")
    for name, dt, _ in times:
        print(f"    {name:<22} {dt:8.1f}s")
    print(f"    {'total':<22} {time.monotonic() - started:8.1f}s")
    if failure:
        print(f"\ntest:fresh: FAILED at {failure}", file=sys.stderr)
        print(f"test:fresh: logs in {LOGS.relative_to(REPO)}/, the machine's files in {ROOT.relative_to(REPO)}/",
              file=sys.stderr)
        return 1
    print(f"\ntest:fresh: PASSED: the README's Quick start works on a fresh Debian 12 from HEAD {sha[:12]}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--ns-init":
        ns_init(*sys.argv[2:5])
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM: clean up like Ctrl-C
    sys.exit(main())
