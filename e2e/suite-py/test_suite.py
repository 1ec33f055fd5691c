"""Unit tests of the suite's pure parts: python3 -m unittest discover -s e2e/suite"""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure as M  # noqa: E402
import report  # noqa: E402


def pod(uid, ready, restarts=0, deleting=False):
    return {"uid": uid, "ready": ready, "restarts": restarts, "deleting": deleting}


class Measure(unittest.TestCase):
    def test_first_ready_after_delete(self):
        h = [(0, {"pg": pod("a", True)}), (1000, {}), (1500, {"pg": pod("b", False)}),
             (4000, {"pg": pod("b", True)})]
        self.assertEqual(M.first_ready_after_down(h, 500), 4000)
        # before the kill it was ready: that must not count
        self.assertIsNone(M.first_ready_after_down(h[:1], 500))

    def test_first_ready_after_container_restart(self):
        h = [(0, {"pg": pod("a", True)}), (1200, {"pg": pod("a", False, 1)}),
             (3000, {"pg": pod("a", True, 1)})]
        self.assertEqual(M.first_ready_after_down(h, 1000), 3000)

    def test_stable_ready_needs_hold(self):
        three = {n: pod(n, True) for n in "abc"}
        two = dict(three, c=pod("c", False))
        h = [(0, three), (1000, two), (1500, three), (2000, two), (3000, three)]
        self.assertEqual(M.first_stable_ready(h, 500, 3, end_ms=10000, hold_ms=2000), 3000)
        self.assertEqual(M.first_stable_ready(h, 0, 3, end_ms=10000, hold_ms=500), 0)

    def test_restart_delta(self):
        before = {"x": pod("a", True, 1), "y": pod("b", True, 0)}
        after = {"x": pod("a", True, 3), "z": pod("c", True, 1)}
        self.assertEqual(M.restart_delta(before, after), (3, 1))

    def test_times(self):
        self.assertEqual(M.parse_time_ms("1970-01-01T00:00:01Z"), 1000)
        self.assertEqual(M.parse_time_ms("1970-01-01T00:00:01.234567Z"), 1234)
        self.assertEqual(M.event_time_ms({"eventTime": "1970-01-01T00:00:02.5Z"}), 2500)
        self.assertEqual(M.event_time_ms({"series": {"lastObservedTime": "1970-01-01T00:00:03Z"},
                                          "eventTime": "1970-01-01T00:00:02Z"}), 3000)

    def test_first_success_after_outage(self):
        outs = [{"start_unix_ms": 100, "end_unix_ms": 300},
                {"start_unix_ms": 900, "end_unix_ms": 4000}]
        self.assertEqual(M.first_success_after_outage(outs, 1000, 0.003), 3.0)
        self.assertEqual(M.first_success_after_outage(outs[:1], 1000, 0.003), 0.003)
        self.assertIsNone(M.first_success_after_outage([{"start_unix_ms": 900, "end_unix_ms": None}], 1000, 0.1))

    def test_percentile(self):
        self.assertEqual(M.percentile([3, 1, 2, 4, 5, 6, 7, 8, 9, 10], 50), 5)
        self.assertEqual(M.percentile(list(range(1, 11)), 95), 10)
        self.assertIsNone(M.percentile([], 50))


class Report(unittest.TestCase):
    def doc(self):
        run = {"passed": True, "pg_ready_s": 3.2, "mcp_ready_s": 4.0, "first_success_s": 3.5,
               "errors": 7, "longest_outage_s": 3.9, "acked_writes": 400, "lost_acked_writes": 0,
               "mcp_pod_restarts": 0, "remediation_actions": 0, "operator_restarts": 0,
               "kill_unix_ms": 5000, "bucket_ms": 1000,
               "timeline": [{"t_unix_ms": 1000 * i, "ok": 10 if i < 5 or i > 8 else 0,
                             "err": 3 if 5 <= i <= 8 else 0} for i in range(20)],
               "checks": [{"name": "no acknowledged write lost", "ok": True, "detail": ""}]}
        bad = dict(run, passed=False, checks=[{"name": "x", "ok": False, "detail": "why"}])
        return {"passed": False, "meta": {"duration_s": 1.0},
                "scenarios": [report.scenario_summary("S1", "kill", [run]),
                              report.scenario_summary("S3", "repeat", [run, bad])]}

    def test_outputs(self):
        d = self.doc()
        self.assertEqual(d["scenarios"][1]["p50_first_success_s"], 3.5)
        md = report.markdown(d)
        self.assertIn("| S1 kill | 1 | pass |", md)
        self.assertIn("S3 run 2: x: why", md)
        svg = report.svg(d)
        self.assertTrue(svg.startswith("<svg") and svg.rstrip().endswith("</svg>"))
        self.assertIn("kill", svg)
        import xml.dom.minidom
        xml.dom.minidom.parseString(svg)  # well-formed


if __name__ == "__main__":
    unittest.main()
