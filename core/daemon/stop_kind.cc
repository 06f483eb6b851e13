// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/stop_kind.h"

#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace hanat::daemon {
namespace {

constexpr const char* kSystemd = "org.freedesktop.systemd1";
// A stuck bus must not hold up the stop: systemd's own TimeoutStopSec (330 s in the unit,
// keep::stop_timeout()) is the outer bound, and the handover and its drain need it.
constexpr std::uint64_t kBusTimeoutUsec = 500 * 1000;

struct BusCloser {
  void operator()(sd_bus* b) const { sd_bus_flush_close_unref(b); }
};
struct MessageUnref {
  void operator()(sd_bus_message* m) const { sd_bus_message_unref(m); }
};
using Bus = std::unique_ptr<sd_bus, BusCloser>;
using Message = std::unique_ptr<sd_bus_message, MessageUnref>;

std::string describe(const char* what, const sd_bus_error& e, int r) {
  std::string s = what;
  s += ": ";
  s += e.message != nullptr ? e.message : std::strerror(-r);
  return s;
}

}  // namespace

bool job_type_is_restart(std::string_view job_type) {
  return job_type == "restart" || job_type == "try-restart";
}

std::string systemd_unit_job_type(std::string* why) {
  sd_bus* raw = nullptr;
  int r = sd_bus_open_system(&raw);
  if (r < 0) {
    *why = std::string("cannot connect to the system bus: ") + std::strerror(-r);
    return "";
  }
  Bus bus(raw);
  (void)sd_bus_set_method_call_timeout(bus.get(), kBusTimeoutUsec);

  sd_bus_error err = SD_BUS_ERROR_NULL;
  sd_bus_message* reply_raw = nullptr;
  r = sd_bus_call_method(bus.get(), kSystemd, "/org/freedesktop/systemd1",
                         "org.freedesktop.systemd1.Manager", "GetUnitByPID", &err, &reply_raw, "u",
                         static_cast<std::uint32_t>(getpid()));
  Message reply(reply_raw);
  if (r < 0) {
    *why = describe("GetUnitByPID", err, r);
    sd_bus_error_free(&err);
    return "";
  }
  const char* unit_path = nullptr;
  if ((r = sd_bus_message_read(reply.get(), "o", &unit_path)) < 0) {
    *why = std::string("GetUnitByPID reply: ") + std::strerror(-r);
    return "";
  }
  const std::string unit(unit_path);

  sd_bus_message* job_raw = nullptr;
  r = sd_bus_get_property(bus.get(), kSystemd, unit.c_str(), "org.freedesktop.systemd1.Unit", "Job",
                          &err, &job_raw, "(uo)");
  Message job(job_raw);
  if (r < 0) {
    *why = describe("Unit.Job", err, r);
    sd_bus_error_free(&err);
    return "";
  }
  std::uint32_t job_id = 0;
  const char* job_path = nullptr;
  if ((r = sd_bus_message_read(job.get(), "(uo)", &job_id, &job_path)) < 0) {
    *why = std::string("Unit.Job reply: ") + std::strerror(-r);
    return "";
  }
  if (job_id == 0) return "";  // no job: a signal from outside systemd (kill, a script)
  const std::string jpath(job_path);

  char* type = nullptr;
  r = sd_bus_get_property_string(bus.get(), kSystemd, jpath.c_str(), "org.freedesktop.systemd1.Job",
                                 "JobType", &err, &type);
  if (r < 0) {
    *why = describe("Job.JobType", err, r);
    sd_bus_error_free(&err);
    return "";
  }
  std::string out(type);
  free(type);  // NOLINT: sd-bus allocates the string with malloc
  return out;
}

}  // namespace hanat::daemon
