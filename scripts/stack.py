"""The whole stack in the background: embedded Postgres (unless DATABASE_URL), Dagster code
server, daemon and webserver, and the API. PID files and logs live under the data dir.

    python -m scripts.stack up|down|env
    python -m scripts.stack status [--check]
    python -m scripts.stack kill <component>... [--signal KILL]   (durability proofs)

``up`` is idempotent and returns once every part answers; before it starts anything it refuses
(exit 1, nothing started) when a port it needs is taken or a PID file names a stranger. ``down``
stops each part by PID, then whatever a killed test session left under ``.data/test*``.
``status`` exits 0 whenever it could report; with ``--check``, 3 unless every part is running
(LSB's "program is not running").
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psycopg
import yaml

from pipelines.launcher.protocol import ping
from pipelines.orchestration.dagster_client import grpc_serving
from pipelines.settings import REPO_ROOT, Settings, load
from pipelines.store import db, localdb, migrate
from scripts import broker, model, pidfiles, ports, suite

BIN = Path(sys.executable).parent
STOCK_COORDINATOR = {
    "module": "dagster._core.run_coordinator",
    "class": "QueuedRunCoordinator",
    "config": {"max_concurrent_runs": 8, "dequeue_interval_seconds": 1, "dequeue_use_threads": True,
               "dequeue_num_workers": 4},
}


CELERY_START_TIMEOUT_S = 180


@dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]
    env: tuple[tuple[str, str], ...] = ()  # on top of the stack's environment


def celery_dagster_config(settings: Settings) -> dict:
    """dagster.yaml for HARNESS_RUN_LAUNCHER=celery: dagster-celery's CeleryRunLauncher (with the
    harness's health check and cancel, pipelines/launcher/celery_launcher.py) onto the broker,
    launching at once (the broker is the queue; workers cap concurrency)."""
    from pipelines.launcher.celery_app import celery_config

    config = yaml.safe_load((settings.dagster_home / "dagster.yaml").read_text())
    config["run_launcher"] = {
        "module": "pipelines.launcher.celery_launcher", "class": "HarnessCeleryRunLauncher",
        "config": {"broker": settings.broker_url, "backend": settings.result_backend_url,
                   "default_queue": "dagster", "config_source": celery_config(settings)},
    }
    # A run waiting in the broker behind a backlog is STARTING; with the default 30 s, a burst on
    # one worker had its tail failed (then retried) while merely queued. A run lost with a
    # restarted broker is failed (and retried) after this long instead.
    config["run_monitoring"]["start_timeout_seconds"] = CELERY_START_TIMEOUT_S
    return config


def dagster_home(settings: Settings) -> Path:
    """``dagster_home/`` as committed (warm launcher), or for HARNESS_RUN_LAUNCHER=stock a generated
    copy of its dagster.yaml with Dagster's stock QueuedRunCoordinator + DefaultRunLauncher."""
    if settings.run_launcher == "warm":
        return settings.dagster_home
    if settings.run_launcher == "celery":
        config = celery_dagster_config(settings)
    else:
        config = yaml.safe_load((settings.dagster_home / "dagster.yaml").read_text())
        config["run_coordinator"] = STOCK_COORDINATOR
        config["run_launcher"] = {"module": "dagster", "class": "DefaultRunLauncher"}
    home = settings.run_dir / f"dagster_home_{settings.run_launcher}"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return home


def stack_env(settings: Settings) -> dict[str, str]:
    """The environment every harness process gets (the database URLs resolved once here)."""
    env = dict(os.environ)
    env.update(
        DAGSTER_HOME=str(dagster_home(settings)),
        HARNESS_POOL_SOCKET=str(settings.pool_socket),
        DAGSTER_PG_URL=db.dagster_storage_url(settings),
        APP_DATABASE_URL=db.app_url(settings),
        DAGSTER_DATABASE_URL=db.dagster_url(settings),
        HARNESS_DATA_DIR=str(settings.data_dir),
        PORT=str(settings.api_port),
        DAGSTER_PORT=str(settings.dagster_ui_port),
        DAGSTER_GRPC_PORT=str(settings.dagster_grpc_port),
        PYTHONUNBUFFERED="1",
    )
    return env


