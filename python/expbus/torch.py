"""torch.py — expbus batches as PyTorch tensors: ExperienceDataset, an
IterableDataset that subscribes when iterated and yields one dict of
tensors per expbus batch.

    from torch.utils.data import DataLoader
    from expbus.torch import ExperienceDataset
    ds = ExperienceDataset("grid", batch_size=256, columns=["obs", "action"])
    for batch in DataLoader(ds, batch_size=None):   # batches come whole
        loss = model(batch["obs"]) ...

Why a copy by default: torch has no read-only tensors, and the batch ring is
mapped read-only, so an in-place op on a tensor that views it (x.add_(1))
kills the process with SIGSEGV. By default each batch is therefore copied
once, straight from the mapping into tensors that are reused (pinned when
CUDA is available, so .to("cuda", non_blocking=True) is a DMA), and the
batch is released at once. zero_copy=True yields tensors that are the
mapping itself: no copy at all, never to be written, valid until the next
batch is asked for.

Unsigned columns wider than a byte have no torch dtype (torch 1.x): they are
widened when copied (u16 -> int32, u32 -> int64, u64 -> int64 bit for bit),
and reinterpreted as the signed type of the same width with zero_copy.
The header columns (seq, timestamp, source, game, player, turn, flags) are
such columns."""
import itertools
import os
import warnings

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from . import subscribe

__all__ = ["ExperienceDataset", "torch_dtype"]

_TORCH = {
    "bool": torch.bool, "i8": torch.int8, "u8": torch.uint8,
    "i16": torch.int16, "i32": torch.int32, "i64": torch.int64,
    "f16": torch.float16, "f32": torch.float32, "f64": torch.float64,
    # no unsigned 16/32/64-bit dtypes in torch: widened when copied
    "u16": torch.int32, "u32": torch.int64, "u64": torch.int64,
}
# Same-width signed reinterpretation for zero-copy views.
_SIGNED_VIEW = {"u16": np.int16, "u32": np.int32, "u64": np.int64}
_ids = itertools.count()


def torch_dtype(name):
    """The torch dtype a column of expbus dtype name is copied into."""
    return _TORCH[name]


