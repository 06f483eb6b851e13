# SPDX-License-Identifier: GPL-2.0-or-later
"""Unit tests of the lab's pure parts (no namespaces, no moto): stream analysis, the
fabric's route decision, the hanat.toml writer. Run: python3 -m unittest -v test_hanatlab
(from tests/e2e)."""

import os
import tempfile
import tomllib
import unittest

from hanatlab import config, fabric, traffic

MS = 1_000_000
A, B = "198.19.0.11", "198.19.0.12"


def stream(seqs_sources, period_ms=5, latency_ms=1, t0=1_000 * MS):
    """Packets (seq, sent, recv, src) for the given (seq, src) pairs at period_ms."""
    return [(s, t0 + s * period_ms * MS, t0 + (s * period_ms + latency_ms) * MS, src)
            for s, src in seqs_sources]


def summary(n, period_ms=5, t0=1_000 * MS):
    return {"attempted": n, "sent": n, "first_send_ns": t0,
            "last_send_ns": t0 + (n - 1) * period_ms * MS}


class AnalyseTest(unittest.TestCase):
    def test_failover_gap_and_sources(self):
        # 0..99 via A, 100..139 lost, 140..199 via B.
        pk = stream([(s, A) for s in range(100)] + [(s, B) for s in range(140, 200)])
        r = traffic.analyse(pk, summary(200))
        self.assertEqual(r["sent"], 200)
        self.assertEqual(r["received"], 160)
        self.assertEqual(r["lost"], 40)
        self.assertAlmostEqual(r["max_gap_ms"], 41 * 5, places=3)
        self.assertEqual((r["source_before"], r["source_after"]), (A, B))
        self.assertEqual(r["switches"], 1)
        self.assertEqual(r["switch_gaps"][0]["gap_ms"], 205.0)
        self.assertEqual([s["source"] for s in r["sources"]], [A, B])
        self.assertEqual(r["gap_end_ns"] - r["gap_start_ns"], 205 * MS)

    def test_no_loss_gap_is_the_period(self):
        r = traffic.analyse(stream([(s, A) for s in range(50)]), summary(50))
        self.assertEqual(r["lost"], 0)
        self.assertAlmostEqual(r["max_gap_ms"], 5.0)
        self.assertEqual(r["switches"], 0)
        self.assertEqual(r["switch_gaps"], [])

    def test_outage_at_the_end_is_not_hidden(self):
        # The stream stops arriving at seq 20 and never recovers before the sender stops.
        r = traffic.analyse(stream([(s, A) for s in range(20)]), summary(100))
        self.assertEqual(r["lost"], 80)
        self.assertAlmostEqual(r["max_gap_ms"], (99 * 5) - (19 * 5 + 1))
        self.assertEqual(r["source_before"], A)
        self.assertIsNone(r["source_after"])

    def test_outage_at_the_start_is_not_hidden(self):
        r = traffic.analyse(stream([(s, B) for s in range(60, 100)]), summary(100))
        self.assertAlmostEqual(r["max_gap_ms"], 60 * 5 + 1)
        self.assertIsNone(r["source_before"])
        self.assertEqual(r["source_after"], B)

    def test_nothing_arrived(self):
        r = traffic.analyse([], summary(10))
        self.assertEqual(r["received"], 0)
        self.assertEqual(r["lost"], 10)
        self.assertAlmostEqual(r["max_gap_ms"], 45.0)

    def test_duplicates_and_reordering(self):
        pk = stream([(0, A), (1, A), (2, A)])
        pk.append((1, pk[1][1], pk[2][2] + MS, A))  # late duplicate of 1
        r = traffic.analyse(pk, summary(3))
        self.assertEqual(r["duplicates"], 1)
        self.assertEqual(r["reordered"], 1)
        self.assertEqual(r["received"], 3)
        self.assertEqual(r["lost"], 0)

    def test_flapping_sources_are_runs(self):
        pk = stream([(0, A), (1, B), (2, A), (3, A)])
        r = traffic.analyse(pk, summary(4))
        self.assertEqual([s["source"] for s in r["sources"]], [A, B, A])
        self.assertEqual(r["switches"], 2)
        self.assertEqual(r["sources"][2]["packets"], 2)

    def test_analyse_cli(self):
        import contextlib
        import io
        import json
        with tempfile.TemporaryDirectory() as d:
            sink, summ = os.path.join(d, "sink"), os.path.join(d, "summary.json")
            with open(sink, "w") as f:
                for seq, sent, recv, src in stream([(0, A), (1, A), (5, B)]):
                    f.write(f"3 {seq} {sent} {recv} {src} 4000\n")
            with open(summ, "w") as f:
                json.dump(summary(6), f)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                rc = traffic.main(["analyse", "--sink-log", sink, "--stream", "3",
                                   "--summary", summ])
            r = json.loads(out.getvalue())
        self.assertEqual(rc, 0)
        self.assertEqual((r["lost"], r["max_gap_ms"], r["source_after"]), (3, 20.0, B))

    def test_read_sink_filters_stream_and_skips_torn_line(self):
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write(f"7 0 100 200 {A} 4000\n8 0 100 200 {B} 4000\n7 1 105 205 {A} 4000\n7 2 1")
        try:
            self.assertEqual(traffic.read_sink(f.name, 7),
                             [(0, 100, 200, A), (1, 105, 205, A)])
        finally:
            os.unlink(f.name)


