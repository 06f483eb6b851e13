// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/status/status_text.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <map>
#include <string>

namespace hanat::status {

namespace {

std::string str(const json_t* o, const char* key) {
  const json_t* v = json_object_get(o, key);
  return json_is_string(v) ? json_string_value(v) : "";
}

long long num(const json_t* o, const char* key) {
  const json_t* v = json_object_get(o, key);
  return json_is_integer(v) ? static_cast<long long>(json_integer_value(v)) : 0;
}

bool has_int(const json_t* o, const char* key) {
  return json_is_integer(json_object_get(o, key));
}

const char* bool_word(const json_t* o, const char* key, const char* yes, const char* no) {
  return json_is_true(json_object_get(o, key)) ? yes : no;
}

// printf into a std::string (the lines here are short; long values are appended as
// strings, never through the format).
template <class... A>
std::string fmt(const char* f, A... a) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), f, a...);
  return buf;
}

// The "elastic IPs:" lines (failover.move_eip): each zone's EIP and where it is.
void print_eips(std::string& out, const json_t* n, const char* indent) {
  const json_t* eips = json_object_get(n, "eips");
  if (!json_is_object(eips)) return;
  out += "elastic IPs:\n";
  size_t i;
  const json_t* e;
  json_array_foreach(json_object_get(eips, "zones"), i, e) {
    out += std::string(indent) + fmt("%-12s %-26s %-15s ", str(e, "zone").c_str(),
                                     str(e, "allocation_id").c_str(), str(e, "public_ip").c_str());
    if (json_is_true(json_object_get(e, "here"))) {
      out += "on this host, " + str(e, "private_ip") +
             (json_is_true(json_object_get(e, "home")) ? " (primary)" : " (secondary)");
    } else if (!str(e, "network_interface_id").empty()) {
      out += "on " + str(e, "network_interface_id") + " " + str(e, "private_ip");
    } else {
      out += "not associated";
    }
    if (json_is_true(json_object_get(e, "in_flight"))) out += ", move in flight";
    // [failover] stateful: the address a takeover of the zone would continue its flows on.
    if (!str(e, "reserved_ip").empty()) out += ", " + str(e, "reserved_ip") + " reserved here";
    if (!str(e, "last_error").empty()) out += ", last error: " + str(e, "last_error");
    out += "\n";
  }
  json_array_foreach(json_object_get(eips, "problems"), i, e) {
    out += std::string(indent) + "ERROR: " + (json_is_string(e) ? json_string_value(e) : "") + "\n";
  }
}

// The connection-keeping handover's taking side: the member channel and each sender's
// steering. Nothing is printed while there is nothing to say (no channel, nothing steered).
void print_handover(std::string& out, const json_t* n) {
  const json_t* h = json_object_get(n, "handover");
  if (!json_is_object(h)) return;
  const json_t* ch = json_object_get(h, "channel");
  const json_t* steering = json_object_get(h, "steering");
  const bool steered = json_is_array(steering) && json_array_size(steering) > 0;
  const json_t* sending = json_object_get(h, "sending");
  const bool sent = json_is_array(sending) && json_array_size(sending) > 0;
  if (!json_is_object(ch) && !steered && !sent && str(h, "error").empty()) return;
  std::string first = "handover:    ";
  const std::string more = "             ";
  if (json_is_object(ch)) {
    out += first +
           fmt("channel port %lld, %lld connections, %lld accepted, %lld refused (not a member), "
               "%lld refused (hello), %lld closed at bounds, %lld flows received\n",
               num(ch, "port"), num(ch, "connections"), num(ch, "accepted"),
               num(ch, "rejected_address"), num(ch, "rejected_hello"), num(ch, "closed_bounds"),
               num(ch, "flows_received"));
    first = more;
  }
  size_t i;
  const json_t* p;
  json_array_foreach(steering, i, p) {
    out += first + "steering " + str(p, "member") + ": ";
    if (json_is_true(json_object_get(p, "installed"))) {
      out += fmt("%lld flows, mark 0x%08llx, table %lld, rule priority %lld", num(p, "flows"),
                 num(p, "mark"), num(p, "route_table"), num(p, "rule_priority"));
      if (json_is_true(json_object_get(p, "catch_unknown_tcp"))) out += ", catches unknown TCP";
    } else {
      out += "not installed";
    }
    if (num(p, "errors") > 0) out += fmt(", %lld errors", num(p, "errors"));
    out += "\n";
    first = more;
  }
  // The leaving side: the peers this host handed tables to, and the flows it still keeps.
  json_array_foreach(sending, i, p) {
    out += first + "sending to " + str(p, "member") + ": " + str(p, "phase") +
           fmt(", %lld flows left", num(p, "flows_left"));
    if (num(p, "writes_held") > 0) out += fmt(", %lld route writes held", num(p, "writes_held"));
    if (!str(p, "ended").empty()) out += " (" + str(p, "ended") + ")";
    if (!str(p, "problem").empty()) out += "; " + str(p, "problem");
    out += "\n";
    first = more;
  }
  if (!str(h, "error").empty()) out += first + "ERROR: " + str(h, "error") + "\n";
}

