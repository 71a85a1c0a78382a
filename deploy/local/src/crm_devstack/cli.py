"""crm-dev: run the whole suite on this machine.

    crm-dev up    [--data-dir .crm/dev] [--port-offset N] [--no-demo] [--suite FILE]
    crm-dev token [--user li.wei] [--password PW] [--gateway URL]
                  (signs in a demo user through the running suite's gateway and identity)
    crm-dev token --offline [--user alice] [--roles sales_rep] [--data-scope own] [--team T] ...
                  (a token signed with the local dev key, for a suite without identity)
    crm-dev reset [--data-dir .crm/dev]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from crm_devstack.keys import DEFAULT_TTL_SECONDS, LoginError, ensure_keys, issue_token, login
from crm_devstack.suite import DEFAULT_DATA_DIR, MARKER, STATE_FILE, Suite, SuiteError, reset
from crmkit.auth.principal import DataScope
from crmkit.embedded import ServerStartError

DEMO_USER = "alice"  # offline tokens
DEFAULT_LOGIN = "li.wei"  # a demo sales rep (see demo.USERS)
DEFAULT_GATEWAY = "http://127.0.0.1:8000"


class Shutdown(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_shutdown(signum: int, frame: FrameType | None) -> None:
    raise Shutdown(signum)


def _data_dir(value: str | None) -> Path:
    return Path(value or os.environ.get("CRM_DEV_DATA_DIR") or DEFAULT_DATA_DIR)


def cmd_up(args: argparse.Namespace) -> int:
    suite = Suite(_data_dir(args.data_dir), args.port_offset, suite_file=args.suite,
                  services=args.only or None, log_level=args.log_level)
    say = suite.output.say
    signal.signal(signal.SIGTERM, _raise_shutdown)
    signal.signal(signal.SIGHUP, _raise_shutdown)
    status = 0
    try:
        suite.start()
        if not args.no_demo and suite.config.gateway is not None:
            from crm_devstack import demo

            try:
                if any(spec.name == "identity" for spec in suite.config.services):
                    demo.seed(suite.gateway_url, log=say)
                    simulator = next((h.url for h in suite.config.http_services if h.name == "sap-simulator"), None)
                    if simulator is None:
                        say("demo deals not seeded: no SAP simulator in this suite")
                    else:
                        demo.seed_deals(suite.gateway_url, simulator, log=say)
                else:  # no identity in this suite: customers only, with an offline token
                    token = suite.token(DEMO_USER, name="Alice Chen", roles=("sales_rep", "admin"),
                                        data_scope=DataScope.ALL)
                    demo.load(suite.gateway_url, token, log=say)
            except Exception as exc:  # demo data is a convenience: never take the suite down
                say(f"demo data not loaded: {exc}")
        say(suite.summary())
        failed = suite.wait()
        say(f"{failed.name} exited with status {failed.poll()}; stopping the suite")
        status = 1
    except KeyboardInterrupt:
        say("interrupted; stopping")
    except Shutdown as exc:
        say(f"{exc}; stopping")
    except (SuiteError, ServerStartError) as exc:
        say(f"error: {exc}")
        status = 1
    finally:
        # one orderly stop, whatever signals follow
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        suite.stop()
        say("stopped")
    return status


def _gateway_url(args: argparse.Namespace) -> str:
    if args.gateway:
        return str(args.gateway)
    try:
        state = json.loads((_data_dir(args.data_dir) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return DEFAULT_GATEWAY
    return str(state.get("gateway_url") or DEFAULT_GATEWAY)


def cmd_token(args: argparse.Namespace) -> int:
    if not args.offline:
        from crm_devstack import demo

        user = args.user or DEFAULT_LOGIN
        password = args.password or os.environ.get("CRM_DEV_PASSWORD") or demo.password_for(user)
        if password is None:
            print(f"crm-dev token: {user} is not a demo user; pass --password (demo users: "
                  f"{', '.join(['admin', *(u.login for u in demo.USERS)])})", file=sys.stderr)
            return 2
        try:
            print(login(_gateway_url(args), user, password))
        except LoginError as exc:
            print(f"crm-dev token: {exc} (is the suite running? `make dev`)", file=sys.stderr)
            return 1
        return 0
    data_dir = _data_dir(args.data_dir)
    keys = ensure_keys(data_dir)
    (data_dir / MARKER).touch()  # so that `reset` knows the dir is ours
    roles = [r for value in args.roles for r in value.split(",") if r]
    teams = [t for value in args.team for t in value.split(",") if t]
    print(issue_token(keys, user=args.user or DEMO_USER, name=args.name, roles=roles or ["sales_rep"],
                      team_ids=teams, department_path=args.department,
                      data_scope=args.data_scope, ttl_seconds=args.ttl))
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args.data_dir)
    try:
        removed = reset(data_dir)
    except SuiteError as exc:
        print(f"crm-dev reset: {exc}", file=sys.stderr)
        return 1
    print(f"removed {data_dir}" if removed else f"nothing to remove at {data_dir}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crm-dev", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def data_dir_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--data-dir", help=f"where data and keys live (default {DEFAULT_DATA_DIR}, "
                                           "or $CRM_DEV_DATA_DIR)")

    up = sub.add_parser("up", help="start PostgreSQL, NATS, every service and the gateway")
    data_dir_arg(up)
    up.add_argument("--port-offset", type=int, default=0, help="shift every port by N")
    up.add_argument("--no-demo", action="store_true", help="do not load demo data")
    up.add_argument("--suite", help="suite manifest (default deploy/local/suite.toml)")
    up.add_argument("--only", action="append", metavar="SERVICE",
                    help="start only this service (repeatable); the gateway still starts")
    up.add_argument("--log-level", default="INFO")
    up.set_defaults(func=cmd_up)

    token = sub.add_parser("token", help="sign in a demo user through the suite and print the access token")
    data_dir_arg(token)
    token.add_argument("--user", default=None, help=f"login (default {DEFAULT_LOGIN}; offline: {DEMO_USER})")
    token.add_argument("--password", default=None,
                       help="default: the demo password of a demo user ($CRM_DEV_PASSWORD overrides)")
    token.add_argument("--gateway", default=None, help="gateway URL (default: the running suite's)")
    token.add_argument("--offline", action="store_true",
                       help="sign a token with the local dev key instead (a suite without identity); "
                            "takes the options below")
    token.add_argument("--name", default=None, help="display name (default from --user)")
    token.add_argument("--roles", action="append", default=[],
                       help="role, repeatable or comma-separated (default sales_rep)")
    token.add_argument("--data-scope", default="own", choices=[s.value for s in DataScope])
    token.add_argument("--team", action="append", default=[],
                       help="team id, repeatable or comma-separated")
    token.add_argument("--department", default="/", help="department path, e.g. /sales/east")
    token.add_argument("--ttl", type=int, default=DEFAULT_TTL_SECONDS, help="seconds")
    token.set_defaults(func=cmd_token)

    rs = sub.add_parser("reset", help="delete the data dir (refused while the suite runs)")
    data_dir_arg(rs)
    rs.set_defaults(func=cmd_reset)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