def rt(rid, routes, subnets=(), main=False):
    assoc = [{"SubnetId": s} for s in subnets] + ([{"Main": True}] if main else [])
    return {"RouteTableId": rid, "Routes": routes, "Associations": assoc}


TARGETS = {"eni-1": ("nat1", "198.18.101.11"), "i-1": ("nat1", "198.18.101.11"),
           "eni-2": ("nat2", "198.18.102.12"), "i-2": ("nat2", "198.18.102.12")}
LOCAL = {"DestinationCidrBlock": "198.18.0.0/16", "GatewayId": "local", "State": "active"}


def default(**target):
    return dict({"DestinationCidrBlock": "0.0.0.0/0", "State": "active"}, **target)


class DecideTest(unittest.TestCase):
    def test_eni_and_instance_targets(self):
        tables = [rt("rtb-a", [LOCAL, default(NetworkInterfaceId="eni-2")], ["sn-a"]),
                  rt("rtb-b", [LOCAL, default(InstanceId="i-1")], ["sn-b"])]
        d = fabric.decide(tables, ["sn-a", "sn-b"], TARGETS, set())
        self.assertEqual(d["sn-a"], ("198.18.102.12", "eni-2", "nat2", "rtb-a"))
        self.assertEqual(d["sn-b"], ("198.18.101.11", "i-1", "nat1", "rtb-b"))

    def test_no_route_blackhole_override_unknown(self):
        tables = [rt("rtb-a", [LOCAL], ["sn-a"]),
                  rt("rtb-b", [LOCAL, default(NetworkInterfaceId="eni-1", State="blackhole")],
                     ["sn-b"]),
                  rt("rtb-c", [LOCAL, default(NetworkInterfaceId="eni-2")], ["sn-c"]),
                  rt("rtb-d", [LOCAL, default(NatGatewayId="nat-0abc")], ["sn-d"])]
        d = fabric.decide(tables, ["sn-a", "sn-b", "sn-c", "sn-d"], TARGETS, {"eni-2"})
        self.assertEqual(d["sn-a"], (None, None, None, "rtb-a"))
        self.assertEqual(d["sn-b"], (None, "eni-1", None, "rtb-b"))
        self.assertEqual(d["sn-c"], (None, "eni-2", None, "rtb-c"))
        self.assertEqual(d["sn-d"], (None, "nat-0abc", None, "rtb-d"))

    def test_main_table_applies_to_unassociated_subnets(self):
        tables = [rt("rtb-main", [LOCAL, default(NetworkInterfaceId="eni-1")], main=True),
                  rt("rtb-a", [LOCAL, default(NetworkInterfaceId="eni-2")], ["sn-a"])]
        d = fabric.decide(tables, ["sn-a", "sn-x"], TARGETS, set())
        self.assertEqual(d["sn-a"][2], "nat2")
        self.assertEqual(d["sn-x"], ("198.18.101.11", "eni-1", "nat1", "rtb-main"))

    def test_no_table_at_all(self):
        self.assertEqual(fabric.decide([], ["sn-a"], TARGETS, set())["sn-a"],
                         (None, None, None, None))