// Stateful failover's replication: the members this host streams its flows to, and the
// streams it receives. Nothing is printed while it is off.
void print_replication(std::string& out, const json_t* n) {
  const json_t* r = json_object_get(n, "replication");
  if (!json_is_object(r) || !json_is_true(json_object_get(r, "enabled"))) return;
  std::string first = "replication: ";
  const std::string more = "             ";
  const json_t* targets = json_object_get(r, "targets");
  const json_t* received = json_object_get(r, "received");
  if (json_array_size(targets) == 0) {
    out += first + "no target (no other member would take this member's tables)\n";
    first = more;
  }
  size_t i;
  const json_t* t;
  json_array_foreach(targets, i, t) {
    out += first + "to " + str(t, "member") + ": " +
           (json_is_true(json_object_get(t, "connected")) ? "connected" : "not connected") +
           fmt(", %lld flows in resyncs, %lld events (%lld/s), %lld resyncs, %lld dropped",
               num(t, "flows_sent"), num(t, "events_sent"), num(t, "events_per_s"),
               num(t, "resyncs"), num(t, "drops"));
    if (has_int(t, "last_resync_ms_ago"))
      out += fmt(", last resync %lld ms ago", num(t, "last_resync_ms_ago"));
    if (!str(t, "last_error").empty()) out += "; " + str(t, "last_error");
    out += "\n";
    first = more;
  }
  const char* key;
  const json_t* m;
  json_object_foreach(const_cast<json_t*>(received), key, m) {
    out += first + "from " + key +
           fmt(": %lld frames, %lld upserts, %lld destroys, %lld resyncs", num(m, "frames"),
               num(m, "upserts"), num(m, "destroys"), num(m, "resyncs")) +
           "\n";
    first = more;
  }
  if (!str(r, "error").empty()) out += first + "ERROR: " + str(r, "error") + "\n";
}

// Stateful failover's taking side: the flows each peer replicates here, a takeover under
// way, and the last one per member. Nothing is printed while stateful is off and nothing
// was taken.
void print_takeover(std::string& out, const json_t* n) {
  const json_t* t = json_object_get(n, "takeover");
  if (!json_is_object(t)) return;
  const json_t* replicas = json_object_get(t, "replicas");
  const json_t* running = json_object_get(t, "running");
  const json_t* last = json_object_get(t, "last");
  const bool any = (json_is_object(replicas) && json_object_size(replicas) > 0) ||
                   (json_is_array(running) && json_array_size(running) > 0) ||
                   (json_is_object(last) && json_object_size(last) > 0);
  if (!json_is_true(json_object_get(t, "stateful")) && !any) return;
  std::string first = "takeover:    ";
  const std::string more = "             ";
  out += first + fmt("stateful, %lld replicated flows held (at most %lld)\n",
                     num(t, "replicated_flows"), num(t, "max_flows"));
  first = more;
  const char* key;
  const json_t* v;
  json_object_foreach(const_cast<json_t*>(replicas), key, v) {
    out +=
        first + "from " + key +
        fmt(": %lld flows (%lld live), %lld resyncs%s, %lld refused\n", num(v, "flows"),
            num(v, "live"), num(v, "resyncs"),
            json_is_true(json_object_get(v, "resyncing")) ? ", resyncing" : "", num(v, "refused"));
  }
  size_t i;
  const json_t* p;
  json_array_foreach(running, i, p) {
    out += first + "taking " + str(p, "member") +
           fmt(": %lld of %lld flows installed, %lld collided, %lld failed, %lld route writes "
               "held\n",
               num(p, "installed"), num(p, "flows"), num(p, "collided"), num(p, "failed"),
               num(p, "writes_held"));
  }
  json_object_foreach(const_cast<json_t*>(last), key, v) {
    out += first + "took " + key +
           fmt(": %lld flows installed, %lld collided, %lld failed, %lld without an address, "
               "in %lld ms",
               num(v, "installed"), num(v, "collided"), num(v, "failed"), num(v, "unroutable"),
               num(v, "took_ms"));
    if (!str(v, "error").empty()) out += " (" + str(v, "error") + ")";
    out += "\n";
  }
}

