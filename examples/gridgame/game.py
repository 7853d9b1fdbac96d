#!/usr/bin/python3
"""game.py — "Gather", a small grid game, and a game process that plays it
with an epsilon-greedy policy and writes every transition to expbus through
the producer binding. The policy is the trainer's Q-network, reloaded from
the weights file whenever the trainer saves a new one.

Gather: an agent on a SIZE x SIZE grid moves up, down, left or right (into
a wall: it stays). Stepping onto the coin scores +1 and a new coin appears
on another cell. An episode is TURNS turns. Observation: two planes, the
agent's cell and the coin's cell, f32[2,SIZE,SIZE]."""
import argparse
import os
import sys
import time

import numpy as np

SIZE = 5
TURNS = 30
ACTIONS = 4  # up, down, left, right
MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])
SCHEMA = (f"obs f32[2,{SIZE},{SIZE}]; action i32; reward f32; "
          f"next_obs f32[2,{SIZE},{SIZE}]; ret f32")
STREAM = "gather"


class Gather:
    def __init__(self, rng, size=SIZE, turns=TURNS):
        self.rng, self.size, self.turns = rng, size, turns
        self.reset()

    def reset(self):
        cells = self.rng.choice(self.size * self.size, 2, replace=False)
        self.agent = np.array(divmod(int(cells[0]), self.size))
        self.coin = np.array(divmod(int(cells[1]), self.size))
        self.turn = 0
        return self.obs()

    def obs(self):
        o = np.zeros((2, self.size, self.size), np.float32)
        o[0, self.agent[0], self.agent[1]] = 1
        o[1, self.coin[0], self.coin[1]] = 1
        return o

    def step(self, action):
        """Returns (next observation, reward, done)."""
        self.agent = np.clip(self.agent + MOVES[action], 0, self.size - 1)
        reward = 0.0
        if (self.agent == self.coin).all():
            reward = 1.0
            while (self.coin == self.agent).all():
                self.coin = self.rng.integers(0, self.size, 2)
        self.turn += 1
        return self.obs(), reward, self.turn >= self.turns


def q_values(weights, obs):
    """The trainer's MLP (see trainer.py) in numpy: obs [2,S,S] -> [4]."""
    h = np.maximum(obs.reshape(-1) @ weights["w1"] + weights["b1"], 0)
    return h @ weights["w2"] + weights["b2"]


def epsilon(train_steps, start=1.0, end=0.05, decay_steps=1500):
    return max(end, start - (start - end) * train_steps / decay_steps)


def random_policy_return(episodes=2000, seed=1):
    """Average episode reward of the uniformly random policy."""
    rng = np.random.default_rng(seed)
    g, total = Gather(rng), 0.0
    for _ in range(episodes):
        g.reset()
        done = False
        while not done:
            _, r, done = g.step(int(rng.integers(ACTIONS)))
            total += r
    return total / episodes


class Policy:
    """Epsilon-greedy over the latest saved weights (random until the
    trainer saved some)."""

    def __init__(self, path, rng):
        self.path, self.rng = path, rng
        self.weights, self.mtime, self.eps = None, None, 1.0

    def refresh(self):
        try:
            m = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return
        if m != self.mtime:
            try:
                with np.load(self.path) as f:
                    self.weights = {k: f[k] for k in f.files}
                self.mtime = m
                self.eps = epsilon(int(self.weights["steps"]))
            except (OSError, ValueError, KeyError):
                pass  # being replaced: next episode

    def act(self, obs):
        if self.weights is None or self.rng.random() < self.eps:
            return int(self.rng.integers(ACTIONS))
        return int(np.argmax(q_values(self.weights, obs)))


def play(socket, game_id, weights, rate, stop_after=None):
    """Plays episodes for ever (or stop_after seconds), writing each turn's
    transition; the last turn of an episode carries RECORD_DONE and the
    episode's reward in ret."""
    from expbus import RECORD_DONE, BrokerGone
    from expbus.producer import Producer

    rng = np.random.default_rng(game_id)
    game, policy = Gather(rng), Policy(weights, rng)
    t_end = None if stop_after is None else time.monotonic() + stop_after
    with Producer(STREAM, SCHEMA, socket) as prod:
        t0, steps = time.monotonic(), 0
        while t_end is None or time.monotonic() < t_end:
            policy.refresh()
            obs, ret, done = game.reset(), 0.0, False
            while not done:
                a = policy.act(obs)
                nxt, r, done = game.step(a)
                ret += r
                try:
                    prod.write(obs=obs, action=a, reward=r, next_obs=nxt,
                               ret=ret, game=game_id, turn=game.turn - 1,
                               flags=RECORD_DONE if done else 0)
                except BrokerGone:
                    return
                obs = nxt
            steps += game.turns
            # Leave the CPU to the trainer: at most `rate` turns a second.
            ahead = steps / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--socket", required=True)
    ap.add_argument("--game-id", type=int, default=0)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--rate", type=float, default=1500,
                    help="turns per second at most (default 1500)")
    a = ap.parse_args()
    try:
        play(a.socket, a.game_id, a.weights, a.rate)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
