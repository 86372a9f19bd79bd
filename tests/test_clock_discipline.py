"""CI runs at every hour of the day (issue 16): every test whose outcome could depend on the time,
the date or a time zone runs on a fixed clock. Here that is checked over the test sources
(tests/clock_scan.py finds the tests that use quiet hours, schedules, SLAs, offers, expiry...), and
the fixed clock itself is checked: a `clock`-marked test sees the configured instant."""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from tests import clock_scan
from tests.conftest import CLOCK_ENV, DEFAULT_INSTANT, LOCAL_ZONE, configured_instant

# Modules and tests left unmarked, and why. Each reason is checked below, so a stale entry fails.
# The code is given a fixed clock: `now=` instants, routing's VirtualClock, the scheduler's FakeClock.
OWN_CLOCK = {
    "tests/rules/": "the rules engine is pure: every test passes `now`",
    "tests/routing/": "the router runs on the VirtualClock the test drives",
    "tests/hub/outbound/test_quiet_hours.py": "held_until() is given its instant",
    "tests/hub/automation/test_shipped_rules.py": "the shipped rules are evaluated at a fixed NOW",
    "tests/hub/storage/test_batch_insert.py": "rows (a birthday among them) stored and read back as given",
    "tests/hub/automation/test_rules_scheduler.py::test_ten_thousand_birthdays_get_one_greeting_each_across_a_"
    "restart_mid_scan": "a Scheduler on a FakeClock at 09:00:05 in Seoul, no hub",
    "tests/hub/automation/test_rules_scheduler.py::test_a_page_another_hub_recorded_first_is_tried_once_more":
        "a Scheduler on a FakeClock at 09:00:05 in Seoul, no hub",
}
# The code under test runs in another process (a hub, a worker, a browser), on the real clock: a
# fixed clock in the test process alone would split time in two. These use relative times only.
OTHER_PROCESSES = {
    "tests/faults/": "real `omnihub serve` processes",
    "tests/console/": "Chromium keeps the real clock (cookie expiry, countdowns)",
    "tests/hub/assignment/test_routing_kill.py": "hub processes killed and restarted",
    "tests/hub/backoffice/connectors/test_file.py": "connector worker processes",
    "tests/hub/test_progress.py": "omnihub commands in a terminal (`rules replay --since 3650d` takes every row)",
}
RUNS_PROCESSES = re.compile(r"subprocess|Popen|hub_processes|HubProcesses|chromium|playwright|harness\.")
STARTS_A_HUB = re.compile(r"create_app|aiohttp_client|aiohttp_server")


def _exempt(nodeid: str) -> str | None:
    path = nodeid.split("::")[0]
    for entry, reason in {**OWN_CLOCK, **OTHER_PROCESSES}.items():
        if entry in (nodeid, path) or (entry.endswith("/") and path.startswith(entry)):
            return reason
    return None


# These tests are themselves on the fixed clock: the instant checks need it, and the scan's own
# example (a marketing send) is a time feature.
pytestmark = pytest.mark.clock


def unmarked_time_tests(paths: list[Path]) -> list[str]:
    """Each test that touches a time feature without being on the fixed clock, with what it touches."""
    found = []
    for path in paths:
        for use in clock_scan.scan(path):
            if use.features and not use.fixed_clock and _exempt(use.nodeid) is None:
                features = ", ".join(f"{name} ({text!r})" for name, text in use.features.items())
                found.append(f"{use.nodeid} uses {features}")
    return found


def test_every_test_that_touches_the_time_runs_on_the_fixed_clock():
    unmarked = unmarked_time_tests(clock_scan.all_test_modules())
    assert not unmarked, (
        "these tests depend on the time but run on the wall clock, so they pass or fail with the hour CI "
        "runs at: mark them @pytest.mark.clock (tests/conftest.py), or give the code a fixed clock and list "
        "the module in tests/test_clock_discipline.py with the reason\n  " + "\n  ".join(unmarked))


def test_the_scan_finds_a_quiet_hours_test_without_the_marker_and_accepts_it_with_it(tmp_path, monkeypatch):
    # A module like the STOP test's before its fix: its hub keeps the default quiet hours, and a
    # marketing send is expected to go out at once.
    unfixed = '''
import pytest

@pytest.fixture
async def hub(aiohttp_client, make_settings):
    return await aiohttp_client(create_app(make_settings()))

async def send(hub, **body):
    return await hub.post("/v1/messages", json=body)

async def test_start_then_marketing_goes_out(hub):
    await send(hub, channel="sms", text="50% off", purpose="marketing")

async def test_health(hub):
    assert (await hub.get("/healthz")).status == 200
'''
    module = tmp_path / "tests" / "test_promo.py"
    module.parent.mkdir()
    monkeypatch.setattr(clock_scan, "ROOT", tmp_path)
    monkeypatch.setattr(clock_scan, "TESTS", tmp_path / "tests")

    def unmarked_with(decorator: str) -> list[str]:
        module.write_text(unfixed.replace("async def test_start", f"{decorator}\nasync def test_start"), "utf-8")
        clock_scan.load.cache_clear()
        return unmarked_time_tests([module])

    try:
        [unmarked] = unmarked_with("")
        assert unmarked.startswith("tests/test_promo.py::test_start_then_marketing_goes_out uses marketing sends")
        assert unmarked_with("@pytest.mark.clock(local='12:00')") == []
        # Travelling by itself to a fixed instant (the STOP test's first fix) is a fixed clock too;
        # travelling to "now plus an hour" is not.
        assert unmarked_with("@time_machine.travel(datetime(2026, 12, 3, 3, 0, tzinfo=UTC), tick=True)") == []
        assert unmarked_with("@time_machine.travel(datetime.now(UTC) + timedelta(hours=1))") == [unmarked]
    finally:
        clock_scan.load.cache_clear()


