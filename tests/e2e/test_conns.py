# SPDX-License-Identifier: GPL-2.0-or-later
"""Unit tests of hanatlab.conns, the long-lived connection tool: its accounting with a fake
clock, and client and server together on loopback (port 0) with a planted reset and a
planted stall. Run: cd tests/e2e && python3 -m unittest -v test_conns"""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

from hanatlab import connkeep, conns

MS = 1_000_000


def load(path):
    with open(path) as f:
        return json.load(f)


class ConnStatsTest(unittest.TestCase):
    def run_conn(self, echo_delays_ms, interval_ms=50):
        """A connection established at 0 that sends every interval_ms; echo i arrives
        echo_delays_ms[i] after its send (None: never). Echoes are delivered in order."""
        st = conns.ConnStats(0)
        st.on_established(0, ["198.19.0.11", 40000])
        events = []
        for i, d in enumerate(echo_delays_ms):
            events.append((i * interval_ms * MS, "send", i))
            if d is not None:
                events.append(((i * interval_ms + d) * MS, "echo", i))
        for t, kind, seq in sorted(events, key=lambda e: (e[0], e[1] == "send")):
            if kind == "send":
                st.on_send(seq, t)
            else:
                self.assertIsNone(st.on_echo(seq, t))
        return st

    def test_steady_connection_survives(self):
        st = self.run_conn([2] * 20)
        st.finish(20 * 50 * MS, 1000 * MS)
        r = st.report()
        self.assertEqual(r["outcome"], "survived")
        self.assertEqual((r["sent"], r["echoed"], r["unanswered"]), (20, 20, 0))
        self.assertEqual(r["max_echo_ms"], 2.0)
        self.assertEqual(r["max_silence_ms"], 50.0)  # the send interval is its floor
        self.assertEqual(r["seen_as"], ["198.19.0.11", 40000])

    def test_planted_stall_is_the_longest_echo_wait(self):
        # Message 5's echo is held 300 ms; the five after it queue behind it (in order).
        delays = [2] * 20
        delays[5:11] = [300, 250, 200, 150, 100, 50]
        st = self.run_conn(delays)
        st.finish(20 * 50 * MS, 1000 * MS)
        r = st.report()
        self.assertEqual(r["outcome"], "survived")
        self.assertEqual(r["max_echo_ms"], 300.0)
        self.assertEqual(r["max_silence_ms"], 300.0 + 50 - 2)

    def test_planted_reset_counts_the_unanswered_wait(self):
        st = self.run_conn([2] * 10 + [None] * 3)
        # The RST comes 120 ms after the first unanswered send (message 10 at 500 ms).
        st.on_reset(620 * MS, "Connection reset by peer", wall_ns=123)
        st.finish(2000 * MS, 1000 * MS)  # no effect: the outcome is decided
        r = st.report()
        self.assertEqual(r["outcome"], "reset")
        self.assertEqual(r["error"], "Connection reset by peer")
        self.assertEqual(r["unanswered"], 3)
        self.assertEqual(r["max_echo_ms"], 120.0)
        self.assertEqual(r["reset_wall_ns"], 123)

    def test_open_but_silent_at_the_end_is_stalled(self):
        st = self.run_conn([2] * 10 + [None] * 30)
        st.finish(40 * 50 * MS, 1000 * MS)  # message 10 (sent at 500 ms) waited 1.5 s
        r = st.report()
        self.assertEqual(r["outcome"], "stalled")
        self.assertEqual(r["max_echo_ms"], 1500.0)

    def test_recent_unanswered_message_is_not_a_stall(self):
        st = self.run_conn([2] * 10 + [None])
        st.finish(10 * 50 * MS + 5 * MS, 1000 * MS)
        self.assertEqual(st.report()["outcome"], "survived")

    def test_never_established(self):
        st = conns.ConnStats(3)
        st.on_reset(5 * MS, "Connection refused")
        self.assertEqual(st.report()["outcome"], "connect_failed")
        st2 = conns.ConnStats(4)
        st2.finish(5 * MS, 1000 * MS)
        self.assertEqual(st2.report()["outcome"], "connect_failed")

    def test_out_of_order_echo_is_an_error(self):
        st = conns.ConnStats(0)
        st.on_established(0)
        st.on_send(0, 0)
        st.on_send(1, 50 * MS)
        self.assertIn("where 0 was expected", st.on_echo(1, 60 * MS))
        self.assertIn("never sent", conns.ConnStats(1).on_echo(0, 0))

    def test_summary(self):
        reports = []
        for i, (outcome, echo, seen) in enumerate([
                ("survived", 3.0, "198.19.0.11"), ("survived", 150.0, "198.19.0.11"),
                ("reset", 40.0, "198.19.0.11"), ("stalled", 2000.0, "198.19.0.12"),
                ("connect_failed", 0.0, None)]):
            reports.append({"index": i, "outcome": outcome, "max_echo_ms": echo,
                            "max_silence_ms": echo + 50, "error": "x" if outcome in (
                                "reset", "connect_failed") else None,
                            "seen_as": [seen, 1000 + i] if seen else None,
                            "reset_wall_ns": 10 + i if outcome == "reset" else None})
        s = conns.summarize(reports, stall_ms=100)
        self.assertEqual((s["count"], s["survived"], s["reset"], s["stalled"],
                          s["connect_failed"]), (5, 2, 1, 1, 1))
        self.assertEqual(s["over_stall"], 2)
        self.assertEqual(s["max_echo_ms"], 2000.0)
        self.assertEqual(s["seen_as"], {"198.19.0.11": 3, "198.19.0.12": 1})
        self.assertEqual(s["first_reset_wall_ns"], 12)
        self.assertEqual(s["errors"], {"x": 2})
        self.assertEqual(conns.summary_line(s),
                         "5 connections: 2 survived, 1 reset, 1 stalled, 1 not connected; "
                         "longest echo wait 2000 ms, 2 over 100 ms; server saw 198.19.0.11 "
                         "x3, 198.19.0.12 x1")
        empty = conns.summarize([])
        self.assertEqual(empty["count"], 0)
        self.assertIn("longest echo wait -", conns.summary_line(empty))


