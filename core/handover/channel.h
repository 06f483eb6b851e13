// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// The member channel on the loop: the taking member runs a ChannelServer, the leaving member
// connects with a ChannelClient and sends its flows (codec.h has the frames).
//
// Port: a port of its own (`[handover] channel_port`), not the agent port: the agent port
// answers each connection with one line and closes, and peers probe it every interval; a
// long-lived binary stream there would make every agent probe parse a protocol it does not
// need, and a slow channel peer could delay the health answer that failover depends on.
//
// Admission: a connection is accepted only from a current member's private address (the
// daemon's Admit function answers with the member's id); anything else is closed at once
// and counted. The peer's hello must name the same group and that member's id. With a
// pre-shared key both ends must have one and every frame after the hellos is MACed.
//
// The server keeps one FlowTable per sending member; a member that goes DOWN is forgotten
// (drop_member): its flows are lost anyway, as without the channel.
//
// Stateful failover's replication (issue #21) uses the same channel: a member streams Replica
// frames (codec.h, ReplicaBatch) to the member that would take its tables. The server keeps
// none of it: each decoded batch goes to the OnReplica callback (set_on_replica()), whose
// owner keeps the replicas (in memory only, with their timeouts). A member may hold two
// connections to this server at once — its replication stream and a handover's — so "one
// connection per member" is per kind: a session's kind is fixed by its first frame after the
// hello (Replica, or Flows/Destroyed/End), and only then does it replace an older session of
// the same member and kind.
// Failback runs the other way round: the home member about to reclaim its tables from the
// member serving them connects to that member's server as a client and sends one Reclaim
// frame (ChannelClient::send_reclaim); the server hands it to OnReclaim and closes the
// connection. The member serving the tables then becomes the leaving side for them: it
// connects back to the home member's server and sends its flows as in any planned handover.
// Asked over the channel, not by the agent check, so that the flows start moving at once
// (not up to a probe interval later) and the request is admitted and MACed like the flows.

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "core/handover/codec.h"
#include "core/handover/flow_table.h"
#include "core/uv/accept_budget.h"
#include "core/uv/uv.h"

namespace hanat::handover {

struct Identity {
  std::string group;
  std::string member;  // this member's instance id
  std::optional<std::string> psk;
};

// What changed in a member's table with one frame (or a drop).
struct FlowDelta {
  bool replaced = false;  // everything held before was dropped first
  bool complete = false;  // the frame ended a snapshot (acknowledged)
  std::vector<Flow> added;
  std::vector<Flow> removed;
};

struct ServerCounters {
  uint64_t accepted = 0;
  uint64_t rejected_address = 0;  // not a member's address
  uint64_t rejected_hello = 0;    // wrong group/member/version/psk setting, bad MAC
  uint64_t closed_bounds = 0;     // over a frame, rate or buffer bound
  uint64_t flows_received = 0;
  uint64_t replica_frames = 0;  // Replica frames handed to OnReplica
  uint64_t replica_upserts = 0;
  uint64_t replica_destroys = 0;
};

class ChannelServer {
 public:
  // The member id whose private address is `addr` (host byte order); nullopt: not a member.
  using Admit = std::function<std::optional<std::string>(uint32_t addr)>;
  using OnFlows =
      std::function<void(const std::string& member, const FlowTable&, const FlowDelta&)>;
  // A refused connection or peer, for the daemon's rate-limited debug log.
  using OnReject = std::function<void(uint32_t addr, const std::string& why)>;
  // One decoded Replica frame of `member` (the admitted sender), in the order sent. Runs
  // inside the session's read callback: it must not destroy the server.
  using OnReplica = std::function<void(const std::string& member, const ReplicaBatch&)>;

  static constexpr size_t kMaxConnections = 32;
  static constexpr std::chrono::milliseconds kHelloTimeout{2000};

  ChannelServer(uv::Loop& loop, Identity self, FlowTable::Limits limits, Admit admit,
                OnFlows on_flows, OnReject on_reject = {});
  ~ChannelServer();
  ChannelServer(const ChannelServer&) = delete;
  ChannelServer& operator=(const ChannelServer&) = delete;

  // Where Replica frames go; without it they are counted and dropped.
  void set_on_replica(OnReplica cb) { on_replica_ = std::move(cb); }
  // A member asks for the flows of `tables` (failback). Optional.
  using OnReclaim =
      std::function<void(const std::string& member, const std::vector<std::string>& tables)>;
  void set_on_reclaim(OnReclaim cb) { on_reclaim_ = std::move(cb); }

