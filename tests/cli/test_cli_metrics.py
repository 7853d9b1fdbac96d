"""`expbus metrics`: /metrics over HTTP that Prometheus's own tools accept
(`promtool check metrics`, no lint warning), scraped by Debian's real
prometheus while `expbus pub` runs, with a counter read back through its
HTTP API equal to `expbus stat --json`; the alert rules under
deploy/prometheus pass `promtool check rules` and their unit tests; the
systemd unit verifies."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from expbus_harness import ROOT, expbus_exe

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
RULES = ROOT / "deploy" / "prometheus"
need_promtool = pytest.mark.skipif(not PROMTOOL, reason="promtool missing "
                                   "(apt-get install prometheus)")


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def start_metrics(broker):
    """`expbus metrics` on a free loopback port; returns (proc, url)."""
    p = broker.start("metrics", "--listen", "127.0.0.1:0")
    line = p.stdout.readline()
    assert "serving http://127.0.0.1:" in line, line + p.stderr.read()
    return p, line.split()[-1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_serves_the_exposition_text_and_broker_up(broker):
    proc, url = start_metrics(broker)
    status, ctype, body = get(url)
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    assert "expbus_broker_up 1\n" in body
    assert "# TYPE expbus_stream_records_total counter" in body
    with pytest.raises(urllib.error.HTTPError) as e:
        get(url.replace("/metrics", "/nope"))
    assert e.value.code == 404
    req = urllib.request.Request(url, data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405


def test_metrics_says_when_the_broker_is_down(broker):
    proc, url = start_metrics(broker)
    assert "expbus_broker_up 1\n" in get(url)[2]
    broker.proc.send_signal(signal.SIGTERM)
    assert broker.proc.wait(timeout=20) == 0
    body = get(url)[2]
    assert "expbus_broker_up 0\n" in body
    assert "expbus_stream_records_total" not in body


def test_metrics_refuses_a_bad_listen_address(broker):
    r = broker.run("metrics", "--listen", "nohostport")
    assert r.returncode == 2 and "HOST:PORT" in r.stderr


@need_promtool
def test_endpoint_passes_promtool_check_metrics_without_lint(broker,
                                                             finish):
    pub = broker.start("pub", "--stream", "lint", "-n", "2", "--count", "0",
                       "--rate", "2000", "--duration", "30")
    broker.wait_for(lambda st: st["streams"], "the stream")
    sub = broker.start("check", "--stream", "lint", "--group", "g",
                       "--lossy", "--idle-ms", "0", "--duration", "30")
    broker.wait_subscriptions(1)
    proc, url = start_metrics(broker)
    body = get(url)[2]
    for family in ("expbus_subscription_dropped_records_total",
                   "expbus_subscription_batches_total",
                   "expbus_subscription_lag_seconds",
                   "expbus_producer_ring_occupancy_ratio",
                   "expbus_protocol_violations_total"):
        assert f"# TYPE {family} " in body
    assert 'group="g"' in body and 'policy="lossy"' in body
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=body,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "" and r.stderr.strip() == "", \
        "lint: " + r.stdout + r.stderr


@need_promtool
def test_alert_rules_pass_promtool_check_rules():
    r = subprocess.run([PROMTOOL, "check", "rules",
                        str(RULES / "expbus.rules.yml")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 6 rules found" in r.stdout


@need_promtool
def test_every_alert_rule_has_a_passing_unit_test():
    rules = (RULES / "expbus.rules.yml").read_text()
    tests = (RULES / "expbus.rules.test.yml").read_text()
    names = [x.split(":", 1)[1].strip() for x in rules.splitlines()
             if x.strip().startswith("- alert:")]
    assert len(names) == 6
    for n in names:
        assert tests.count(f"alertname: {n}\n") >= 2, \
            f"{n}: a firing and a quiet case"
    r = subprocess.run([PROMTOOL, "test", "rules", "expbus.rules.test.yml"],
                       cwd=RULES, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(not PROMETHEUS, reason="prometheus missing "
                    "(apt-get install prometheus)")
def test_real_prometheus_scrapes_counters_equal_to_stat(broker, tmp_path,
                                                        finish):
    proc, url = start_metrics(broker)
    target = urllib.parse.urlparse(url).netloc
    port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {RULES / 'expbus.rules.yml'}\n"
        "scrape_configs:\n  - job_name: expbus\n"
        f"    static_configs:\n      - targets: ['{target}']\n")
    log = open(tmp_path / "prometheus.log", "wb")
    prom = subprocess.Popen(
        [PROMETHEUS, f"--config.file={cfg}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api/v1/"

    def query(q):
        try:
            d = json.loads(get(api + "query?query=" +
                               urllib.parse.quote(q))[2])
        except (urllib.error.URLError, ConnectionError):
            return None
        assert d["status"] == "success", d
        return d["data"]["result"]

    def wait_query(q, pred, what, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            res = query(q)
            if res is not None and pred(res):
                return res
            assert time.monotonic() < deadline, \
                f"never: {what}: {res}\n" + \
                (tmp_path / "prometheus.log").read_text()[-3000:]
            time.sleep(0.5)

    try:
        wait_query('up{job="expbus"}',
                   lambda r: r and r[0]["value"][1] == "1",
                   "prometheus scrapes expbus metrics")
        sub = broker.start("check", "--stream", "prom", "--idle-ms", "0",
                           "--duration", "60", "--wait-ms", "20000")
        pub = broker.start("pub", "--stream", "prom", "-n", "2", "--count",
                           "6000", "--rate", "2000", "--wait-subs", "1",
                           "--wait-ms", "20000")
        # While pub runs, Prometheus sees the counter grow.
        wait_query('expbus_stream_records_total{stream="prom"}',
                   lambda r: r and 0 < float(r[0]["value"][1]) < 12000,
                   "a scrape while pub runs")
        assert finish(pub)[0] == 0
        st = broker.wait_for(
            lambda s: s["streams"] and s["streams"][0]["records_in"] ==
            12000 and s["subscriptions"] and
            s["subscriptions"][0]["delivered"] == 12000, "all delivered")
        want = st["streams"][0]["records_in"]
        res = wait_query('expbus_stream_records_total{stream="prom"}',
                         lambda r: r and float(r[0]["value"][1]) == want,
                         f"records_total == stat's {want}")
        assert res[0]["metric"]["job"] == "expbus"
        sid = str(st["subscriptions"][0]["id"])
        delivered = st["subscriptions"][0]["delivered"]
        res = wait_query(
            'expbus_subscription_delivered_records_total{stream="prom"}',
            lambda r: r and float(r[0]["value"][1]) == delivered,
            "delivered == stat's")
        assert res[0]["metric"]["subscription"] == sid
        assert res[0]["metric"]["policy"] == "lossless"
        # The rules loaded and none fires on a healthy bus.
        rules = json.loads(get(api + "rules")[2])["data"]["groups"]
        assert len(rules[0]["rules"]) == 6
        assert query("ALERTS") == []
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=20)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
        log.close()


@pytest.mark.skipif(not shutil.which("systemd-analyze"),
                    reason="systemd-analyze missing")
def test_metrics_systemd_unit_verifies(tmp_path):
    unit = (ROOT / "systemd" / "expbus-metrics.service").read_text()
    assert "--listen 127.0.0.1:" in unit and "IPAddressDeny=any" in unit
    path = tmp_path / "expbus-metrics.service"
    path.write_text(unit.replace("/usr/local/bin/expbus", expbus_exe()))
    r = subprocess.run(["systemd-analyze", "verify", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