class LoopbackTest(unittest.TestCase):
    """Client and server in one process on 127.0.0.1, port 0, stepped alternately."""

    def test_planted_reset_and_stall(self):
        with tempfile.TemporaryDirectory() as d:
            log = open(os.path.join(d, "events.log"), "w", buffering=1)
            srv = conns.Server("127.0.0.1", log, plant={1: ("reset", 0.3),
                                                         2: ("stall", 0.3, 0.5)})
            cl = conns.Client("127.0.0.1", srv.port, 5, interval_s=0.05, run=7)
            cl.open_all()
            deadline = time.monotonic() + 5
            while cl.pending() and time.monotonic() < deadline:
                cl.step(0.005)
                srv.step(0.005)
            self.assertEqual(cl.established(), 5)
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                cl.step(0.005)
                srv.step(0.005)
            reports = cl.stop(linger_s=0.5)
            for _ in range(20):  # the server reads the clients' FINs
                srv.step(0.01)
            srv.close()
            log.close()
            by = {r["index"]: r for r in reports}
            self.assertEqual(by[1]["outcome"], "reset", by[1])
            self.assertEqual(by[1]["error"], "Connection reset by peer")
            self.assertEqual(by[2]["outcome"], "survived", by[2])
            self.assertGreaterEqual(by[2]["max_echo_ms"], 450.0)
            for i in (0, 3, 4):
                self.assertEqual(by[i]["outcome"], "survived", by[i])
                self.assertLess(by[i]["max_echo_ms"], by[2]["max_echo_ms"])
                self.assertGreater(by[i]["echoed"], 10)
            for r in reports:
                self.assertEqual(r["seen_as"][0], "127.0.0.1")
                self.assertEqual(r["seen_as"][1], r["local"][1])
            events = conns.read_server_log(os.path.join(d, "events.log"), run=7)
            hellos = {e["index"]: e["peer"] for e in events if e["event"] == "hello"}
            self.assertEqual(hellos, {r["index"]: r["seen_as"] for r in reports})
            closed = {e["index"]: e["how"] for e in events if e["event"] == "closed"}
            self.assertEqual(closed[1], "planted reset")
            self.assertEqual({closed[i] for i in (0, 2, 3, 4)}, {"eof"})

    def test_cli_end_to_end(self):
        """serve + client --duration as processes: the ready file, the report, the line."""
        here = os.path.dirname(os.path.abspath(__file__))
        with tempfile.TemporaryDirectory() as d:
            env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
            srv = subprocess.Popen([sys.executable, "-m", "hanatlab.conns", "serve",
                                    "--address", "127.0.0.1", "--ready", f"{d}/srv.json",
                                    "--log", f"{d}/events.log"], cwd=here, env=env)
            try:
                end = time.monotonic() + 10
                while not os.path.exists(f"{d}/srv.json") and time.monotonic() < end:
                    time.sleep(0.02)  # pacing of the deadline poll for the ready file
                port = load(f"{d}/srv.json")["port"]
                cp = subprocess.run([sys.executable, "-m", "hanatlab.conns", "client",
                                     "--dst", "127.0.0.1", "--port", str(port), "--count",
                                     "20", "--duration", "1", "--ready", f"{d}/ready.json",
                                     "--report", f"{d}/report.json"], cwd=here, env=env,
                                    capture_output=True, text=True, timeout=30)
                self.assertEqual(cp.returncode, 0, cp.stderr)
                self.assertTrue(cp.stdout.startswith("20 connections: 20 survived, 0 reset"),
                                cp.stdout)
                self.assertEqual(load(f"{d}/ready.json")["established"], 20)
                rep = load(f"{d}/report.json")
                self.assertEqual(rep["summary"]["survived"], 20)
                self.assertEqual(rep["summary"]["seen_as"], {"127.0.0.1": 20})
                bad = subprocess.run([sys.executable, "-m", "hanatlab.conns", "client",
                                      "--dst", "127.0.0.1", "--port", "0"], cwd=here,
                                     env=env, capture_output=True, text=True, timeout=30)
                self.assertEqual(bad.returncode, 2)
                self.assertIn("--port 0: must be in [1, 65535]", bad.stderr)
            finally:
                srv.terminate()
                srv.wait(timeout=10)