def grpc_workspace(settings: Settings) -> Path:
    path = settings.run_dir / "workspace_grpc.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "load_from:\n"
        "  - grpc_server:\n"
        "      host: 127.0.0.1\n"
        f"      port: {settings.dagster_grpc_port}\n"
        "      location_name: harness\n"
    )
    return path


def worker_data_dir(settings: Settings, name: str) -> Path:
    return settings.data_dir / "workers" / name


def _worker_ready_file(settings: Settings, name: str) -> Path:
    """Written by the worker's Celery parent once it consumes (pipelines/launcher/celery_app.py)."""
    return worker_data_dir(settings, name) / "run" / "celery.ready"


def worker_names(settings: Settings) -> list[str]:
    return [f"worker-{i}" for i in range(1, settings.workers + 1)] if settings.run_launcher == "celery" else []


def worker(settings: Settings, name: str, queues: tuple[str, ...] = (), env: tuple[tuple[str, str], ...] = ()) -> Component:
    """A worker host beside the stack (its name starts with ``worker-``), with a data dir of its
    own; ``queues`` and ``env`` (e.g. other database URLs) replace the settings' for it alone."""
    argv = [sys.executable, "-m", "scripts.worker", "--name", name, *(["--queues", ",".join(queues)] if queues else [])]
    return Component(name, argv, (("HARNESS_DATA_DIR", str(worker_data_dir(settings, name))), *env))


def components(settings: Settings) -> list[Component]:
    workspace = str(grpc_workspace(settings))
    # The pool first: it imports the most, and launches wait for it.
    pool = [Component("pool", [sys.executable, "-m", "scripts.pool"])] if settings.run_launcher == "warm" else []
    if settings.run_launcher == "celery" and settings.embedded_broker:
        pool = [Component("broker", broker.argv(settings))]
    # WORKERS=N: worker hosts for a single-machine trial, each with a data dir of its own.
    workers = [worker(settings, name) for name in worker_names(settings)]
    return pool + [
        Component(
            "codeserver",
            [str(BIN / "dagster"), "code-server", "start", "-m", "pipelines.definitions", "-a", "defs",
             "-h", "127.0.0.1", "-p", str(settings.dagster_grpc_port), "--location-name", "harness"],
        ),
        Component("daemon", [sys.executable, "-m", "scripts.daemon", "-w", workspace]),
        Component(
            "webserver",
            [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(settings.dagster_ui_port)],
        ),
        Component(
            "api",
            [str(BIN / "uvicorn"), "--factory", "api.main:create_app", "--host", "127.0.0.1", "--port", str(settings.api_port),
             "--no-access-log"],
        ),
    ] + workers


def component_ports(settings: Settings) -> dict[str, int]:
    ports_ = {"api": settings.api_port, "webserver": settings.dagster_ui_port, "codeserver": settings.dagster_grpc_port}
    if settings.run_launcher == "celery" and settings.embedded_broker:
        ports_["broker"] = settings.broker_port
    return ports_


def _pidfile(settings: Settings, name: str) -> Path:
    return settings.run_dir / f"{name}.pid"


def read_pid(settings: Settings, name: str) -> int | None:
    """The component's pid when that very process (pid + start ticks) is alive."""
    return pidfiles.live_pid(_pidfile(settings, name))


def component_env(env: dict[str, str], name: str) -> dict[str, str]:
    """``env`` plus the Postgres application name (libpq's ``PGAPPNAME``) that tells this
    component's sessions apart in ``pg_stat_activity`` and the server log."""
    return {**env, "PGAPPNAME": f"harness-{name}"}