class DecideEnisTest(unittest.TestCase):
    NATS = {"i-1": ("nat1", "eni-1"), "i-2": ("nat2", "eni-2")}

    def test_secondary_enis_follow_their_attachment(self):
        nis = [{"NetworkInterfaceId": "eni-1", "PrivateIpAddress": "198.18.101.11",
                "Attachment": {"InstanceId": "i-1", "Status": "attached"}},
               {"NetworkInterfaceId": "eni-f", "PrivateIpAddress": "198.18.101.50",
                "Attachment": {"InstanceId": "i-2", "Status": "attached"}},
               {"NetworkInterfaceId": "eni-g", "PrivateIpAddress": "198.18.101.60",
                "Attachment": {"InstanceId": "i-2", "Status": "detaching"}},
               {"NetworkInterfaceId": "eni-h", "PrivateIpAddress": "198.18.101.70"},
               {"NetworkInterfaceId": "eni-x", "PrivateIpAddress": "198.18.101.80",
                "Attachment": {"InstanceId": "i-other", "Status": "attached"}}]
        self.assertEqual(fabric.decide_enis(nis, self.NATS),
                         {"198.18.101.50": "nat2", "198.18.101.60": None,
                          "198.18.101.70": None, "198.18.101.80": None},
                         "primary ENIs are left alone; detaching, free or foreign: on no NAT")


class DecideEipsTest(unittest.TestCase):
    NATS = [{"name": "nat1", "eni_id": "eni-1", "private_address": "198.18.101.11",
             "public_address": "198.19.0.11"},
            {"name": "nat2", "eni_id": "eni-2", "private_address": "198.18.102.12",
             "public_address": "198.19.0.12"}]
    ZONES = [{"zone_letter": "a", "allocation_id": "eipalloc-a", "lab_address": "198.19.1.101"},
             {"zone_letter": "b", "allocation_id": "eipalloc-b", "lab_address": "198.19.1.102"}]

    def test_primary_secondary_and_unassociated(self):
        addrs = [{"AllocationId": "eipalloc-a", "NetworkInterfaceId": "eni-2",
                  "PrivateIpAddress": "198.18.102.12"},
                 {"AllocationId": "eipalloc-b", "NetworkInterfaceId": "eni-2",
                  "PrivateIpAddress": "198.18.102.12"}]
        # moto shows the primary IP; the proxy's record says zone a's went to a secondary.
        rec = {"eipalloc-a": {"eni-1": "198.18.101.50", "eni-2": "198.18.102.77"},
               "eipalloc-b": {"eni-2": "198.18.102.12"}}
        d = fabric.decide_eips(self.ZONES, addrs, rec, self.NATS)
        self.assertEqual(d, {"a": ("nat2", "198.18.102.77", "198.18.102.77"),
                             "b": ("nat2", "198.18.102.12", "198.19.0.12")})
        script = fabric.eip_script(self.ZONES, d)
        self.assertIn("ip saddr 198.18.102.77 ip saddr set 198.19.1.101", script)
        self.assertIn("ip daddr 198.19.1.101 ip daddr set 198.18.102.77", script)
        self.assertIn("ip saddr 198.19.0.12 ip saddr set 198.19.1.102", script)
        self.assertIn("ip daddr 198.19.1.102 ip daddr set 198.19.0.12", script)
        self.assertNotIn("snat", script, "stateless, as EC2's internet gateway")
        # The EIP back on eni-1: the private IP last named for eni-1 counts, not eni-2's.
        addrs[0]["NetworkInterfaceId"] = "eni-1"
        d = fabric.decide_eips(self.ZONES, addrs, rec, self.NATS)
        self.assertEqual(d["a"], ("nat1", "198.18.101.50", "198.18.101.50"))
        # Nothing named for an ENI (an association recorded for another ENI only, or one
        # made before the proxy ran): the ENI's primary IP, as moto shows.
        addrs[1]["NetworkInterfaceId"] = "eni-1"
        d = fabric.decide_eips(self.ZONES, addrs, rec, self.NATS)
        self.assertEqual(d["b"], ("nat1", "198.18.101.11", "198.19.0.11"))
        d = fabric.decide_eips(self.ZONES, [{"AllocationId": "eipalloc-a",
                                             "NetworkInterfaceId": ""}], {}, self.NATS)
        self.assertEqual(d, {"a": None, "b": None})
        self.assertNotIn("set", fabric.eip_script(self.ZONES, d))