class FakeLab:
    def nat(self, k):
        return {"public_address": f"198.19.0.1{k}"}


def scenario_result(kept, name="drain"):
    """A connkeep scenario result as today's lab gives it (kept=False) or as the target
    wants it (kept=True)."""
    n = connkeep.COUNT
    r = {"established": n, "before": {"198.19.0.11": n}, "route_moved_ms": 150.0,
         "new_source": "198.19.0.12", "count": n, "survived": n if kept else 0,
         "reset": 0 if kept else n, "stalled": 0, "over_stall": 0,
         "max_echo_ms": 40.0, "line": "..", "nat1_controller_running": True,
         "first_reset_ms": None if kept else 218.0, "last_reset_ms": None if kept else 245.0,
         "probe": {} if kept else {"midstream_from_taker": n, "rst_to_taker": n,
                                   "taker_rst_to_private": n}}
    if name == "stop":
        r.update(clients_closed_ms=3300.0, controller_exit_ms=3400.0 if kept else 20.0)
    if name == "failback" and kept:
        r.update(handover_ended_s=0.4, nat1_handover={
            "nat1_sending": [{"member": "i-2", "phase": "ended", "ended": "no flows left",
                              "flows_acked": n}],
            "nat2_steering": []})
    if name == "spot":
        half = dict(r, count=n // 2, survived=n // 2 if kept else 0,
                    reset=0 if kept else n // 2, first_reset_ms=None if kept else 2373.0,
                    last_reset_ms=None if kept else 2458.0)
        long_ = dict(half, survived=0, reset=n // 2,
                     first_reset_ms=8100.0 if kept else 2373.0,
                     last_reset_ms=8200.0 if kept else 2458.0)
        r.update(short=half, long=long_, termination_ms=8000.0,
                 route_moved_ms=2300.0)
    return r


