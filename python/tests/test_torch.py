"""expbus.torch.ExperienceDataset: copies into reused tensors by default,
views with zero_copy, works under DataLoader (num_workers 0 and 2)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

from expbus.torch import ExperienceDataset  # noqa: E402
from reader_helpers import finish, pattern_data  # noqa: E402

import expbus  # noqa: E402


def test_copies_each_batch_once_and_releases_it(broker):
    pub = broker.pub("--stream", "t", "--count", "1000", "--wait-subs", "1")
    ds = ExperienceDataset("t", broker.socket, batch_size=100, wait=5,
                           idle_timeout=1.0)
    seen, ptrs = [], set()
    for batch in DataLoader(ds, batch_size=None, num_workers=0):
        obs = batch["obs"]
        assert obs.shape == (100, 8, 8) and obs.dtype == torch.float32
        assert batch["game"].dtype == torch.int64  # u32 widened
        ptrs.add(obs.data_ptr())
        seq = batch["seq"].numpy()
        want = pattern_data(0, seq, 264)[:, :256].copy().view(np.float32)
        assert obs.numpy().reshape(100, -1).tobytes() == want.tobytes()
        obs.mul_(2)  # in place is safe: this is our own memory
        seen += list(seq)
    assert seen == list(range(1000))
    assert len(ptrs) == 2  # two reused buffers, rotating
    assert finish(pub)[0] == 0


def test_zero_copy_yields_views_of_the_mapping(broker):
    pub = broker.pub("--stream", "z", "--count", "300", "--wait-subs", "1")
    ds = ExperienceDataset("z", broker.socket, zero_copy=True,
                           columns=["obs", "seq"], batch_size=100, wait=5,
                           max_batches=3)
    it = iter(ds)
    b0 = next(it)
    assert set(b0) == {"obs", "seq"}
    with open("/proc/self/maps") as f:
        addr = b0["obs"].data_ptr()
        assert any("expbus-batch-ring" in l for l in f
                   if int(l.split()[0].split("-")[0], 16) <= addr
                   < int(l.split()[0].split("-")[1], 16))
    assert list(b0["seq"][:3]) == [0, 1, 2]
    b1 = next(it)
    assert int(b1["seq"][0]) == 100
    b2 = next(it)
    assert int(b2["seq"][-1]) == 299
    with pytest.raises(StopIteration):
        next(it)
    del b0, b1, b2, it
    assert finish(pub)[0] == 0


def test_two_workers_share_the_records_without_duplicates(broker):
    pub = broker.pub("--stream", "w", "--count", "4000", "--games", "8",
                     "--episode-len", "50", "--wait-subs", "2")
    ds = ExperienceDataset("w", broker.socket, batch_size=50, max_delay=0.02,
                           wait=5, idle_timeout=1.5, columns=["seq", "game"])
    seqs = []
    for batch in DataLoader(ds, batch_size=None, num_workers=2):
        seqs += batch["seq"].tolist()
    assert sorted(seqs) == list(range(4000))
    assert finish(pub)[0] == 0


def test_unknown_column_is_named(broker):
    pub = broker.pub("--stream", "u", "--count", "10")
    assert finish(pub)[0] == 0
    ds = ExperienceDataset("u", broker.socket, columns=["nope"])
    with pytest.raises(KeyError, match="nope"):
        next(iter(ds))