void print_node(std::string& out, const json_t* n) {
  const json_t* self = json_object_get(n, "self");
  out += "phase:       " + str(n, "phase");
  if (!str(n, "phase_error").empty()) out += " — " + str(n, "phase_error");
  out += "\n";
  if (json_is_object(self) && !str(self, "instance_id").empty()) {
    out += "self:        " + str(self, "instance_id") + " in " + str(self, "zone") + ", ENI " +
           str(self, "eni_id") + ", " + str(self, "private_ip") + "\n";
    out += std::string("data plane:  nat ") + bool_word(self, "nat_ok", "ok", "FAILED") +
           ", egress " + str(self, "egress");
    if (!str(self, "forward").empty()) out += ", forwarding " + str(self, "forward");
    if (json_is_false(json_object_get(self, "own_link_up"))) {
      out += ", own link " + str(self, "own_link") + " DOWN";
    }
    if (!str(self, "nat_error").empty()) out += " (" + str(self, "nat_error") + ")";
    out += "\n";
    if (str(self, "forward") == "down") {
      out += "             forwarding stalled: " + str(self, "forward_detail");
      if (has_int(self, "forward_recheck_in_ms")) {
        out += "; offered back in " + human_duration(num(self, "forward_recheck_in_ms")) +
               " if no traffic arrives";
      }
      out += "\n";
    }
    if (const json_t* sd = json_object_get(self, "probe_send_delay_us"); json_is_object(sd)) {
      out += fmt("probe sends: late by p50 %.2f ms, p99 %.2f ms, max %.2f ms (last %lld)\n",
                 static_cast<double>(num(sd, "p50")) / 1000.0,
                 static_cast<double>(num(sd, "p99")) / 1000.0,
                 static_cast<double>(num(sd, "max")) / 1000.0, num(sd, "samples"));
    }
    // The Auto Scaling lifecycle state, as the instance metadata reports it, and what hanatd
    // did about it: an operator watching a scale-in sees why the routes left.
    if (!str(self, "lifecycle_state").empty()) {
      out += "lifecycle:   " + str(self, "lifecycle_state");
      if (json_is_true(json_object_get(self, "lifecycle_drained"))) out += ", routes handed over";
      if (!str(self, "lifecycle_hook").empty()) out += ", hook " + str(self, "lifecycle_hook");
      out += "\n";
    }
    if (!str(self, "floating_eni").empty()) {
      // The state names the ENI itself unless it is a bare word ("attached", "checking").
      std::string st = str(self, "floating_eni_state");
      out += "floating ENI: " +
             (st.find("eni-") == std::string::npos ? str(self, "floating_eni") + " " + st : st);
      if (has_int(self, "floating_eni_failures") && num(self, "floating_eni_failures") > 0) {
        out += " (" + std::to_string(num(self, "floating_eni_failures")) + " failed steps)";
      }
      out += "\n";
    }
  }
  if (!str(n, "state").empty()) {
    out += "state:       " + str(n, "state") + bool_word(n, "drained", " (drained)", "");
    if (has_int(n, "state_for_ms")) out += " for " + human_duration(num(n, "state_for_ms"));
    out += "\n";
  }
  const json_t* members = json_object_get(n, "members");
  if (json_array_size(members) > 0) {
    out += "members:\n";
    size_t i;
    const json_t* m;
    json_array_foreach(members, i, m) {
      std::string rtts;
      const char* k;
      const json_t* v;
      json_object_foreach(const_cast<json_t*>(json_object_get(m, "last_rtt_us")), k, v) {
        rtts += " " + std::string(k) +
                fmt("=%.2fms", static_cast<double>(json_integer_value(v)) / 1000.0);
      }
      std::string since =
          has_int(m, "for_ms") ? "for " + human_duration(num(m, "for_ms")) : std::string();
      out += fmt("  %-22s %-12s %-16s %-10s %-12s", str(m, "instance_id").c_str(),
                 str(m, "zone").c_str(), str(m, "address").c_str(), str(m, "health").c_str(),
                 since.c_str());
      out += bool_word(m, "self", " (this host)", "");
      if (!str(m, "note").empty()) out += " [" + str(m, "note") + "]";
      if (!str(m, "warning").empty()) out += " [WARNING: " + str(m, "warning") + "]";
      out += rtts + "\n";
    }
  }
  print_eips(out, n, "  ");
  print_handover(out, n);
  print_replication(out, n);
  print_takeover(out, n);
  // Recovery (DESIGN rule 8): the configured action, the last one taken, self-suspicion.
  const json_t* rec = json_object_get(n, "recovery");
  if (json_is_object(rec) &&
      (str(rec, "action") != "none" || json_is_object(json_object_get(rec, "last")))) {
    out += "recovery:    " + str(rec, "action");
    const json_t* last = json_object_get(rec, "last");
    if (json_is_object(last)) {
      out += " (last: " + str(last, "action") + " of " + str(last, "target") + ", " +
             str(last, "result");
      if (has_int(last, "ago_ms")) out += ", " + human_duration(num(last, "ago_ms")) + " ago";
      out += ")";
    }
    if (json_is_true(json_object_get(rec, "suspect"))) {
      out += json_is_true(json_object_get(rec, "self_confirmed"))
                 ? " [every peer silent at once; own egress check confirms this host]"
                 : " [every peer silent at once: suspecting this host, fencing nobody]";
    }
    out += "\n";
  }
  const json_t* tables = json_object_get(n, "tables");
  if (json_array_size(tables) > 0) {
    out += "route tables:\n";
    size_t i;
    const json_t* t;
    json_array_foreach(tables, i, t) {
      size_t j;
      const json_t* r;
      json_array_foreach(json_object_get(t, "routes"), j, r) {
        std::string extra;
        if (json_is_true(json_object_get(r, "in_flight"))) extra += " [write in flight]";
        if (has_int(t, "hold_down_ms"))
          extra += " [hold-down " + human_duration(num(t, "hold_down_ms")) + "]";
        if (!str(r, "last_error").empty()) extra += " [last error: " + str(r, "last_error") + "]";
        if (!str(r, "status").empty()) extra += " [" + str(r, "status") + "]";
        if (json_is_true(json_object_get(t, "adopted"))) extra += " [adopted]";
        out += fmt("  %-24s %-12s %-12s current %-24s allocated %-24s writes %lld",
                   str(t, "id").c_str(), str(t, "zone").c_str(), str(r, "destination").c_str(),
                   str(r, "current").c_str(), str(t, "allocated").c_str(), num(t, "writes"));
        out += extra + "\n";
      }
      const json_t* lw = json_object_get(t, "last_write");
      if (json_is_object(lw)) {
        out += "    last write: " + str(lw, "destination") + " -> " + str(lw, "target") + " " +
               str(lw, "outcome") + " at " + str(lw, "at");
        if (has_int(lw, "ago_ms")) out += " (" + human_duration(num(lw, "ago_ms")) + " ago)";
        out += "\n";
      }
    }
  }
  if (const json_t* missing = json_object_get(n, "missing"); json_is_object(missing)) {
    for (const char* key : {"members", "route_tables"}) {
      std::string ids;
      size_t i;
      const json_t* id;
      json_array_foreach(json_object_get(missing, key), i, id) {
        if (json_is_string(id))
          ids += (ids.empty() ? "" : ", ") + std::string(json_string_value(id));
      }
      if (!ids.empty()) out += std::string("missing ") + key + ": " + ids + " (not managed)\n";
    }
  }
  const json_t* c = json_object_get(n, "counters");
  if (json_is_object(c)) {
    out +=
        fmt("counters:    failovers %lld, route writes %lld, throttles %lld, drift repairs %lld, "
            "nat applies %lld, ec2 calls %lld\n",
            num(c, "failovers"), num(c, "route_writes"), num(c, "throttles"),
            num(c, "drift_repairs"), num(c, "nat_applies"), num(c, "ec2_calls_total"));
    // Flows forwarded without NAT (after a firewall reload, or before hanatd started) and
    // packets that left un-NATed: both zero on a healthy NAT.
    if (has_int(c, "unnatted_flows_purged")) {
      out += fmt("un-NATed:    %lld flows purged", num(c, "unnatted_flows_purged"));
      if (has_int(c, "unnatted_packets_leaked")) {
        out += fmt(", %lld packets left without NAT", num(c, "unnatted_packets_leaked"));
      }
      out += "\n";
    }
    // One line per action: "ReplaceRoute ok=3 RequestLimitExceeded=1".
    const char* action;
    const json_t* outcomes;
    bool first = true;
    json_object_foreach(const_cast<json_t*>(json_object_get(c, "ec2_calls_by_action")), action,
                        outcomes) {
      out += first ? "ec2 calls:   " : "             ";
      first = false;
      out += action;
      const char* k;
      const json_t* v;
      json_object_foreach(const_cast<json_t*>(outcomes), k, v) {
        out += " " + std::string(k) + "=" + std::to_string(json_integer_value(v));
      }
      out += "\n";
    }
  }
}

}  // namespace