class ExperienceDataset(IterableDataset):
    """Yields {column: tensor [count, *shape]} per expbus batch of stream.

    columns: names to yield (default: every schema field and header
    column). zero_copy: yield views of the batch ring (read-only in fact,
    not in torch's eyes: never modify them in place; valid until the next
    batch is requested). pin_memory: copy into pinned memory (default: when
    CUDA is available). buffers: sets of reused tensors the copies rotate
    through, so a yielded batch stays intact until that many more were
    yielded (2: the one in use and the next). max_batches: stop after that
    many. idle_timeout: stop when no batch came for that many seconds
    (None: wait for ever). When the broker goes away and comes back on the
    same socket, the subscription is made again by itself and each record
    still comes once (reconnect=30.0 seconds by default); BrokerGone,
    naming the socket, when no broker came back in that time.
    The remaining keywords go to expbus.subscribe (socket, batch_size,
    max_delay, batch_slots, games, players, min_turn, policy, group...).

    DataLoader: use batch_size=None (batches arrive whole). With
    num_workers=0 the dataset runs in the training process, which is the
    intended use. With num_workers=N > 0 each worker subscribes on its own
    as a member of one group (the group given, or one made for this
    dataset), so the workers share the records game by game instead of each
    getting all of them; each worker copies every batch into fresh tensors
    (reused ones would be overwritten while the loader's queue still holds
    them), and the loader moves them through shared memory, a second copy.
    zero_copy is refused in workers.

    remote="host:port": read through the expbus-grpc bridge at that
    address instead of the local broker (expbus.remote.subscribe; its
    keywords compression, token, tls... go in subscribe_kwargs); it
    reconnects and resumes by itself. Batches are then this process's
    memory, so zero_copy views stay valid until the next batch too."""

    def __init__(self, stream, socket=None, *, columns=None, zero_copy=False,
                 pin_memory=None, buffers=2, max_batches=None,
                 idle_timeout=None, remote=None, **subscribe_kwargs):
        super().__init__()
        self.remote = remote
        self.stream = stream
        self.socket = socket
        self.columns = list(columns) if columns is not None else None
        self.zero_copy = zero_copy
        self.pin_memory = (torch.cuda.is_available() if pin_memory is None
                           else pin_memory)
        self.buffers = max(1, buffers)
        self.max_batches = max_batches
        self.idle_timeout = idle_timeout
        self.subscribe_kwargs = subscribe_kwargs
        # One group name for all the workers of this dataset.
        self._worker_group = f"torch-{os.getpid()}-{next(_ids)}"

    def _subscribe(self):
        kw = dict(self.subscribe_kwargs)
        info = get_worker_info()
        in_worker = info is not None and info.num_workers > 0
        if in_worker:
            if self.zero_copy:
                raise ValueError("zero_copy=True cannot cross DataLoader "
                                 "workers: use num_workers=0")
            if info.num_workers > 1 and not kw.get("group"):
                kw["group"] = self._worker_group
        if self.remote:
            from .remote import subscribe as remote_subscribe
            kw.update(use_numpy=True)
            return remote_subscribe(self.remote, self.stream, **kw), \
                in_worker
        kw.update(auto_release=False, use_numpy=True)
        return subscribe(self.stream, self.socket, **kw), in_worker

    def __iter__(self):
        sub, in_worker = self._subscribe()
        try:
            names = self.columns or list(sub.columns)
            for n in names:
                if n not in sub.columns:
                    raise KeyError(f"stream '{self.stream}' has no column "
                                   f"{n!r}; it has {list(sub.columns)}")
            if self.zero_copy:
                yield from self._views(sub, names)
            else:
                yield from self._copies(sub, names, fresh=in_worker)
        finally:
            sub.close()

    def _batches(self, sub):
        n = 0
        while self.max_batches is None or n < self.max_batches:
            # A broker restart is the subscription's business (it
            # subscribes again, reconnect= seconds); BrokerGone after that
            # is an error the trainer must see, not an end of data.
            b = sub.next_batch(self.idle_timeout)
            if b is None:
                return
            n += 1
            yield b

    def _copies(self, sub, names, fresh):
        cols = {n: sub.columns[n] for n in names}
        sets = []
        if not fresh:
            for _ in range(self.buffers):
                sets.append({
                    n: torch.empty((sub.batch_size,) + c.shape,
                                   dtype=_TORCH[c.dtype.name],
                                   pin_memory=self.pin_memory)
                    for n, c in cols.items()})
            # numpy views of the same memory: np.copyto is one memcpy (or
            # one widening pass) from the mapping into the tensor.
            np_sets = [{n: t.numpy() for n, t in s.items()} for s in sets]
        for i, b in enumerate(self._batches(sub)):
            k = b.count
            if fresh:
                out = {n: torch.from_numpy(np.array(
                    b[n], dtype=_NP_OF[_TORCH[c.dtype.name]]))
                    for n, c in cols.items()}
            else:
                dst, out = np_sets[i % len(sets)], {}
                tensors = sets[i % len(sets)]
                for n in names:
                    np.copyto(dst[n][:k], b[n], casting="unsafe")
                    out[n] = tensors[n][:k]
            b.release()
            yield out

    def _views(self, sub, names):
        prev = None
        cols = {n: sub.columns[n] for n in names}
        try:
            for b in self._batches(sub):
                if prev is not None:
                    prev.release()
                out = {}
                with warnings.catch_warnings():
                    # "non-writable array": we know, see the module doc.
                    warnings.simplefilter("ignore", UserWarning)
                    for n, c in cols.items():
                        a = b[n]
                        if c.dtype.name in _SIGNED_VIEW:
                            a = a.view(_SIGNED_VIEW[c.dtype.name])
                        out[n] = torch.from_numpy(a)
                prev = b
                yield out
        finally:
            if prev is not None:
                prev.release()


_NP_OF = {torch.bool: np.bool_, torch.int8: np.int8, torch.uint8: np.uint8,
          torch.int16: np.int16, torch.int32: np.int32, torch.int64: np.int64,
          torch.float16: np.float16, torch.float32: np.float32,
          torch.float64: np.float64}
