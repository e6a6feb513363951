"""The LVS-DR director pair end to end (the `make demo` scenario, pair_lab.py), with
assertions: our daemon on dirA and dirB (conf/director-a.conf and director-b.yaml,
adapted to the lab), nginx real servers, a client sending a request every 75 ms.

The scenario runs once for the module; each test checks one promise of it:
traffic balanced; a stopped real server out of the table within its check timing, no
new request to it while out and requests again once back; dirB takes the VIP within
the master-down interval after `kill -9` of dirA's daemon; no failed request outside
the windows where the configuration allows them; a keep-alive connection opened
through dirA is in dirB's connection table (sync) before the failover and answers
through dirB after it; dirA preempts on its return.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pair_lab import SITE, PairScenario, ScenarioError, Verdict, pair_scenario, verdicts

STOPPED_AT: list[str] = []  # the step that did not happen, if one did not


@pytest.fixture(scope="module")
def pair() -> Iterator[PairScenario]:
    STOPPED_AT.clear()
    with pair_scenario(say=print) as scenario:
        try:
            scenario.start_directors()
            scenario.balance()
            scenario.stop_real_server(SITE[0])
            scenario.restart_real_server(SITE[0])
            scenario.open_keepalive()
            scenario.kill_director("dirA", "dirB")
            scenario.return_director("dirA", "dirB")
        except ScenarioError as error:  # what ran before it is still checked
            STOPPED_AT.append(str(error))
            for name, daemon in scenario.daemons.items():
                print(f"--- {name}'s daemon log\n{daemon.output()[-6000:]}")
        finally:
            scenario.finish()
        yield scenario


@pytest.fixture(scope="module")
def results(pair: PairScenario) -> dict[str, Verdict]:
    return verdicts(pair)


def check(results: dict[str, Verdict], name: str) -> None:
    assert name in results, f"the scenario stopped before {name!r}: {STOPPED_AT}"
    assert results[name].ok, results[name].text


def test_traffic_is_balanced_across_the_real_servers(results) -> None:
    check(results, "balanced")


def test_a_stopped_real_server_leaves_within_its_check_timing_and_comes_back(
        pair: PairScenario, results) -> None:
    check(results, "removed")
    check(results, "no_requests_while_out")
    check(results, "back")
    assert pair.report.back_seconds is not None
    assert pair.report.back_seconds <= pair.report.timing.check_bound


def test_the_backup_takes_the_vip_within_the_master_down_interval(results) -> None:
    check(results, "takeover")


def test_no_failed_request_outside_the_failover_windows(pair: PairScenario, results) -> None:
    assert not STOPPED_AT, STOPPED_AT
    check(results, "no_failures_outside_windows")
    # The windows are narrow: most of the run had to carry traffic.
    answered = [r for r in pair.traffic.records if r.server is not None]
    assert len(answered) > 0.9 * len(pair.traffic.records)


def test_an_established_connection_survives_the_failover_through_connection_sync(
        pair: PairScenario, results) -> None:
    check(results, "synced")
    entry = pair.report.keepalive_synced
    assert entry is not None and entry.state == "ESTABLISHED"
    assert entry.destination.startswith(
        next(rs.front for rs in pair.lab.dr if rs.name == pair.report.keepalive_server))
    # asked only once the client's ARP entry for the VIP pointed at dirB
    assert pair.report.client_on_b_at is not None
    check(results, "keepalive")


def test_director_a_takes_the_vip_back_when_it_returns(pair: PairScenario, results) -> None:
    check(results, "returned")
    assert pair.report.keepalive_after_return == pair.report.keepalive_server