std::string human_duration(std::int64_t ms) {
  if (ms < 0) ms = 0;
  if (ms < 1000) return fmt("%lldms", static_cast<long long>(ms));
  if (ms < 60000) return fmt("%.1fs", static_cast<double>(ms / 100) / 10.0);
  long long s = ms / 1000;
  if (s < 3600) return fmt("%lldm%02llds", s / 60, s % 60);
  if (s < 86400) return fmt("%lldh%02lldm", s / 3600, (s / 60) % 60);
  return fmt("%lldd%02lldh", s / 86400, (s / 3600) % 24);
}

std::string format_status(const json_t* st) {
  std::string out;
  out += "hanatd " + str(st, "version") + fmt(" (pid %lld), up ", num(st, "pid")) +
         human_duration(num(st, "uptime_ms")) + "\n";
  out += "group:       " + str(st, "group") + "\n";
  const json_t* cfg = json_object_get(st, "config");
  if (json_is_object(cfg)) {
    out += "config:      " + str(cfg, "path") +
           fmt(" (generation %lld, loaded ", num(cfg, "generation")) + str(cfg, "loaded_at") +
           ")\n";
    const json_t* rl = json_object_get(cfg, "last_reload");
    if (!json_is_true(json_object_get(rl, "attempted"))) {
      out += "last reload: none\n";
    } else if (json_is_true(json_object_get(rl, "ok"))) {
      out += "last reload: ok at " + str(rl, "at") + "\n";
    } else {
      out += "last reload: FAILED at " + str(rl, "at") +
             fmt(", still running generation %lld:\n", num(cfg, "generation"));
      std::string err = str(rl, "error");
      size_t start = 0;
      while (start <= err.size()) {
        size_t nl = err.find('\n', start);
        out += "  " + err.substr(start, nl - start) + "\n";
        if (nl == std::string::npos) break;
        start = nl + 1;
      }
    }
  }
  const json_t* m = json_object_get(st, "metrics");
  if (json_is_object(m)) {
    out += "metrics:     " + str(m, "textfile") +
           fmt(" every %s, %lld writes", human_duration(num(m, "interval_ms")).c_str(),
               num(m, "writes"));
    if (!str(m, "error").empty()) out += ", FAILING: " + str(m, "error");
    out += "\n";
  }
  const json_t* dm = json_object_get(st, "drain_mark");
  if (json_is_true(json_object_get(dm, "started_drained"))) {
    out += "drain mark:  " + str(dm, "path") + ": started drained (hanatctl undrain removes it)\n";
  }
  if (!str(dm, "error").empty()) {
    out += "drain mark:  FAILING: " + str(dm, "error") + " (a drain ends if hanatd restarts)\n";
  }
  const json_t* node = json_object_get(st, "node");
  if (json_is_object(node)) print_node(out, node);
  return out;
}

