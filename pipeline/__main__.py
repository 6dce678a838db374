"""Command line: ``python -m pipeline <command>``.

  stack up|down|status [--json]   run the embedded Kafka + MongoDB servers without the app
  status [--json]                 the status contract (see pipeline.health.status); never starts servers
  produce                         run the producer jobs in this process (scale-out)
  consume [--group G]             run one consumer-group member in this process (scale-out)

Both ``produce`` and ``consume`` use the external servers when configured, else the running app's
embedded stack (from the data folder). Exit codes: 0 ok, 1 failure, 2 usage/configuration error.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

from .config import APP_NAME, ConfigError, Settings


def _print(obj, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, indent=2, default=str))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            print(f"{k:>14}: {v}")
    else:
        print(obj)


def _stop_on_signals(event: threading.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: event.set())


def cmd_stack(args, settings: Settings) -> int:
    from .embedded.stack import LocalStack, StackError

    stack = LocalStack(settings.data_dir, timeout=settings.stack_timeout)
    if args.action == "status":
        rows = stack.describe()
        _print(
            {"data_dir": str(settings.data_dir), "owner_pid": stack.owner_pid(), "servers": rows}, args.json
        )
        return 0 if rows and all(r["alive"] for r in rows) else 1
    if args.action == "down":
        owner = stack.owner_pid()
        if owner:
            import os

            os.kill(owner, signal.SIGTERM)
            _print({"stopping_owner": owner}, args.json)
            return 0
        # leftovers without an owner: take the lock and stop them
        try:
            stack.start_lock_only()
        except StackError as exc:
            print(exc, file=sys.stderr)
            return 1
        stack.servers = stack.read_state()
        stack.stop()
        _print({"stopped": True}, args.json)
        return 0
    # up: run in the foreground until a signal
    try:
        stack.start()
    except StackError as exc:
        print(exc, file=sys.stderr)
        return 1
    _print(
        {"kafka": stack.kafka_bootstrap, "mongodb": stack.mongodb_uri, "data_dir": str(settings.data_dir)},
        args.json,
    )
    sys.stdout.flush()
    done = threading.Event()
    _stop_on_signals(done)
    try:
        done.wait()
    finally:
        stack.stop()
    return 0


def _endpoints_or_exit(settings: Settings) -> tuple[str, str]:
    from .health.status import endpoints

    kafka, mongo, _ = endpoints(settings)
    if not kafka or not mongo:
        print(
            "No servers: configure KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI, or start the app "
            "(streamlit run Home.py) so its embedded stack runs.",
            file=sys.stderr,
        )
        raise SystemExit(1)
    return kafka, mongo


def cmd_produce(args, settings: Settings) -> int:
    from .wiring import build_produce, connect

    conn = connect(settings, *_endpoints_or_exit(settings))
    role = build_produce(conn).start()
    done = threading.Event()
    _stop_on_signals(done)
    while not done.wait(10):
        snap = role.producer.snapshot()
        logging.getLogger("pipeline.produce").info(
            "published %s, pending %s", snap["published"], snap["pending"]
        )
    role.stop()
    conn.close()
    return 0


def cmd_consume(args, settings: Settings) -> int:
    from .wiring import build_consume, connect, prepare_store

    conn = connect(settings, *_endpoints_or_exit(settings))
    prepare_store(conn)
    role = build_consume(conn, group=args.group, instance_id=args.instance_id)
    done = threading.Event()
    _stop_on_signals(done)

    def stop_on_signal() -> None:
        done.wait()
        role.ingest.consumer.stop()

    threading.Thread(target=stop_on_signal, daemon=True).start()
    role.run(max_idle_s=args.exit_when_idle)
    snap = role.ingest.consumer.snapshot()
    print(
        json.dumps(
            {
                **{k: snap.get(k, 0) for k in ("consumed", "stored", "duplicates", "dead_lettered")},
                "alerts_fired": role.ingest.alerts.snapshot()["fired"],
            }
        ),
        flush=True,
    )
    conn.close()
    return 0


def cmd_status(args, settings: Settings) -> int:
    from .health.rules import BADGES
    from .health.status import collect

    result = collect(settings)
    if args.json:
        _print(result, True)
    else:
        _print({k: v for k, v in result.items() if k != "verdicts"}, False)
        for v in result.get("verdicts", []):  # as the Health page's component table shows them
            print(f"{v['component']:>14}: {BADGES[v['level']]}  {v['reason']}")
    return 0 if result["kafka"]["ok"] and result["mongo"]["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=f"{APP_NAME} pipeline")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("stack", help="embedded Kafka + MongoDB servers")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("status", help="pipeline status (JSON contract)")
    p.add_argument("--json", action="store_true")
    sub.add_parser("produce", help="run the producer in this process")
    p = sub.add_parser("consume", help="run one consumer-group member in this process")
    p.add_argument("--group", default=None)
    p.add_argument(
        "--instance-id",
        default=None,
        help="static group membership: a restarted process with the same id takes over at once",
    )
    p.add_argument(
        "--exit-when-idle",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit after this many seconds without messages (batch jobs, tests)",
    )
    args = parser.parse_args(argv)
    from .runtime import configure_logging

    configure_logging()
    try:
        settings = Settings.load()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return {"stack": cmd_stack, "status": cmd_status, "produce": cmd_produce, "consume": cmd_consume}[
        args.command
    ](args, settings)


if __name__ == "__main__":
    sys.exit(main())
