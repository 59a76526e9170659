"""How the `ssvbench` command ends: one line on stderr and a documented exit status.

Exit statuses (README, "Failure behaviour"):
  0    success.
  2    bad input or an environment problem the user must fix: a config, flag, store,
       features file or results file that cannot be used, a workdir that is not what
       the command expects, a full disk. One line naming the file/key; nothing written.
  3    training diverged: a non-finite loss or gradient norm (train.on_nonfinite='stop').
       The checkpoints on disk are all finite.
  130  stopped by SIGINT, 143 stopped by SIGTERM (128 + signal): the current step was
       finished and checkpointed; `--resume` continues it exactly. A second signal ends
       the process at once (killed by the signal: status -2/-15 from a parent, 130/143
       in a shell) without a new checkpoint.
Anything else is a bug and keeps its traceback (exit 1). `-v` shows tracebacks always.
"""

from __future__ import annotations

import errno
import sys

BAD_INPUT = 2


def _bad_input_types() -> tuple[type, ...]:
  from ssvbench.config import ConfigError
  from ssvbench.data.store import StoreError
  return (ConfigError, FileNotFoundError, FileExistsError, ValueError, StoreError,
          IsADirectoryError, NotADirectoryError, PermissionError)


def one_line(error: BaseException) -> str:
  return " ".join(str(error).split()) or type(error).__name__


def run_command(args, overrides) -> int:
  """Runs `args.func` and maps its failures to (one line, exit status)."""
  try:
    return args.func(args, overrides)
  except SystemExit as error:
    if not isinstance(error.code, str):
      raise
    # A subcommand's refusal of its arguments (`raise SystemExit("...")`): bad input too.
    message = one_line(error)
    prefix = "" if message.startswith("ssvbench") else f"ssvbench {args.command}: error: "
    print(prefix + message, file=sys.stderr)
    return BAD_INPUT
  except Exception as error:  # noqa: BLE001 -- classified below, re-raised otherwise.
    if args.verbose:
      raise
    code = getattr(error, "exit_code", None)
    if code is None:
      if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        code = BAD_INPUT
      elif isinstance(error, _bad_input_types()):
        code = BAD_INPUT
      else:
        raise
    label = "" if code >= 128 else "error: "  # A preemption is not an error.
    print(f"ssvbench {args.command}: {label}{one_line(error)}", file=sys.stderr)
    return code