std::string iso8601_ms(std::int64_t unix_ms) {
  if (unix_ms < 0) unix_ms = 0;
  std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt("%s.%03dZ", buf, static_cast<int>(unix_ms % 1000));
}

namespace {

// "since 2026-12-02T20:50:01.123Z (12.3s ago)" from an object's *_unix_ms and age keys.
std::string since_text(const json_t* o, const char* at_key, const char* age_key) {
  std::string out;
  if (has_int(o, at_key)) out += "since " + iso8601_ms(num(o, at_key));
  if (has_int(o, age_key)) {
    out += (out.empty() ? "for " : " (") + human_duration(num(o, age_key)) +
           (out.empty() ? "" : " ago)");
  }
  return out;
}

const json_t* node_of(const json_t* reply) {
  const json_t* n = json_object_get(reply, "node");
  return json_is_object(n) ? n : nullptr;
}

}  // namespace

std::string format_peers(const json_t* reply) {
  const json_t* n = node_of(reply);
  const json_t* members = n != nullptr ? json_object_get(n, "members") : nullptr;
  if (json_array_size(members) == 0) return "no peers (the daemon is still starting)\n";
  std::string out;
  size_t i;
  const json_t* m;
  // This host first, on one line: its "health" is its own state.
  json_array_foreach(members, i, m) {
    if (!json_is_true(json_object_get(m, "self"))) continue;
    out += str(m, "instance_id") + " (this host) in " + str(m, "zone") + ": " + str(m, "health");
    if (json_is_true(json_object_get(n, "drained"))) out += " (drained)";
    if (std::string s = since_text(m, "since_unix_ms", "for_ms"); !s.empty()) out += " " + s;
    out += "\n";
  }
  bool any = false;
  json_array_foreach(members, i, m) {
    if (json_is_true(json_object_get(m, "self"))) continue;
    any = true;
    std::string health = str(m, "health");
    for (auto& ch : health) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    out += "\n" + str(m, "instance_id") + " in " + str(m, "zone");
    if (!str(m, "address").empty()) out += ", " + str(m, "address");
    if (!str(m, "note").empty()) out += " [" + str(m, "note") + "]";
    out += "\n  state:   " + health;
    if (std::string s = since_text(m, "since_unix_ms", "for_ms"); !s.empty()) out += " " + s;
    out += "\n";
    if (!str(m, "reason").empty()) {
      out += std::string("  ") + (health == "DOWN" ? "down:    " : "reason:  ") + str(m, "reason") +
             "\n";
    }
    const char* kind;
    const json_t* p;
    json_object_foreach(const_cast<json_t*>(json_object_get(m, "probes")), kind, p) {
      std::string label = std::string(kind) + ":";
      label.resize(std::max<size_t>(label.size(), 8), ' ');
      out += "  " + label + " ";
      if (json_is_true(json_object_get(p, "ok"))) {
        out += "ok";
      } else {
        out += "FAILED " + (str(p, "failure").empty() ? std::string("?") : str(p, "failure"));
      }
      if (!str(p, "detail").empty()) out += " (" + str(p, "detail") + ")";
      if (json_is_true(json_object_get(p, "discounted"))) out += " [not counted: own link down]";
      if (has_int(p, "ago_ms")) out += ", " + human_duration(num(p, "ago_ms")) + " ago";
      out += "\n";
    }
  }
  if (!any) out += "no peers in the group\n";
  return out;
}

