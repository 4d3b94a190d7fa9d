"""SIGTERM that stops a service at once, even one that has nothing to do.

`nameko run`'s SIGTERM handler only schedules `runner.stop` as a green thread. The handler runs
while eventlet's hub sleeps in epoll_wait, and since PEP 475 Python retries an interrupted
epoll_wait by itself with the time that was left: the hub does not wake up for the new green
thread until its next timer or socket event. A service with broker consumers wakes every second
(their drain timeouts); a service that only serves HTTP (open311, registry, console) and has no
request in flight sleeps until its next timer, seconds or forever: `make chaos` waited 30 s for
open311 and gave up. So every service sets a wakeup fd (signal.set_wakeup_fd): the C-level
signal handler writes a byte to a pipe the hub watches, the retried epoll_wait returns at once
and the hub runs the stop.
"""

from __future__ import annotations

import logging
import os
import signal

from eventlet.hubs import trampoline
from nameko.extensions import DependencyProvider

log = logging.getLogger(__name__)


class SignalWake(DependencyProvider):
    """Wakes the hub when a signal arrives (providers.Observable gives every service one)."""

    def setup(self):
        self._fds: tuple[int, int] | None = None
        self._previous = -1
        self._reader = None

    def start(self):
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)  # the C handler must never block on a full pipe
        try:
            self._previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        except ValueError:  # not the main thread (a container run inside a test's thread)
            os.close(read)
            os.close(write)
            log.debug("no signal wakeup fd outside the main thread")
            return
        self._fds = (read, write)
        self._reader = self.container.spawn_managed_thread(self._drain)

    def _drain(self) -> None:
        """Empties the pipe whenever a signal wrote to it: its only job was waking the hub."""
        assert self._fds is not None
        read = self._fds[0]
        while True:
            trampoline(read, read=True)
            try:
                os.read(read, 512)
            except BlockingIOError:
                pass

    def stop(self):
        if self._fds is None:
            return
        signal.set_wakeup_fd(self._previous)
        if self._reader is not None:
            self._reader.kill()  # its trampoline leaves the hub's epoll set before the fd closes
        for fd in self._fds:
            os.close(fd)
        self._fds, self._reader = None, None

    def get_dependency(self, worker_ctx):
        return None
