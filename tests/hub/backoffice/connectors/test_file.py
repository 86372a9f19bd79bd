"""The file connector as a real process: 10,000 events into rotated fixed-width files, exactly once
across a SIGKILL, each file complete with its trailer count; a record the layout cannot hold is
dead-lettered, and replayed once the layout is widened."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from hub.backoffice.connectors import records
from hub.backoffice.connectors.records import FieldSpec, RecordError
from tests.hub.backoffice.connectors import harness

BURST = 10_000
FIELDS = [{"name": "event_id", "source": "id", "width": 36},
          {"name": "customer", "source": "data.profile_id", "width": 12},
          {"name": "name", "source": "data.display_name", "width": 20},
          {"name": "n", "source": "data.n", "width": 6, "align": "right", "pad": "0"}]
WIDTH = 36 + 12 + 20 + 6


def _target(tmp_path: Path, **more) -> dict:
    return {"dir": str(tmp_path / "drop"), "format": "fixed", "fields": FIELDS, "header": True,
            "rotate_records": 1000, "rotate_seconds": 0.3, **more}


def _sealed(drop: Path) -> dict[str, list[bytes]]:
    return {p.name: p.read_bytes().split(b"\n")[:-1] for p in sorted(drop.glob("*.dat"))}


def _records_in(files: dict[str, list[bytes]]) -> int:
    return sum(len(lines) - 2 for lines in files.values())  # less the header and the trailer


def test_burst_is_written_exactly_once_across_a_sigkill(names, tmp_path, amqp_url):
    config = names("file", _target(tmp_path))
    drop = Path(config["target"]["dir"])
    events = [harness.cloud_event(n) for n in range(BURST)]
    harness.publish(amqp_url, config["events_exchange"], events)
    worker = harness.WorkerProcess("file", config, tmp_path)
    worker.start()
    try:
        harness.wait_for(lambda: drop.exists() and len(list(drop.glob("*.dat"))) >= 3, 60, "three files", worker)
        worker.kill9()
        assert _records_in(_sealed(drop)) < BURST, "the worker finished before it was killed"
        worker.start()
        harness.wait_for(lambda: _records_in(_sealed(drop)) >= BURST, 90, "every record in sealed files", worker)
    finally:
        worker.stop()
    files = _sealed(drop)
    seen: list[str] = []
    layout = [FieldSpec(**f) for f in FIELDS]
    for name, lines in files.items():
        header, *body, trailer = lines
        assert header.startswith(b"H") and len(header) == WIDTH, name
        assert trailer == records.control_record("T", len(body), WIDTH), name  # the control count matches
        for line in body:
            event_id, customer, display, n = records.parse_fixed_width(layout, line, "utf-8")
            number = int(n or "0")  # zero-padded: 0 reads back as ""
            assert customer == f"p-{number:06d}" and display == f"Customer {number}"
            seen.append(event_id)
    assert len(seen) == BURST and set(seen) == {e[0] for e in events}
    assert not list((drop / ".omnihub-work").glob("*.part")), "the last file was not sealed"


def test_record_too_wide_is_dead_lettered_then_replayed_after_widening(names, tmp_path, amqp_url):
    config = names("filepoison", _target(tmp_path, rotate_records=50))
    drop = Path(config["target"]["dir"])
    events = [harness.cloud_event(n) for n in range(100)]
    long_name = harness.cloud_event(100, display_name="A name far too long for twenty bytes")
    events.insert(40, long_name)
    harness.publish(amqp_url, config["events_exchange"], events)
    worker = harness.WorkerProcess("file", config, tmp_path)
    env = {"OMNIHUB_AMQP_URL": amqp_url, "OMNIHUB_BACKOFFICE__DEAD_QUEUE": config["dead_queue"]}
    worker.start()
    try:
        harness.wait_for(lambda: _records_in(_sealed(drop)) == 100, 30, "every good record", worker)
        harness.wait_for(lambda: harness.queue_depth(amqp_url, config["dead_queue"]) == 1, 30, "the dead letter")
        shown = harness.dlq("show", long_name[0], env=env)
        letter = json.loads(shown.stdout)
        assert letter["reason"] == "unwritable" and "do not fit in 20" in letter["error"]
        assert letter["body"]["data"]["display_name"] == "A name far too long for twenty bytes"
        worker.stop()
        config["target"]["fields"] = [*FIELDS[:2], {**FIELDS[2], "width": 40}, FIELDS[3]]  # the layout is widened
        worker.write(config)
        worker.start()
        assert harness.dlq("replay", "--id", long_name[0], env=env).returncode == 0
        harness.wait_for(lambda: _records_in(_sealed(drop)) == 101, 30, "the replayed record", worker)
    finally:
        worker.stop()
    wide = [line for lines in _sealed(drop).values() for line in lines if long_name[0].encode() in line]
    assert len(wide) == 1


# --- the record formatter, property-tested -------------------------------------------------------

_values = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12)
_spec = st.builds(FieldSpec, name=st.just("f"), source=st.just("x"), width=st.integers(1, 40),
                  align=st.sampled_from(["left", "right"]), pad=st.sampled_from([" ", "0", "_"]))


@given(st.lists(st.tuples(_spec, _values), min_size=1, max_size=6))
def test_fixed_width_record_has_the_layout_width_and_reads_back(pairs):
    specs = [s for s, _ in pairs]
    values = [v for _, v in pairs]
    fits = all(len(v.encode()) <= s.width for s, v in pairs)
    try:
        record = records.fixed_width(specs, values, "utf-8")
    except RecordError:
        assert not fits
        return
    assert fits and len(record) == sum(s.width for s in specs)
    back = records.parse_fixed_width(specs, record, "utf-8")
    for spec, value, read in zip(specs, values, back, strict=True):
        # The pad is stripped on the padded side, so a value ending (or, right-aligned, starting)
        # with the pad character reads back without it: the layout's documented ambiguity.
        stripped = value.rstrip(spec.pad) if spec.align == "left" else value.lstrip(spec.pad)
        assert read == stripped


@given(st.lists(st.text(max_size=20), min_size=1, max_size=6))
def test_csv_record_reads_back(values):
    line = records.csv_record(values, ",", "utf-8")
    assert line.endswith(b"\n")
    back = records.parse_csv(line, ",", "utf-8")
    # csv writes one empty field as "" and reads it back as a row of one empty string
    assert back == [values] or (values == [""] and back == [[""]])


def test_multibyte_widths_count_bytes():
    spec = FieldSpec(name="name", source="x", width=6)
    assert records.fixed_width([spec], ["김민"], "utf-8") == "김민".encode()  # 6 bytes, no pad
    assert records.fixed_width([spec], ["김"], "cp949") == "김".encode("cp949") + b"    "
    try:
        records.fixed_width([spec], ["김민지"], "utf-8")
    except RecordError as exc:
        assert "9 bytes do not fit in 6" in str(exc)
    else:
        raise AssertionError("overflow not refused")


def test_a_restart_removes_a_file_opened_by_a_worker_killed_before_its_ledger_named_it(tmp_path):
    """Killed between writing a new file's header and recording it in the ledger: the file holds
    nothing committed, so the next start removes it; the file the ledger names is kept."""
    from hub.backoffice.connectors.file import FileTarget, FileTargetConfig
    from hub.backoffice.connectors.worker import Event

    config = FileTargetConfig(dir=tmp_path / "drop", format="fixed", fields=FIELDS, header=True,
                              rotate_records=1000)
    target = FileTarget(config)
    body = {"id": "e-1", "data": {"profile_id": "p-000001", "display_name": "Customer 1", "n": 1}}
    target.write([Event("e-1", "profile.updated", json.dumps(body).encode(), body)])
    named = next(target.work.glob("*.part"))
    target.close()
    orphan = target.work / "omnihub_20261123000000_000009.dat.part"
    orphan.write_bytes(b"H" + b" " * (WIDTH - 1) + b"\n")
    FileTarget(config).close()
    assert sorted(p.name for p in target.work.glob("*.part")) == [named.name]
