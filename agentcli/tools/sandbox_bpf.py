"""The seccomp program of the sandbox: no unix socket can be created, so no host socket is reachable.

A read-only mount does not stop ``connect()`` to a socket file (``/var/run/docker.sock``, a
database's, ``/run/user/<uid>/`` agents), and sockets live anywhere on the file system, so hiding
directories cannot be complete. As Claude Code's Linux sandbox does, the filter makes
``socket(AF_UNIX, ...)`` fail with ``EPERM`` instead; ``socketpair()`` (a private pair, which
Python's subprocess, npm and make's job server use) and pipes keep working. io_uring is denied
too: its ``IORING_OP_SOCKET`` creates sockets without the ``socket`` system call. Abstract
sockets are already out of reach (the network namespace has its own).

The program is classic BPF, assembled here (a few dozen bytes, no library): for each system-call
ABI the machine can enter (x86_64 with x32, i386; aarch64, arm), the socket call with
``AF_UNIX`` as its first argument and the socket multiplexer ``socketcall`` are denied.
"""

from __future__ import annotations

import platform
import struct

__all__ = ["unix_socket_filter"]

_LD_W_ABS = 0x20
_JEQ_K = 0x15
_RET_K = 0x06
_ALLOW = 0x7FFF0000
_ERRNO_EPERM = 0x00050000 | 1
_AF_UNIX = 1
_X32_BIT = 0x40000000
_IO_URING = (425, 426, 427)  # setup, enter, register: the same numbers in every ABI below

# (audit arch, socket numbers, numbers denied whatever their arguments)
_ABIS: dict[str, list[tuple[int, tuple[int, ...], tuple[int, ...]]]] = {
    "x86_64": [(0xC000003E, (41, _X32_BIT | 41), _IO_URING + tuple(_X32_BIT | n for n in _IO_URING)),
               (0x40000003, (359,), (102, *_IO_URING))],
    "aarch64": [(0xC00000B7, (198,), _IO_URING), (0x40000028, (281,), (102, *_IO_URING))],
}


def _program(abis: list[tuple[int, tuple[int, ...], tuple[int, ...]]]) -> list[tuple[int, int, int, int]]:
    # Built backwards so every jump knows how far ahead its target is.
    tail: list[tuple[int, int, int, int]] = [(_RET_K, 0, 0, _ALLOW)]
    for arch, sockets, denied in reversed(abis):
        # Check the first argument: deny AF_UNIX, allow the rest.
        block: list[tuple[int, int, int, int]] = [
            (_LD_W_ABS, 0, 0, 16), (_JEQ_K, 0, 1, _AF_UNIX), (_RET_K, 0, 0, _ERRNO_EPERM), (_RET_K, 0, 0, _ALLOW)]
        deny_at = 2  # index of the EPERM return in ``block``
        arg_at = 0
        body: list[tuple[int, int, int, int]] = []
        checks = [(n, "arg") for n in sockets] + [(n, "deny") for n in denied]
        # Each check: jump to the argument test or to EPERM, else fall through to the next check.
        for i, (nr, kind) in enumerate(checks):
            after = len(checks) - i - 1 + 1  # remaining checks plus the final "allow"
            target = after + (deny_at if kind == "deny" else arg_at)
            body.append((_JEQ_K, target, 0, nr))
        body.append((_RET_K, 0, 0, _ALLOW))
        section = [(_LD_W_ABS, 0, 0, 0), *body, *block]
        # arch test: equal -> this section, else skip it to the next ABI's.
        tail = [(_LD_W_ABS, 0, 0, 4), (_JEQ_K, 0, len(section), arch), *section, *tail]
    return tail


def unix_socket_filter(machine: str | None = None) -> bytes | None:
    """The program as ``struct sock_filter[]`` bytes for bubblewrap's ``--seccomp``, or None
    when this machine's system-call numbers are not known here."""
    abis = _ABIS.get(machine or platform.machine())
    if abis is None:
        return None
    return b"".join(struct.pack("=HBBI", *ins) for ins in _program(abis))
