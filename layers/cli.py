"""``cim departments``: register departments, list them, revoke or renew their tokens.

Registered through the ``cim.commands`` entry point group; :func:`departments_command`
adds its sub-parser to the ``cim`` command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from layers.config import live_config
from layers.store import open_store


def departments_command(sub: argparse._SubParsersAction) -> None:
    """Add ``cim departments add|list|revoke|renew`` to the ``cim`` parser."""
    p = sub.add_parser("departments", help="departments and their write tokens (live layers)")
    dsub = p.add_subparsers(dest="departments_command", required=True)
    a = dsub.add_parser("add", help="register a department; prints its token once")
    a.add_argument("project", type=Path, help="city.toml")
    a.add_argument("id", help="short id, e.g. water")
    a.add_argument("--name", default="", help="display name, e.g. 水务局")
    a.add_argument("--admin", action="store_true", help="may write every department's data")
    a.set_defaults(func=_add)
    ls = dsub.add_parser("list", help="list departments")
    ls.add_argument("project", type=Path, help="city.toml")
    ls.set_defaults(func=_list)
    r = dsub.add_parser("revoke", help="revoke a department's token")
    r.add_argument("project", type=Path, help="city.toml")
    r.add_argument("id")
    r.set_defaults(func=_revoke)
    n = dsub.add_parser("renew", help="issue a new token (the old one stops working)")
    n.add_argument("project", type=Path, help="city.toml")
    n.add_argument("id")
    n.set_defaults(func=_renew)


def _store(project: Path):
    return open_store(live_config(project))


def _add(args: argparse.Namespace) -> int:
    from layers.departments import add_department

    store = _store(args.project)
    try:
        token = add_department(store, args.id, args.name, admin=args.admin)
    finally:
        store.close()
    print(token)
    return 0


def _list(args: argparse.Namespace) -> int:
    store = _store(args.project)
    try:
        for d in store.list_departments():
            state = "revoked" if d.revoked else "active"
            print(f"{d.id}\t{d.name}\t{d.role}\t{state}")
    finally:
        store.close()
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from layers.departments import revoke

    store = _store(args.project)
    try:
        revoke(store, args.id)
    finally:
        store.close()
    print(f"{args.id}: token revoked")
    return 0


def _renew(args: argparse.Namespace) -> int:
    from layers.departments import renew

    store = _store(args.project)
    try:
        token = renew(store, args.id)
    finally:
        store.close()
    print(token)
    return 0