def test_the_scan_sees_the_features_a_test_reaches_through_its_fixtures_and_helpers():
    def uses(path: str) -> dict[str, clock_scan.ClockUse]:
        return {u.nodeid.split("::")[1]: u for u in clock_scan.scan(clock_scan.TESTS / path)}

    # The rules (a module constant) reach the test through its `start_hub` fixture.
    scheduler = uses("hub/automation/test_rules_scheduler.py")
    assert "birthdays and is_today" in scheduler["test_timer_fires_once_after_its_delay_and_across_a_restart"].features
    # A schedule in a helper module the test reads (tests/rules/ten_mistakes.py).
    ingest = uses("hub/automation/test_rules_ingest.py")
    assert "rule schedules" in ingest["test_ten_kinds_of_mistakes_are_all_refused_in_one_reload_and_one_check"].features
    assert not ingest["test_vip_profile_gets_priority_and_tag"].features


@pytest.mark.parametrize("entry", sorted(OWN_CLOCK))
def test_own_clock_entries_never_read_the_wall_clock_nor_start_a_hub(entry):
    path, _, name = entry.partition("::")
    if name:  # one test: what it reaches gives the code a clock
        module = clock_scan.load(clock_scan.ROOT / path)
        assert name in module.defs, f"{entry} is listed in OWN_CLOCK but is no test"
        texts = [owner.text(node) for owner, node in clock_scan.reached(module, module.defs[name])]
        assert "clock=" in texts[0], f"{entry} gives the code no clock"
    else:
        texts = [p.read_text(encoding="utf-8") for p in clock_scan.all_test_modules()
                 if p.relative_to(clock_scan.ROOT).as_posix().startswith(path)]
        assert texts, f"{entry} is listed in OWN_CLOCK but has no test module"
    for text in texts:
        assert not clock_scan.WALL_CLOCK.search(text), f"{entry} reads the wall clock: mark it clock"
        assert not STARTS_A_HUB.search(text), f"{entry} starts a hub, whose clock it does not give: mark it clock"


@pytest.mark.parametrize("prefix", sorted(OTHER_PROCESSES))
def test_other_process_modules_do_run_other_processes(prefix):
    root = clock_scan.ROOT / prefix
    paths = sorted(root.rglob("*.py")) if prefix.endswith("/") else [root]
    assert any(RUNS_PROCESSES.search(p.read_text(encoding="utf-8")) for p in paths if p.is_file()), (
        f"{prefix} no longer runs other processes: take it out of OTHER_PROCESSES and mark its tests clock")


def test_a_marked_test_runs_at_the_configured_instant(fixed_instant):
    instant = configured_instant()
    assert fixed_instant == instant
    # The clock ticks on from the instant; a generous minute covers a slow machine.
    assert timedelta(0) <= datetime.now(UTC) - instant < timedelta(minutes=1)
    assert 0 <= time.time() - instant.timestamp() < 60
    # date.today() is in the machine's zone: the instant's date there.
    assert date.today() in {datetime.fromtimestamp(instant.timestamp() + s).date() for s in (0, 60)}


@pytest.mark.clock(local="12:00")
def test_a_marker_with_local_keeps_the_date_and_sets_the_hour_in_seoul(fixed_instant):
    here = datetime.now(LOCAL_ZONE)
    assert (here.date(), here.hour) == (configured_instant().astimezone(LOCAL_ZONE).date(), 12)
    assert fixed_instant.tzinfo == LOCAL_ZONE


async def test_the_event_loop_keeps_its_own_clock_under_the_fixed_one(traveller):
    import asyncio

    loop = asyncio.get_running_loop()
    started = loop.time()
    traveller.shift(timedelta(hours=9))  # the wall clock jumps; timeouts and waits do not
    await asyncio.sleep(0.01)
    assert loop.time() - started < 5
    assert datetime.now(UTC) - configured_instant() >= timedelta(hours=9)


def test_the_instant_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(CLOCK_ENV, "2027-03-14T12:00:00+09:00")
    assert configured_instant() == datetime(2027, 3, 14, 3, 0, tzinfo=UTC)
    monkeypatch.delenv(CLOCK_ENV)
    assert configured_instant() == datetime.fromisoformat(DEFAULT_INSTANT)
    for bad in ("2027-03-14T12:00:00", "noon"):
        monkeypatch.setenv(CLOCK_ENV, bad)
        with pytest.raises(pytest.UsageError, match=CLOCK_ENV):
            configured_instant()