std::string format_routes(const json_t* reply) {
  const json_t* n = node_of(reply);
  const json_t* tables = n != nullptr ? json_object_get(n, "tables") : nullptr;
  if (json_array_size(tables) == 0) return "no route tables (the daemon is still starting)\n";
  std::string out;
  size_t i;
  const json_t* t;
  json_array_foreach(tables, i, t) {
    std::string allocated = str(t, "allocated");
    if (!str(t, "allocated_member").empty() && str(t, "allocated_member") != allocated) {
      allocated += " (" + str(t, "allocated_member") + ")";
    }
    size_t j;
    const json_t* r;
    json_array_foreach(json_object_get(t, "routes"), j, r) {
      std::string current = str(r, "current");
      if (json_is_true(json_object_get(r, "here"))) current += " (this host)";
      out += fmt("%-24s %-12s %-18s ", str(t, "id").c_str(), str(t, "zone").c_str(),
                 str(r, "destination").c_str());
      out += "current " + current + ", allocated " + allocated;
      if (json_is_true(json_object_get(r, "foreign"))) {
        out += json_is_true(json_object_get(t, "adopted"))
                   ? ", FOREIGN (adopted: hanat writes it)"
                   : ", FOREIGN (never written; hanatctl adopt " + str(t, "id") + ")";
      }
      if (json_is_true(json_object_get(r, "in_flight"))) out += ", write in flight";
      if (has_int(t, "hold_down_ms"))
        out += ", hold-down " + human_duration(num(t, "hold_down_ms"));
      if (!str(r, "last_error").empty()) out += ", last error: " + str(r, "last_error");
      out += "\n";
    }
    const json_t* lw = json_object_get(t, "last_write");
    if (json_is_object(lw)) {
      out += "    last write: " + str(lw, "destination") + " -> " + str(lw, "target") + " " +
             str(lw, "outcome") + " at " + str(lw, "at");
      if (has_int(lw, "ago_ms")) out += " (" + human_duration(num(lw, "ago_ms")) + " ago)";
      out += "\n";
    } else {
      out += "    last write: none since hanatd started\n";
    }
  }
  print_eips(out, n, "");
  return out;
}