  // Binds and listens (port 0 picks one; see port()). The error names the address.
  [[nodiscard]] std::error_code listen(const sockaddr_in& addr, std::string* error = nullptr);
  [[nodiscard]] uint16_t port() const { return port_; }

  // Forgets `member`'s flows (it went DOWN or left) and closes its connection.
  void drop_member(const std::string& member);
  // Flows held per member.
  [[nodiscard]] std::map<std::string, size_t> held() const;
  [[nodiscard]] const FlowTable* table(const std::string& member) const;
  [[nodiscard]] const ServerCounters& counters() const { return counters_; }
  [[nodiscard]] size_t connections() const { return sessions_.size(); }

 private:
  struct Session;
  void accept_one();
  void on_data(Session& s, std::string_view data);
  bool on_frame(Session& s, Frame&& f);  // false: the session was closed
  void close(uint64_t id, const std::string& why, bool rejected_hello);
  // Fixes `s`'s kind by its first frame after the hello and closes an older session of the
  // same member and kind (a reconnect replaces it).
  void settle_kind(Session& s, bool replica);
  // Starts a new one-second rate window for `s` when the last one is over (true).
  bool now_window(Session& s);
  void tick();
  FlowTable& table_for(const std::string& member);

  uv::Loop& loop_;
  Identity self_;
  FlowTable::Limits limits_;
  Admit admit_;
  OnFlows on_flows_;
  OnReject on_reject_;
  OnReplica on_replica_;
  OnReclaim on_reclaim_;
  uv::Tcp listener_;
  uv::AcceptBudget accepts_;
  uv::Timer tick_;
  uv::DeferredDelete graveyard_;
  uint16_t port_ = 0;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Session>> sessions_;
  std::map<std::string, FlowTable> tables_;
  ServerCounters counters_;
};

struct ClientCounters {
  uint64_t flows_sent = 0;
  uint64_t destroyed_sent = 0;
  uint64_t frames_sent = 0;
  uint64_t replica_frames_sent = 0;
  uint64_t bytes_sent = 0;  // frames after the hello handed to the socket (headers, MACs)
};

class ChannelClient {
 public:
  struct Callbacks {
    std::function<void()> on_ready;                         // hellos exchanged
    std::function<void(uint32_t held)> on_ack;              // a complete snapshot was taken
    std::function<void(const std::string& why)> on_closed;  // not called on destruction
  };
  // Bytes queued for writing beyond which the taker evidently does not read: close.
  static constexpr size_t kMaxQueuedBytes = 8 * 1024 * 1024;

  ChannelClient(uv::Loop& loop, Identity self, Callbacks cb);
  ~ChannelClient();
  ChannelClient(const ChannelClient&) = delete;
  ChannelClient& operator=(const ChannelClient&) = delete;

  // Connects to the taker's channel; `source` (optional) binds the local end (the member's
  // private address, which the taker admits).
  [[nodiscard]] std::error_code connect(const sockaddr_in& server,
                                        const std::optional<sockaddr_in>& source = std::nullopt);
  // Queued until the hellos are exchanged. A snapshot (`complete`) is acknowledged.
  void send_flows(const std::vector<Flow>& flows, bool replace, bool complete);
  void send_destroyed(const std::vector<Flow>& flows);
  void send_end();
  // One Replica frame (stateful failover); queued until the hellos are exchanged.
  void send_replica(const ReplicaBatch& b);
  // Bytes handed to the socket and not yet written: a sender that must not outrun the
  // receiver (the replication stream) holds back while this is high.
  [[nodiscard]] size_t backlog() const;
  // Failback: asks the server's member for its flows of `tables` (at most kMaxReclaimTables;
  // the server closes the connection once it has the frame).
  void send_reclaim(const std::vector<std::string>& tables);
  [[nodiscard]] bool ready() const { return ready_; }
  [[nodiscard]] bool open() const { return tcp_ != nullptr; }
  [[nodiscard]] const ClientCounters& counters() const { return counters_; }

 private:
  void on_data(std::string_view data);
  void queue(Frame f);
  void flush();
  void fail(const std::string& why);

  uv::Loop& loop_;
  Identity self_;
  Callbacks cb_;
  std::unique_ptr<uv::Tcp> tcp_;
  uv::DeferredDelete graveyard_;
  Nonce nonce_{};
  std::optional<MacKey> send_key_;
  uint64_t send_seq_ = 0;
  Decoder decoder_;
  bool ready_ = false;
  std::vector<Frame> pending_;
  ClientCounters counters_;
};

}  // namespace hanat::handover