DESC = {
    "group": "lab", "region": "us-east-1", "agent_port": 4790,
    "vpc": {"cidr": "198.18.0.0/16"},
    "api": {"endpoint": "http://198.19.254.1:5000"},
    "credentials": {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "s\"e\\cret"},
    "internet": {"address": "198.19.0.1", "tcp_port": 4242},
}
NAT = {"private_address": "198.18.101.11", "interfaces": {"public": "pub"},
       "imds": {"endpoint": "http://169.254.169.254"}}


class ConfigTest(unittest.TestCase):
    def test_render_parses_back(self):
        text = config.render(config.nat_sections(DESC, NAT, "/tmp/x/hanatd.sock"))
        c = tomllib.loads(text)
        self.assertEqual(c["group"]["name"], "lab")
        self.assertEqual(c["agent"]["listen_address"], "198.18.101.11")
        self.assertEqual(c["nat"]["egress_interface"], "pub")
        self.assertEqual(c["nat"]["source_cidrs"], ["198.18.0.0/16"])
        self.assertEqual(c["ec2"]["endpoint"], "http://198.19.254.1:5000")
        self.assertEqual(c["ec2"]["credentials"], "static")
        self.assertEqual(c["ec2"]["secret_access_key"], "s\"e\\cret")
        self.assertEqual(c["egress"]["targets"], ["198.19.0.1:4242"])
        self.assertEqual(c["status"]["socket"], "/tmp/x/hanatd.sock")
        self.assertEqual(c["status"]["state_directory"], "/tmp/x/state")
        self.assertIs(c["failover"]["preempt"], True)

    def test_overrides_merge_and_remove(self):
        text = config.render(config.nat_sections(
            DESC, NAT, "/s", {"probe": {"interval": "50ms", "fall": None},
                              "failover": {"move_eip": True}, "metrics": {"interval": "1s"}}))
        c = tomllib.loads(text)
        self.assertEqual(c["probe"]["interval"], "50ms")
        self.assertNotIn("fall", c["probe"])
        self.assertEqual(c["probe"]["rise"], 5)
        self.assertIs(c["failover"]["move_eip"], True)
        self.assertEqual(c["metrics"]["interval"], "1s")

    def test_instance_role_credentials_have_no_keys(self):
        c = tomllib.loads(config.render(config.nat_sections(DESC, NAT, "/s",
                                                           credentials="instance-role")))
        self.assertEqual(c["ec2"]["credentials"], "instance-role")
        self.assertNotIn("access_key_id", c["ec2"])
        self.assertNotIn("secret_access_key", c["ec2"])
        with self.assertRaisesRegex(ValueError, "credentials='env'"):
            config.nat_sections(DESC, NAT, "/s", credentials="env")

    def test_dict_is_an_inline_table(self):
        text = config.render({"failover": {"eips": {"us-east-1a": "eipalloc-1", "b": "x"}}})
        self.assertIn('eips = { "us-east-1a" = "eipalloc-1", "b" = "x" }', text)

    def test_bad_override_is_named(self):
        with self.assertRaisesRegex(ValueError, r"\[probe\] interval"):
            config.render(config.nat_sections(DESC, NAT, "/s", {"probe": {"interval": 1.5}}))
        with self.assertRaisesRegex(ValueError, r"override \[probe\]"):
            config.nat_sections(DESC, NAT, "/s", {"probe": "fast"})