std::vector<std::string> tables_here(const json_t* reply) {
  std::vector<std::string> out;
  const json_t* n = node_of(reply);
  if (n == nullptr) return out;
  size_t i;
  const json_t* t;
  json_array_foreach(json_object_get(n, "tables"), i, t) {
    size_t j;
    const json_t* r;
    json_array_foreach(json_object_get(t, "routes"), j, r) {
      if (json_is_true(json_object_get(r, "here"))) {
        out.push_back(str(t, "id"));
        break;
      }
    }
  }
  return out;
}

bool drain_finished(const json_t* reply) {
  const json_t* n = node_of(reply);
  // The connections kept through the handover still pass through this host until they end
  // (or [handover] flow_drain): the drain is finished when they are gone too.
  const json_t* h = n != nullptr ? json_object_get(n, "handover") : nullptr;
  const bool flows_gone = !json_is_object(h) || !json_is_true(json_object_get(h, "draining"));
  return n != nullptr && str(n, "state") == "drained" && tables_here(reply).empty() && flows_gone;
}

std::string format_events(const json_t* reply) {
  const json_t* arr = json_object_get(reply, "events");
  if (!json_is_array(arr) || json_array_size(arr) == 0) return "no events yet\n";
  std::string out;
  size_t i = 0;
  const json_t* e = nullptr;
  json_array_foreach(arr, i, e) {
    const char* at = json_string_value(json_object_get(e, "at"));
    const char* level = json_string_value(json_object_get(e, "level"));
    const char* msg = json_string_value(json_object_get(e, "message"));
    std::string lv = level != nullptr ? level : "?";
    lv.resize(std::max<size_t>(lv.size(), 7), ' ');
    out +=
        std::string(at != nullptr ? at : "?") + " " + lv + " " + (msg != nullptr ? msg : "") + "\n";
  }
  return out;
}

}  // namespace hanat::status
