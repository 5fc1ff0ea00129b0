"""The `costspan` command (also `python -m costspan`): one sub-command per job, each in its stage.

Sub-commands are imported only when run, so `costspan --help` loads nothing heavy and a
sub-command whose extra is not installed says which extra to install.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

# name -> ("module:function", one-line help, the extra it needs or None). The function takes the
# sub-command's arguments and returns the exit status.
COMMANDS: dict[str, tuple[str, str, str | None]] = {
    "report": ("costspan.analysis.cli:main", "cost by task, customer, feature, agent, model", "report"),
    "push-prices": ("costspan.exporters.phoenix_prices:main", "make Phoenix price as costspan does", None),
}


def _usage() -> str:
    lines = ["usage: costspan COMMAND [ARGS...]", "", "commands:"]
    width = max(len(name) for name in COMMANDS)
    lines += [f"  {name:<{width}}  {help_text}" for name, (_, help_text, _) in COMMANDS.items()]
    lines += ["", "costspan COMMAND --help for a command's arguments."]
    return "\n".join(lines)


def _load(target: str, extra: str | None) -> Callable[[Sequence[str]], int]:
    module_name, _, function = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f' (pip install "costspan[{extra}]")' if extra else ""
        raise SystemExit(f"costspan: {exc}{hint}") from None
    run: Callable[[Sequence[str]], int] = getattr(module, function)
    return run


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"costspan: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    target, _, extra = COMMANDS[name]
    return _load(target, extra)(rest)
