"""`expbus bench`: N producers and M subscribers against a real broker;
prints records/s, GB/s and latency percentiles and exits 0; its figures
add up (every record reaches every subscriber, or the group once)."""
import json


def test_bench_prints_rates_and_latency_and_exits_0(broker):
    r = broker.run("bench", "--pub", "2", "--sub", "2", "--count", "20000",
                   timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "2 producers, 2 subscribers" in out
    assert "Pub stats:" in out and "Sub stats:" in out
    assert "rec/s" in out and "GB/s" in out
    assert "(40000 records in" in out and "(80000 records in" in out
    lat = [x for x in out.splitlines() if x.startswith("Latency")]
    assert lat and all(p in lat[0] for p in ("p50", "p90", "p99", "max"))


def test_bench_json_counts_add_up_with_a_group(broker):
    r = broker.run("bench", "--pub", "2", "--sub", "3", "--group", "g",
                   "--count", "5000", "--size", "256", "--batch-size", "16",
                   "--json", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert d["pub"]["records"] == 10000 and d["pub"]["each"] == [5000, 5000]
    assert d["sub"]["records"] == 10000 and len(d["sub"]["each"]) == 3
    assert d["latency"]["count"] == 10000
    assert 0 < d["latency"]["p50_ns"] <= d["latency"]["p99_ns"] \
        <= d["latency"]["max_ns"]
    assert d["pub"]["records_per_s"] > 0 and d["sub"]["gb_per_s"] > 0
    assert d["record_bytes"] == 256


def test_bench_without_a_broker_exits_3(tmp_path):
    import subprocess
    from expbus_harness import expbus_exe
    r = subprocess.run([expbus_exe(), "bench", "--socket",
                        str(tmp_path / "none.sock"), "--count", "10"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "no broker socket at" in r.stderr


def test_bench_refuses_a_size_that_is_not_a_multiple_of_8(broker):
    r = broker.run("bench", "--size", "100")
    assert r.returncode == 2 and "multiple of 8" in r.stderr