class ExpectationsTest(unittest.TestCase):
    """The switch between today's behaviour and issue 20's target: each mode passes its own
    result and fails the other's, so neither set of checks is vacuous."""

    def failed(self, name, result, keep):
        return [w for w, ok, _ in connkeep.expectations(name, result, FakeLab(), keep=keep)
                if not ok]

    def test_each_mode_accepts_its_result_and_rejects_the_other(self):
        for name in ("drain", "failback", "spot", "stop", "cut"):
            with self.subTest(name=name):
                today, target = scenario_result(False, name), scenario_result(True, name)
                self.assertEqual(self.failed(name, today, keep=False), [])
                self.assertEqual(self.failed(name, target, keep=True), [])
                self.assertTrue(self.failed(name, today, keep=True))
                self.assertTrue(self.failed(name, target, keep=False))

    def test_target_rejects_a_stall_and_the_wrong_new_source(self):
        r = scenario_result(True)
        r["over_stall"] = 1
        self.assertEqual(self.failed("drain", r, keep=True),
                         [f"none stalled more than {connkeep.STALL_MS} ms"])
        r = scenario_result(True)
        r["new_source"] = "198.19.0.11"
        self.assertEqual(len(self.failed("drain", r, keep=True)), 1)

    def test_failback_target_rejects_a_handover_that_never_ended(self):
        end = ("nat1 sent nat2 its connections (acknowledged) and ended the handover within "
               f"{connkeep.END_WAIT_S} s of the clients closing them; nat2 steers nothing any "
               "more, nat1 still runs")
        r = scenario_result(True, "failback")
        r["handover_ended_s"] = None
        self.assertEqual(self.failed("failback", r, keep=True), [end])
        r = scenario_result(True, "failback")
        r["nat1_handover"]["nat1_sending"][0]["flows_acked"] = 0
        self.assertEqual(self.failed("failback", r, keep=True), [end])

    def test_spot_target_rejects_a_reset_before_the_termination(self):
        r = scenario_result(True, "spot")
        r["long"]["first_reset_ms"] = 2400.0
        self.assertEqual(self.failed("spot", r, keep=True),
                         ["the rest ended at the termination, not before"])


class BenchTableTest(unittest.TestCase):
    """bench/failover/run.py --connections: its table of medians over repetitions."""

    def test_conn_table(self):
        import importlib.util
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench",
                            "failover", "run.py")
        spec = importlib.util.spec_from_file_location("failover_run", path)
        run = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(run)
        runs = [dict(scenario_result(False), scenario="drain", controller="hanat-default",
                     new_source_nat="nat2", route_moved_ms=ms, first_reset_ms=ms + 60)
                for ms in (100.0, 150.0, 400.0)]
        runs[1]["survived"], runs[1]["reset"] = 5, 195
        runs.append({"scenario": "drain", "controller": "keepalived", "error": "not ready"})
        text = run.conn_table(runs, ["drain"], ["hanat-default", "keepalived"])
        lines = text.splitlines()
        self.assertEqual(len(lines), 4, text)
        self.assertEqual(lines[2], "| drain | hanat-default | 3 | 200 | 0 (0-5) | 200 | 0 | 40 "
                                   "| 150 | 210 | nat2 x3 |")
        self.assertTrue(lines[3].startswith("| drain | keepalived | 0 (1 errors) |"), lines[3])


if __name__ == "__main__":
    unittest.main()