def start(settings: Settings, comp: Component, env: dict[str, str]) -> int:
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    if comp.name.startswith("worker-"):  # a ready file left by an earlier run is not this one's
        _worker_ready_file(settings, comp.name).unlink(missing_ok=True)
    log = open(settings.log_dir / f"{comp.name}.log", "ab")
    # Own session per component: stopping or killing it takes its children (run workers) too.
    proc = subprocess.Popen(
        comp.argv, cwd=REPO_ROOT, env={**component_env(env, comp.name), **dict(comp.env)}, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    pidfiles.write(_pidfile(settings, comp.name), proc)
    return proc.pid


def _http_ok(url: str, body: bytes | None = None) -> bytes | None:
    req = urllib.request.Request(url, data=body, headers={"content-type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return resp.read() if resp.status == 200 else None
    except (urllib.error.URLError, OSError):
        return None


_DAEMONS_QUERY = json.dumps(
    {"query": "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } "
              "workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
              "locationOrLoadError { __typename } } } } }"}
).encode()


def reap_abandoned(settings: Settings) -> list[str]:
    """Start-up reaper: fail runs whose worker died while the stack was down, and relaunch retries
    Dagster could not launch meanwhile, at once rather than on the reaper sensor's first tick."""
    from dagster import DagsterInstance

    from pipelines.orchestration.dagster_client import DagsterClient
    from pipelines.orchestration.reaper import reap, relaunch_abandoned_retries

    os.environ.update(stack_env(settings))
    with DagsterInstance.get() as instance, psycopg.connect(db.app_url(settings), autocommit=True) as app, \
            psycopg.connect(db.dagster_url(settings), autocommit=True) as runs:
        return reap(runs, app, lambda: instance) + \
            relaunch_abandoned_retries(runs, lambda: instance, DagsterClient(settings.dagster_ui_url))


def _port_frees(port: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while ports.in_use(port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _ports_file(settings: Settings) -> Path:
    return settings.run_dir / "ports.json"


def preflight(settings: Settings, comps: list[Component]) -> list[str]:
    """Why ``up`` must not start anything; empty when it may. A port is fine while the part of this
    stack that owns it runs (``up`` is idempotent). Readiness is checked over the ports, so a
    stranger answering on one would pass for our part; and a PID file naming a live process that
    is not the one it recorded (pid reused after a crash or reboot) is for a person to clear."""
    problems = []
    running = [c.name for c in comps if read_pid(settings, c.name) is not None]
    recorded = json.loads(_ports_file(settings).read_text()) if _ports_file(settings).exists() else None
    if running and recorded not in (None, component_ports(settings)):
        # Its parts would pass for "already running" while readiness is probed on the new ports.
        problems.append(f"the stack in {settings.data_dir} already runs ({', '.join(running)}) on ports {recorded}, "
                        f"not {component_ports(settings)}: stop it first (`down` with its PORT), or give this one "
                        f"its own HARNESS_DATA_DIR")
    if settings.embedded and (pid := localdb.stale_lock_holder(settings)) is not None:
        problems.append(f"{settings.pgdata / 'postmaster.pid'} names pid {pid} ({ports.command_line(pid)}), which is "
                        f"not this data dir's PostgreSQL: remove that file")
    for comp in comps:
        pidfile = _pidfile(settings, comp.name)
        if (pid := pidfiles.stranger(pidfile)) is not None:
            problems.append(f"{pidfile} names pid {pid} ({ports.command_line(pid)}), which is not the {comp.name} "
                            f"this stack started: remove that file")
        port = component_ports(settings).get(comp.name)
        if port is None or read_pid(settings, comp.name) is not None:
            continue
        # A part just killed (its PID file still there) may leave children holding the port a moment.
        if not _port_frees(port, 15.0 if pidfile.exists() else 0.0):
            problems.append(f"port {port} ({comp.name}) is in use by {ports.holder(port) or 'a process not visible here'}")
    return problems


def ready(settings: Settings, name: str) -> bool:
    if name == "pool":
        return ping(str(settings.pool_socket))
    if name == "broker":
        return broker.ping(settings.broker_url)
    if name.startswith("worker-"):
        return _worker_ready_file(settings, name).exists()
    if name == "api":
        return _http_ok(f"http://127.0.0.1:{settings.api_port}/healthz") is not None
    if name == "codeserver":
        return grpc_serving(settings.dagster_grpc_port)
    raw = _http_ok(f"{settings.dagster_ui_url}/graphql", _DAEMONS_QUERY)
    if raw is None:
        return False
    data = json.loads(raw).get("data") or {}
    if name == "webserver":
        entries = (data.get("workspaceOrError") or {}).get("locationEntries") or []
        return any(e["loadStatus"] == "LOADED" and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
                   for e in entries)
    statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
    return all(s["healthy"] for s in statuses if s["required"])


def up(settings: Settings, timeout_s: float = 120.0) -> None:
    t0 = time.monotonic()
    comps = components(settings)
    problems = preflight(settings, comps)
    if problems:
        raise SystemExit("up: nothing started:\n  " + "\n  ".join(problems) + "\n(another stack? "
                         "`mise run status` with its PORT and HARNESS_DATA_DIR shows it; or run this one on other "
                         "ports: PORT=<port> mise run up, which moves the Dagster ports to PORT+1000 and PORT+2000)")
    _ports_file(settings).write_text(json.dumps(component_ports(settings)))
    if settings.embedded:
        pid, _ = localdb.up(settings)
        print(f"postgres    pid {pid} (embedded, {settings.pgdata})")
    for url in (db.app_url(settings), db.dagster_url(settings)):
        db.ensure_database(url)
    applied = migrate.migrate(db.app_url(settings))
    if applied:
        print(f"migrations  applied {', '.join(applied)}")
    if wants_model(settings):
        pid, started = model.up(settings)
        print(f"model       {'started' if started else 'already running'} pid {pid} ({settings.oc_model_url})")
    env = stack_env(settings)
    for comp in comps:
        running = read_pid(settings, comp.name)
        if running is None:
            print(f"{comp.name:<11} started pid {start(settings, comp, env)}")
        else:
            print(f"{comp.name:<11} already running pid {running}")
    wait_ready(settings, [c.name for c in comps], timeout_s)
    reaped = reap_abandoned(settings)
    if reaped:
        print(f"reaper      recovered {len(reaped)} abandoned run(s): {', '.join(reaped)}")
    print(f"stack up in {time.monotonic() - t0:.1f}s: API http://127.0.0.1:{settings.api_port}  "
          f"Dagster UI {settings.dagster_ui_url}")


def wait_ready(settings: Settings, names: list[str], timeout_s: float) -> None:
    """Return once every named part answers; SystemExit when one exits or the time is up."""
    deadline = time.monotonic() + timeout_s
    pending = list(names)
    while pending:
        for name in list(pending):
            if read_pid(settings, name) is None:
                raise SystemExit(f"{name} exited during start-up; see {settings.log_dir / (name + '.log')}")
            if ready(settings, name):
                pending.remove(name)
        if pending and time.monotonic() > deadline:
            raise SystemExit(f"not ready after {timeout_s:.0f}s: {', '.join(pending)} (logs in {settings.log_dir})")
        time.sleep(0.2)


def wants_model(settings: Settings) -> bool:
    """The embedded model server is part of the stack when a run may call a provider (live or record
    allowed by HARNESS_OC_MODES) and no other provider is configured (OC_BASE_URL wins)."""
    return settings.oc_embedded_model and bool({"live", "record"} & set(settings.oc_modes))


def stop(settings: Settings, name: str, timeout_s: float = 20.0) -> int | None:
    return pidfiles.stop(_pidfile(settings, name), timeout_s)


def down(settings: Settings, keep_db: bool = False) -> None:
    for comp in reversed(components(settings)):
        pid = stop(settings, comp.name)
        print(f"{comp.name:<11} {'stopped pid ' + str(pid) if pid else 'not running'}")
    if (pid := model.down(settings)) is not None or wants_model(settings):
        print(f"model       {'stopped pid ' + str(pid) if pid else 'not running'}")
    if settings.embedded and not keep_db:
        pid = localdb.down(settings)
        print(f"postgres    {'stopped pid ' + str(pid) if pid else 'not running'}")


def kill(settings: Settings, names: list[str], sig: signal.Signals, timeout_s: float = 10.0) -> None:
    """Signal each component's whole process group at once (a crash, not a shutdown); for SIGKILL,
    return only once each is gone, so a following ``up`` never mistakes a dying process for a live one."""
    killed = []
    for name in names:
        pid = read_pid(settings, name)
        if pid is not None:
            pidfiles.signal_group(pid, sig)
            killed.append(name)
        print(f"{name:<11} {sig.name} -> {pid or 'not running'}")
    if sig != signal.SIGKILL:
        return
    deadline = time.monotonic() + timeout_s
    while any(read_pid(settings, name) is not None for name in killed):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still alive {timeout_s:.0f}s after SIGKILL: {killed}")
        time.sleep(0.02)


NOT_ALL_UP = 3  # status --check: LSB's exit status for "program is not running"


def owner(pid: int) -> str | None:
    """``uid N (name)``: the effective uid ``pid`` runs with, so ``status`` shows which parts hold
    root (README, "Privileges"); None when there is no such process."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    # "Uid:  real  effective  saved  filesystem"
    uid = int(next(line for line in lines if line.startswith("Uid:")).split()[2])
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = "no passwd entry"
    return f"uid {uid} ({name})"


def _status_line(name: str, pid: int | None, state: str, where: str) -> str:
    return f"{name:<11} {state:<20} {(owner(pid) if pid else None) or '-':<20} {where}"


def status(settings: Settings) -> bool:
    """Print each part's state, uid and address; True when every part is running."""
    if settings.embedded:
        info = localdb.running(settings)
        pids: list[int | None] = [info[0] if info else None]
        print(_status_line("postgres", pids[0], f"running pid {pids[0]}" if pids[0] else "stopped", str(settings.pgdata)))
    else:
        pids = []
        print(_status_line("postgres", None, "external", "DATABASE_URL"))
    for comp in components(settings):
        pid = read_pid(settings, comp.name)
        port = component_ports(settings).get(comp.name)
        where = f"port {port}" if port else f"socket {settings.pool_socket}" if comp.name == "pool" else "-"
        # A stopped part's port held by someone else is why its `up` would refuse: say so here too.
        holder = ports.holder(port) if pid is None and port is not None else None
        print(_status_line(comp.name, pid, f"running pid {pid}" if pid else "stopped", where)
              + (f" (in use by {holder})" if holder else ""))
        pids.append(pid)
    if wants_model(settings) or model.running(settings) is not None:
        answering = model.status(settings)
        if wants_model(settings):
            pids.append(model.running(settings) if answering else None)
    return all(pid is not None for pid in pids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts.stack")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up")
    p_down = sub.add_parser("down")
    p_down.add_argument("--keep-db", action="store_true")
    p_status = sub.add_parser("status")
    p_status.add_argument("--check", action="store_true", help=f"exit {NOT_ALL_UP} unless every part is running")
    sub.add_parser("env", help="print the stack environment as shell exports")
    p_kill = sub.add_parser("kill")
    p_kill.add_argument("names", nargs="+")
    p_kill.add_argument("--signal", default="KILL")
    args = parser.parse_args(argv)
    settings = load()
    if args.command == "up":
        up(settings)
    elif args.command == "down":
        down(settings, keep_db=args.keep_db)
        for line in suite.stop_leftovers():
            print(f"test suite  {line}")
    elif args.command == "status":
        all_up = status(settings)
        return NOT_ALL_UP if args.check and not all_up else 0
    elif args.command == "env":
        env = stack_env(settings)
        for key in ("DAGSTER_HOME", "DAGSTER_PG_URL", "APP_DATABASE_URL", "DAGSTER_DATABASE_URL"):
            print(f"export {key}='{env[key]}'")
    elif args.command == "kill":
        kill(settings, args.names, signal.Signals[f"SIG{args.signal.upper().removeprefix('SIG')}"])
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `status | head` ends quietly, as a shell tool does
    sys.exit(main())
