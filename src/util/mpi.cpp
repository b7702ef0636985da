#include "util/mpi.h"
#include "util/error.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

#ifdef AUTOPREC_WITH_MPI
#include <mpi.h>
#endif

namespace autoprec::mpi {
namespace {
bool g_active = false;
bool g_rank_lost = false;
int g_rank = 0;
int g_size = 1;
}  // namespace

#ifdef AUTOPREC_WITH_MPI

bool init_if_launched(int* argc, char*** argv) {
  // Open MPI (OMPI_COMM_WORLD_SIZE), PMIx launchers (PMIX_RANK) and MPICH/Hydra (PMI_RANK).
  if (!std::getenv("OMPI_COMM_WORLD_SIZE") && !std::getenv("PMIX_RANK") && !std::getenv("PMI_RANK")) return false;
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  if (recovery_enabled()) MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  g_active = true;
  return true;
}

void finalize() {
  if (!g_active) return;
  g_active = false;
  if (!g_rank_lost) MPI_Finalize();
}

void abort_job(int code) {
  if (g_active) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

void send(int to, int tag, const std::string& message) {
  MPI_Send(message.data(), static_cast<int>(message.size()), MPI_CHAR, to, tag, MPI_COMM_WORLD);
}

namespace {
std::optional<std::string> receive(int from, int tag, int* source, double timeout_s = -1) {
  MPI_Status status;
  int flag = 0;
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    MPI_Iprobe(from, tag, MPI_COMM_WORLD, &flag, &status);
    if (flag) break;
    if (timeout_s >= 0 && std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > timeout_s) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  int count = 0;
  MPI_Get_count(&status, MPI_CHAR, &count);
  std::string message(static_cast<size_t>(count), '\0');
  MPI_Recv(message.data(), count, MPI_CHAR, status.MPI_SOURCE, status.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  if (source) *source = status.MPI_SOURCE;
  return message;
}
}  // namespace

std::string recv(int from, int tag) { return *receive(from, tag, nullptr); }
std::string recv_from_any(int tag, int* source) { return *receive(MPI_ANY_SOURCE, tag, source); }
std::optional<std::string> recv_from_any_within(int tag, int* source, double timeout_s) {
  return receive(MPI_ANY_SOURCE, tag, source, std::max(0.0, timeout_s));
}

std::string broadcast(const std::string& message) {
  // Point to point from rank 0, so that the waiting ranks poll instead of spinning.
  constexpr int kBroadcastTag = 1;
  if (g_rank == 0) {
    for (int r = 1; r < g_size; ++r) send(r, kBroadcastTag, message);
    return message;
  }
  return recv(0, kBroadcastTag);
}

#else

bool init_if_launched(int*, char***) { return false; }
void finalize() {}
void abort_job(int code) { std::exit(code); }
void send(int, int, const std::string&) { throw InternalError("mpi::send without MPI"); }
std::string recv(int, int) { throw InternalError("mpi::recv without MPI"); }
std::string recv_from_any(int, int*) { throw InternalError("mpi::recv_from_any without MPI"); }
std::optional<std::string> recv_from_any_within(int, int*, double) {
  throw InternalError("mpi::recv_from_any_within without MPI");
}
std::string broadcast(const std::string& message) { return message; }

#endif

int launched_ranks() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"}) {
    if (const char* v = std::getenv(name)) return std::max(1, std::atoi(v));
  }
  return 1;
}

bool recovery_enabled() {
  const char* v = std::getenv("OMPI_MCA_orte_enable_recovery");
  return v && (std::string(v) == "1" || std::string(v) == "true");
}

void mark_rank_lost() { g_rank_lost = true; }
bool rank_lost() { return g_rank_lost; }
bool active() { return g_active; }
int rank() { return g_rank; }
int size() { return g_size; }
bool is_worker() { return g_active && g_rank > 0; }

}  // namespace autoprec::mpi
