"""Preemption: SIGTERM / SIGINT stop a training loop at a step boundary, not mid-step.

Why: a TPU pod or a cluster scheduler preempts a job with SIGTERM and kills it a little
later; without a handler every step since the last periodic checkpoint is lost, and
Ctrl-C (SIGINT) raised KeyboardInterrupt wherever the loop happened to be. With a
`PreemptionGuard` the loop asks `should_stop(step)` after each step; the first signal
makes it answer True, so the caller checkpoints (state + data iterator), flushes its
logs and raises `Preempted`, which the command turns into exit status 128 + signal
(143 for SIGTERM, 130 for SIGINT). A second signal is not caught: the first one put
the default action back, so it ends the process at once.

On several hosts every process must save at the same step (a checkpoint is a
collective write). JAX's preemption sync manager (started by `jax.distributed`) owns
SIGTERM there: it spreads a notice from any host to all of them and
`multihost_utils.reached_preemption_sync_point(step)` turns True on every host at the
same step. Python then leaves SIGTERM alone, and SIGINT re-sends itself as SIGTERM so
it takes the same path.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

import jax

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
  """Raised after a checkpoint was written because of a signal; `exit_code` is 128+signal."""

  def __init__(self, signum: int, step: int, workdir: Any = None):
    self.signum, self.step, self.workdir = signum, step, workdir
    self.exit_code = 128 + signum
    name = signal.Signals(signum).name
    super().__init__(f"stopped by {name} after step {step}; checkpoint saved"
                     + (f" in {workdir}" if workdir is not None else "")
                     + "; continue with --resume.")


def exit_code(error: BaseException) -> int:
  return error.exit_code if isinstance(error, Preempted) else 1


class PreemptionGuard:
  """Context manager: installs the handlers on entry, restores the previous ones on exit.

  Only the main thread may install signal handlers; elsewhere (a test's worker thread)
  the guard is inert and `should_stop` only reports JAX's multi-host sync point.
  """

  def __init__(self):
    self.signum: int | None = None
    self._previous: dict[int, Any] = {}
    self._multihost = jax.process_count() > 1

  def _handle(self, signum, frame):
    del frame
    if self._multihost:
      # JAX's notifier listens for SIGTERM and tells every host.
      os.kill(os.getpid(), signal.SIGTERM)
      self.signum = signal.SIGINT
      return
    self.signum = signum
    # A second signal takes the default action: the process ends at once.
    for sig in SIGNALS:
      signal.signal(sig, signal.SIG_DFL)
    logging.warning("received %s: finishing the current step, then checkpointing "
                    "(send it again to stop at once).", signal.Signals(signum).name)

  def __enter__(self) -> "PreemptionGuard":
    import threading
    if threading.current_thread() is not threading.main_thread():
      return self
    handled = (signal.SIGINT,) if self._multihost else SIGNALS
    for sig in handled:
      self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}

  def should_stop(self, step: int) -> bool:
    """True once a signal arrived (on several hosts: at the step all of them agreed on).

    Must be called after every step on every host (JAX's sync protocol counts on it).
    """
    if self._multihost:
      from jax.experimental import multihost_utils
      try:
        if multihost_utils.reached_preemption_sync_point(step):
          self.signum = self.signum or signal.SIGTERM
          return True
      except RuntimeError:  # The preemption service is off: only local signals count.
        pass
      return False
    return self.signum is not None
