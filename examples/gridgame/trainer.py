#!/usr/bin/python3
"""trainer.py — a DQN that learns Gather from the games' transitions,
read through expbus.torch.ExperienceDataset, and saves its Q-network where
the games reload it (weights.npz, replaced atomically).

It prints, as it goes, the average episode reward of the last N episodes
the games finished (from the records flagged RECORD_DONE) next to the
random policy's."""
import collections
import os
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

import game as G
from expbus import RECORD_DONE
from expbus.torch import ExperienceDataset


class QNet(nn.Module):
    def __init__(self, inputs=2 * G.SIZE * G.SIZE, hidden=128):
        super().__init__()
        self.l1, self.l2 = nn.Linear(inputs, hidden), nn.Linear(hidden, G.ACTIONS)

    def forward(self, obs):
        return self.l2(torch.relu(self.l1(obs.flatten(1))))

    def numpy_weights(self):
        """The layout game.q_values reads."""
        return {"w1": self.l1.weight.detach().numpy().T.copy(),
                "b1": self.l1.bias.detach().numpy().copy(),
                "w2": self.l2.weight.detach().numpy().T.copy(),
                "b2": self.l2.bias.detach().numpy().copy()}


class Replay:
    """A ring of transitions in preallocated tensors."""

    def __init__(self, capacity):
        obs = (capacity, 2, G.SIZE, G.SIZE)
        self.obs, self.next = torch.zeros(obs), torch.zeros(obs)
        self.action = torch.zeros(capacity, dtype=torch.int64)
        self.reward, self.done = torch.zeros(capacity), torch.zeros(capacity)
        self.capacity, self.n, self.pos = capacity, 0, 0

    def add(self, b):
        k = len(b["action"])
        idx = (torch.arange(k) + self.pos) % self.capacity
        self.obs[idx], self.next[idx] = b["obs"], b["next_obs"]
        self.action[idx] = b["action"].long()
        self.reward[idx] = b["reward"]
        self.done[idx] = ((b["flags"] & RECORD_DONE) != 0).float()
        self.pos = (self.pos + k) % self.capacity
        self.n = min(self.n + k, self.capacity)

    def sample(self, k):
        i = torch.randint(0, self.n, (k,))
        return self.obs[i], self.action[i], self.reward[i], self.next[i], self.done[i]


def save(net, steps, path):
    tmp = path + ".tmp.npz"
    np.savez(tmp, steps=np.int64(steps), **net.numpy_weights())
    os.replace(tmp, path)  # a game never reads half a file


def train(socket, weights, seconds=60.0, window=100, stop_at=None,
          report_every=2.0, gamma=0.9, lr=1e-3, batch=128, out=sys.stdout):
    """Trains until `seconds` pass (or the last `window` episodes average
    `stop_at`). Returns (average of the last window episodes, random
    policy's average, episodes seen)."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    random_avg = G.random_policy_return()
    net, target = QNet(), QNet()
    target.load_state_dict(net.state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    replay = Replay(50000)
    returns = collections.deque(maxlen=window)
    episodes = steps = records = 0
    save(net, steps, weights)
    ds = ExperienceDataset(G.STREAM, socket, batch_size=64, max_delay=0.02,
                           wait=10, idle_timeout=5.0,
                           columns=["obs", "action", "reward", "next_obs",
                                    "ret", "flags"])
    t0 = last = time.monotonic()
    print(f"random policy: {random_avg:.2f} reward per episode "
          f"({G.TURNS}-turn episodes on a {G.SIZE}x{G.SIZE} grid)",
          file=out, flush=True)
    avg = 0.0
    for b in DataLoader(ds, batch_size=None, num_workers=0):
        replay.add(b)
        records += len(b["action"])
        done = (b["flags"] & RECORD_DONE) != 0
        for r in b["ret"][done].tolist():
            returns.append(r)
            episodes += 1
        # A few gradient steps per batch of 64 new transitions.
        for _ in range(2 if replay.n >= 1000 else 0):
            o, a, r, o2, d = replay.sample(batch)
            with torch.no_grad():
                y = r + gamma * (1 - d) * target(o2).max(1).values
            q = net(o).gather(1, a[:, None]).squeeze(1)
            loss = nn.functional.smooth_l1_loss(q, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if steps % 200 == 0:
                target.load_state_dict(net.state_dict())
            if steps % 50 == 0:
                save(net, steps, weights)
        now = time.monotonic()
        avg = sum(returns) / len(returns) if returns else 0.0
        if now - last >= report_every:
            last = now
            print(f"t={now - t0:5.1f}s records={records:7d} train_steps="
                  f"{steps:5d} epsilon={G.epsilon(steps):.2f} episodes="
                  f"{episodes:5d}  avg reward (last {len(returns)}): "
                  f"{avg:5.2f}  random: {random_avg:.2f}", file=out, flush=True)
        if now - t0 >= seconds:
            break
        if stop_at is not None and len(returns) == window and avg >= stop_at:
            break
    return avg, random_avg, episodes
