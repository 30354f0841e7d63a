"""python -m ryax_action_wrapper --address 127.0.0.1:PORT | unix:/path
| --once REQ.json RES.json [--events EVENTS.jsonl] | --fork-server FD"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from .container import build_runtime
from .infrastructure.capture import setup_process_streams


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ryax_action_wrapper",
        description="Serve ActionService (gRPC) around the code of one Ryax action.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--address", help="where to listen: HOST:PORT (PORT 0 = any free port) or unix:/path"
    )
    mode.add_argument(
        "--fork-server",
        type=int,
        metavar="FD",
        help="serve the worker's fork requests on the socket FD (the worker starts it)",
    )
    mode.add_argument(
        "--once",
        nargs=2,
        metavar=("REQUEST_JSON", "RESULT_JSON"),
        help="run one execution described in REQUEST_JSON, write RESULT_JSON, exit",
    )
    parser.add_argument("--port-file", help="write the port listened on to this file")
    parser.add_argument(
        "--events",
        metavar="EVENTS_JSONL",
        help="with --once: also append every reply to this file as it happens (JSON lines)",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("RYAX_LOG_LEVEL", "info"),
        help="the wrapper's own log level (default: $RYAX_LOG_LEVEL or info)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.fork_server is not None:
        from .infrastructure.forkserver import serve as serve_forks

        sys.exit(serve_forks(args.fork_server, main))
    log_handler = setup_process_streams(args.log_level, os.environ.get("RYAX_LOG_FORMAT", "text"))
    runtime, capture = build_runtime(log_handler)
    # Closed here rather than at exit: a forked action process ends by os._exit.
    try:
        if args.once:
            from .infrastructure.once import run_once

            sys.exit(run_once(runtime, args.once[0], args.once[1], args.events))
        from .infrastructure.grpc.server import serve

        asyncio.run(serve(runtime, args.address, args.port_file))
    finally:
        capture.close()


if __name__ == "__main__":
    main()
