"""`expbus stat --prometheus` parses as the Prometheus text exposition
format (version 0.0.4), checked by a small strict parser, and follows the
naming conventions: _total counters, base units, HELP and TYPE first."""
import re

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"'
VALUE = r"(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?Inf|NaN)"
SAMPLE = re.compile(r"^(%s)(?:\{(.*)\})? (%s)(?: -?\d+)?$" % (NAME, VALUE))


def unescape(v):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n"
                  else m.group(1), v)


def parse_labels(text):
    labels, pos = {}, 0
    while pos < len(text):
        m = re.compile(LABEL).match(text, pos)
        assert m, f"bad labels at {text[pos:]!r}"
        assert m.group(1) not in labels, f"label {m.group(1)} twice"
        labels[m.group(1)] = unescape(m.group(2))
        pos = m.end()
        if pos < len(text):
            assert text[pos] == ",", f"expected ',' in {text!r}"
            pos += 1
    return labels


def parse(text):
    """Returns {family: {"type", "help", "samples": [(labels, value)]}};
    fails on anything the format does not allow."""
    families, current, seen_done = {}, None, set()
    assert text.endswith("\n"), "the last line ends with a line feed"
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, name, rest = line[2:6], *line[7:].split(" ", 1)
            assert re.fullmatch(NAME, name), name
            if name != current:
                assert name not in seen_done, f"{name} split in two groups"
                if current:
                    seen_done.add(current)
                current = name
                families[name] = {"samples": []}
            fam = families[name]
            assert not fam["samples"], f"{kind} after samples of {name}"
            assert kind.lower() not in fam, f"two {kind} lines for {name}"
            if kind == "TYPE":
                assert rest in ("counter", "gauge", "histogram", "summary",
                                "untyped"), rest
            fam[kind.lower()] = rest
            continue
        assert not line.startswith("#") or line.startswith("# "), line
        if line.startswith("#") or not line.strip():
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name = m.group(1)
        assert name == current, f"{name} outside its family {current}"
        labels = parse_labels(m.group(2) or "")
        key = tuple(sorted(labels.items()))
        assert key not in {tuple(sorted(l.items()))
                           for l, _ in families[name]["samples"]}, line
        families[name]["samples"].append((labels, float(m.group(3))))
    return families


def test_prometheus_output_parses_and_follows_the_conventions(
        broker, finish):
    producers, records = 2, 5000
    sub = broker.start("check", "--group", "g1", "--idle-ms", "5000",
                       "--wait-ms", "20000")
    pub = broker.start("pub", "-n", str(producers), "--count", str(records),
                       "--wait-subs", "1", "--json")
    rc, out, err = finish(pub)
    assert rc == 0, err
    broker.wait_for(lambda s: s["subscriptions"] and
                    s["subscriptions"][0]["delivered"] == producers * records,
                    "all delivered")
    r = broker.run("stat", "--prometheus")
    assert r.returncode == 0, r.stderr
    fams = parse(r.stdout)
    js = broker.stat()

    for name, fam in fams.items():
        assert name.startswith("expbus_"), name
        assert "type" in fam and "help" in fam, name
        if fam["type"] == "counter":
            assert name.endswith("_total"), name
        else:
            assert not name.endswith("_total"), name
        assert not re.search(r"_(ms|milliseconds|bytes_per|kb|mb|gb)", name)

    def one(name, **want):
        got = [v for l, v in fams[name]["samples"]
               if all(l.get(k) == str(x) for k, x in want.items())]
        assert len(got) == 1, (name, want, fams[name]["samples"])
        return got[0]

    (s,) = js["subscriptions"]
    sid = s["id"]
    assert one("expbus_unclaimed_records_total") == js["unclaimed"]
    assert one("expbus_stream_records_total", stream="demo") == \
        producers * records
    assert one("expbus_subscription_delivered_records_total",
               subscription=sid, group="g1", stream="demo") == s["delivered"]
    assert one("expbus_subscription_delivered_bytes_total",
               subscription=sid) == s["delivered_bytes"]
    assert one("expbus_subscription_dropped_records_total", subscription=sid,
               reason="ring_full") == 0
    assert one("expbus_subscription_dropped_records_total", subscription=sid,
               reason="subscriber_gone") == 0
    batches = sum(one("expbus_subscription_batches_total", subscription=sid,
                      reason=r) for r in ("full", "timeout", "drain"))
    assert batches == s["published"]
    assert fams["expbus_subscription_lag_seconds"]["type"] == "gauge"
    assert fams["expbus_producer_ring_occupancy_ratio"]["type"] == "gauge"
    assert fams["expbus_producer_records_total"]["type"] == "counter"
    sub.kill()


def test_the_parser_rejects_what_the_format_does_not_allow():
    good = ('# HELP a_total x\n# TYPE a_total counter\n'
            'a_total{l="q\\"\\\\\\n"} 1\n')
    assert parse(good)["a_total"]["samples"][0][0] == {"l": 'q"\\\n'}
    for bad in ['a{l="x} 1\n', 'a{l="x"} one\n', 'a 1',
                '# TYPE a counter\n# TYPE a counter\na 1\n',
                'a{l="\\x"} 1\n', '# TYPE a bogus\na 1\n']:
        try:
            parse(bad)
        except AssertionError:
            continue
        raise AssertionError(f"accepted {bad!r}")
