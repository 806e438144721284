"""torch.distributed set-up: single process by default, DDP under ``torchrun`` with no code change."""

from __future__ import annotations

import datetime
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from seglab.engine.device import resolve_device
from seglab.errors import SeglabError

# A rank that dies leaves the others blocked in a collective; this timeout ends them instead.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=float(os.environ.get("SEGLAB_DIST_TIMEOUT_MIN", "10")))


class PeerFailure(SeglabError):
    """Another rank of this torchrun job failed; the message names it (seglab.engine.distributed)."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank, world size and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistInfo:
    """Start the process group when launched by torchrun (WORLD_SIZE > 1), else run single-process.

    Args:
        device: "cpu", "cuda", "cuda:1"...; default CUDA when available, else CPU.
            Under torchrun each process takes cuda:LOCAL_RANK; the backend is nccl on CUDA, gloo on CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda" and world_size > 1:
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
        _register(rank)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


# When one rank fails, the others learn it from a collective that breaks (gloo: "Connection closed by peer")
# or from torchrun's SIGTERM. The failing rank leaves its one-line message in the launcher's TCP store first,
# and every rank its pid at start, so each of the others can say which rank failed and why.
_KEY = "seglab/{what}/{rank}"


def _store() -> dist.TCPStore | None:
    """A client of the store torchrun serves at MASTER_ADDR:MASTER_PORT (None outside torchrun)."""
    host, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if int(os.environ.get("WORLD_SIZE", "1")) < 2 or not host or not port:
        return None
    try:
        return dist.TCPStore(host, int(port), is_master=False, timeout=datetime.timedelta(seconds=5))
    except (RuntimeError, ValueError, OSError):
        return None


def _register(rank: int) -> None:
    """Record this rank's pid, and make torchrun's SIGTERM (sent when a peer failed) a PeerFailure."""
    store = _store()
    if store is not None:
        store.set(_KEY.format(what="pid", rank=rank), str(os.getpid()))

    def stopped(signum: int, frame: object) -> None:
        hold_off_termination()  # once: a second SIGTERM must not raise again inside the report of the first
        raise PeerFailure(describe_peer_failure())
    signal.signal(signal.SIGTERM, stopped)


def hold_off_termination() -> None:
    """Ignore torchrun's SIGTERM from here on: this rank is already stopping and printing why.

    Without it a SIGTERM that lands while the rank reports a broken collective raises inside the report,
    and the rank dies with a traceback instead of its one line (torchrun still kills it after its grace).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def announce_failure(message: str) -> None:
    """Leave this rank's one-line error where the other ranks look for it (a no-op outside torchrun)."""
    store = _store()
    if store is not None:
        store.set(_KEY.format(what="failed", rank=os.environ.get("RANK", "0")), message)


def describe_peer_failure() -> str:
    """Which other rank failed and its message, or which one is gone; for the line this rank prints."""
    store, rank = _store(), int(os.environ.get("RANK", "0"))
    others = [r for r in range(int(os.environ.get("WORLD_SIZE", "1"))) if r != rank]
    if store is None:
        return "another process of this run failed (see its message above)"
    for other in others:
        key = _KEY.format(what="failed", rank=other)
        if store.check([key]):
            return f"rank {other} failed: {store.get(key).decode()}"
    for other in others:
        key = _KEY.format(what="pid", rank=other)
        if store.check([key]) and not _alive(int(store.get(key))):
            return f"rank {other} (pid {int(store.get(key))}) died without a message (killed, or out of memory?)"
    return "another process of this run stopped (see torchrun's report)"


def is_peer_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective that broke because another rank went away."""
    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return False
    text = str(exc)
    return isinstance(exc, (PeerFailure, dist.DistError)) or any(
        sign in text for sign in ("Connection closed by peer", "Connection reset by peer", "gloo", "NCCL"))


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, exited but not yet reaped by torchrun, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (not Linux): assume it runs


def shutdown_distributed() -> None:
    """Destroy the process group if one was started."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over processes (the value itself when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / dist.get_world_size()


def past_deadline(deadline: float) -> bool:
    """Whether ``time.perf_counter()`` is past ``deadline`` on any process (all agree, so all stop together)."""
    late = time.perf_counter() > deadline
    if not (dist.is_available() and dist.is_initialized()):
        return late
    flag = torch.tensor([float(late)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def barrier() -> None:
    """Wait for every process (no-op when single-process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