class Ec2ProxyTest(unittest.TestCase):
    def test_config_endpoint_is_the_proxy_when_there_is_one(self):
        d = dict(DESC, ec2_proxy={"endpoint": "http://198.19.254.1:6000"})
        self.assertEqual(config.nat_sections(d, NAT, "/s")["ec2"]["endpoint"],
                         "http://198.19.254.1:6000")
        self.assertEqual(config.nat_sections(DESC, NAT, "/s")["ec2"]["endpoint"],
                         "http://198.19.254.1:5000")

    def test_action_from_form_body_or_query(self):
        from hanatlab import ec2proxy
        self.assertEqual(ec2proxy.action_of("/", b"Version=2016-11-15&Action=ReplaceRoute"),
                         "ReplaceRoute")
        self.assertEqual(ec2proxy.action_of("/?Action=DescribeTags&x=1", b""), "DescribeTags")
        self.assertIsNone(ec2proxy.action_of("/", b"Version=1"))

    def test_route_detail_names_the_table_and_target(self):
        from hanatlab import ec2proxy
        self.assertEqual(
            ec2proxy.route_detail("/", b"Action=ReplaceRoute&RouteTableId=rtb-1&"
                                  b"DestinationCidrBlock=0.0.0.0%2F0&NetworkInterfaceId=eni-9"),
            {"route_table": "rtb-1", "destination": "0.0.0.0/0", "target": "eni-9"})
        self.assertEqual(ec2proxy.route_detail("/?Action=DeleteRoute&RouteTableId=rtb-2", b""),
                         {"route_table": "rtb-2"})
        self.assertEqual(ec2proxy.route_detail("/", b"Action=DescribeRouteTables"), {})
        self.assertEqual(ec2proxy.route_detail("/", b"Version=1"), {})

    def test_public_map_rewrites_whole_addresses_and_the_length(self):
        from hanatlab import ec2proxy
        body = (b"<ipAddress>127.0.0.3</ipAddress><association><publicIp>127.0.0.3"
                b"</publicIp></association><privateIpAddress>127.0.0.35</privateIpAddress>")
        reply = (b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        out = ec2proxy.rewrite_public(reply, {"127.0.0.3": "198.19.1.11"})
        head, _, new = out.partition(b"\r\n\r\n")
        self.assertEqual(new.count(b">198.19.1.11<"), 2)
        self.assertIn(b">127.0.0.35<", new)  # only whole element texts
        self.assertIn(f"Content-Length: {len(new)}".encode(), head)
        self.assertEqual(head.lower().count(b"content-length"), 1)
        chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        self.assertEqual(ec2proxy.rewrite_public(chunked, {"hello": "x"}), chunked)

    def test_association_is_recorded_before_moto_commits_it(self):
        """The fabric that sees the EIP on the new ENI must find its private IP recorded:
        the record is there while moto handles the request, and undone if moto refuses."""
        import json
        import socket
        from hanatlab import ec2proxy
        with tempfile.TemporaryDirectory() as d:
            state = os.path.join(d, "eip-state.json")
            proxy = ec2proxy.Proxy("127.0.0.1:9", os.path.join(d, "control.json"),
                                   os.path.join(d, "proxy.log"), eip_state=state)
            seen = []

            def fake_moto(status):
                def forward(conn, head, body, skew=None, public_map=None):
                    with open(state) as f:
                        seen.append(json.load(f))
                    return status
                return forward

            def associate(private_ip, status):
                proxy.forward = fake_moto(status)
                body = ("Action=AssociateAddress&AllocationId=eipalloc-a&NetworkInterfaceId="
                        f"eni-2&PrivateIpAddress={private_ip}").encode()
                with socket.create_server(("127.0.0.1", 0)) as ls:
                    c = socket.create_connection(ls.getsockname())
                    s, _ = ls.accept()
                    c.sendall(b"POST / HTTP/1.1\r\nContent-Length: " +
                              str(len(body)).encode() + b"\r\n\r\n" + body)
                    proxy.handle_request(s, 0)
                    c.close()
                with open(state) as f:
                    return json.load(f)

            after = associate("198.18.102.77", 200)
            self.assertEqual(seen[-1], {"eipalloc-a": {"eni-2": "198.18.102.77"}})
            self.assertEqual(after, {"eipalloc-a": {"eni-2": "198.18.102.77"}})
            after = associate("198.18.102.88", 400)
            self.assertEqual(seen[-1], {"eipalloc-a": {"eni-2": "198.18.102.88"}})
            self.assertEqual(after, {"eipalloc-a": {"eni-2": "198.18.102.77"}},
                             "a refused association leaves the record as it was")

    def test_error_replies_are_ec2s(self):
        from hanatlab import ec2proxy
        import xml.etree.ElementTree as ET
        for code, status in (("RequestLimitExceeded", 503), ("InternalError", 500),
                             ("Unavailable", 503)):
            st, data = ec2proxy.error_reply(code, "rid")
            head, _, body = data.partition(b"\r\n\r\n")
            self.assertEqual(st, status)
            self.assertTrue(head.startswith(f"HTTP/1.1 {status} ".encode()), head)
            self.assertIn(f"Content-Length: {len(body)}".encode(), head)
            root = ET.fromstring(body)
            self.assertEqual(root.find("Errors/Error/Code").text, code)
            self.assertEqual(root.find("RequestID").text, "rid")


class SeedLayoutTest(unittest.TestCase):
    def test_initial_nats_follow_hanatds_allocation(self):
        from hanatlab import seed
        n1, n2 = {"name": "nat1", "instance_id": "i-b"}, {"name": "nat2", "instance_id": "i-a"}
        # Tables in id order dealt to members in instance-id order (allocation.cc).
        got = seed.initial_nats(["rtb-2", "rtb-1", "rtb-3"], [n1, n2])
        self.assertEqual({t: n["name"] for t, n in got.items()},
                         {"rtb-1": "nat2", "rtb-2": "nat1", "rtb-3": "nat2"})
        self.assertEqual(seed.initial_nats(["rtb-1"], [n1])["rtb-1"]["name"], "nat1")

    def test_private_subnets_stay_in_the_lab_range(self):
        from hanatlab import seed
        self.assertEqual(seed.private_cidr(1, 0), "198.18.1.0/24")
        self.assertEqual(seed.private_cidr(2, 3), "198.18.32.0/24")

    def test_tables_need_hosts(self):
        from hanatlab import Lab
        with self.assertRaisesRegex(ValueError, "tables_per_zone"):
            Lab(tables_per_zone=2, hosts_per_zone=1)


class ScenarioAccountingTest(unittest.TestCase):
    """What the scenarios count (route writes at the EC2 proxy, route flips from the fabric
    log) and how the benchmark summarises and judges it."""

    class FakeLab:
        desc = {"hosts": [{"name": "a1"}, {"name": "b1"}]}

        def __init__(self, proxy_log, fabric_log):
            self.proxy_log, self.fabric_log = proxy_log, fabric_log

        def ec2_fault_log(self, since_ns=None):
            return [r for r in self.proxy_log if since_ns is None or r["t_ns"] >= since_ns]

        def fabric_events(self):
            return self.fabric_log

    def test_route_writes_count_only_answered_writes_in_the_window(self):
        from hanatlab import scenarios
        log = [{"t_ns": 5, "action": "ReplaceRoute", "mode": None, "status": 200},   # before
               {"t_ns": 10, "action": "DescribeRouteTables", "mode": None, "status": 200},
               {"t_ns": 11, "action": "ReplaceRoute", "mode": None, "status": 200},
               {"t_ns": 12, "action": "ReplaceRoute", "mode": "throttle", "status": 503},
               {"t_ns": 13, "action": None, "mode": "unavailable", "status": "reset"},
               {"t_ns": 14, "action": "CreateRoute", "mode": None, "status": 200},
               {"t_ns": 99, "action": "ReplaceRoute", "mode": None, "status": 200}]  # after
        lab = self.FakeLab(log, [])
        self.assertEqual(scenarios.route_write_counts(lab, 10, 50), (2, 3))

    def test_route_flips_per_host_and_flip_flop(self):
        from hanatlab import scenarios
        ev = [{"t_ms": 1, "host": "a1", "from": None, "to": "x", "nat": "nat1"},  # before
              {"t_ms": 10, "host": "a1", "from": "x", "to": "y", "nat": "nat2"},
              {"t_ms": 11, "host": "b1", "error": "ip failed", "to": "x", "failed": True},
              {"t_ms": 12, "host": "a1", "from": "y", "to": "x", "nat": "nat1"},
              {"t_ms": 13, "error": "EC2 hung"}]
        flips = scenarios.route_flips(self.FakeLab([], ev), 5, 50)
        self.assertEqual(flips, {"a1": ["nat2", "nat1"], "b1": []})
        # A take-over and one give-back is within DESIGN's bound; a third change is not.
        self.assertFalse(scenarios.is_flip_flop(flips))
        self.assertTrue(scenarios.is_flip_flop({"a1": ["nat2", "nat1", "nat2"]}))

    def test_summary_median_max_no_failover_and_errors(self):
        from hanatlab import scenarios
        base = {"scenario": "link_cut", "controller": "c", "route_writes": 1,
                "flips": {"a1": ["nat2"], "b1": []}, "no_failover": False}
        runs = [dict(base, outage_ms=v) for v in (300, 500, 400)]
        runs.append(dict(base, outage_ms=9000, no_failover=True, route_writes=0,
                         flips={"a1": ["nat2", "nat1", "nat2"], "b1": []}))
        runs.append({"scenario": "link_cut", "controller": "c", "error": "boom"})
        s = scenarios.summarize(runs)[("link_cut", "c")]
        self.assertEqual((s["n"], s["errors"], s["median_ms"], s["max_ms"], s["no_failover"],
                          s["writes_max"], s["flips_max"], s["flip_flops"]),
                         (4, 1, 450, 9000, 1, 1, 3, 1))

    def test_bench_targets_met_and_missed(self):
        import importlib.util
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench",
                            "failover", "run.py")
        spec = importlib.util.spec_from_file_location("failover_run", path)
        run = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(run)
        runs = []
        for c, lc, gr in (("hanat-default", 800, 20), ("hanat-fast", 400, 20),
                          ("keepalived", 3000, 3000)):
            for scen, v in (("link_cut", lc), ("graceful", gr)):
                runs.append({"scenario": scen, "controller": c, "outage_ms": v,
                             "route_writes": 1, "flips": {"a1": ["nat2"]},
                             "no_failover": False})
        text, s = run.table(runs, ["link_cut", "graceful"], list(run.CONTROLLERS))
        self.assertIn("| link_cut | hanat-default | 1 | 800 | 800 | 0 | 1/1 | 1 (0) | 0.27 |", text)
        t = "\n".join(run.targets(s))
        self.assertIn("link_cut, hanat-default: median 800 ms (target <= 1000 ms): met", t)
        self.assertIn("link_cut, hanat-fast: median 400 ms (target <= 350 ms): MISSED", t)
        self.assertIn("link_cut, hanat-default: 3.8x shorter than keepalived (target >= 4x): "
                      "MISSED", t)
        self.assertIn("link_cut, hanat-fast: 7.5x shorter than keepalived (target >= 4x): met", t)


if __name__ == "__main__":
    unittest.main()
