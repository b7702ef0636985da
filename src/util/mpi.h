// MPI when the process was started by mpirun, and nothing otherwise. The
// build enables MPI when CMake finds it (AUTOPREC_WITH_MPI); without it, or
// without mpirun, every process is rank 0 of 1 and nothing here does work.
//
// Messages are strings (JSON text) sent point to point; receives poll with a
// short sleep instead of spinning, so that an idle rank leaves its core to
// the ranks that compute (Open MPI's blocking receive spins).
#pragma once

#include <optional>
#include <string>

namespace autoprec::mpi {

// MPI_Init when launched under mpirun (its environment is set); call once,
// first thing in main. Returns true when MPI is active.
bool init_if_launched(int* argc, char*** argv);
// Ranks the launcher started (its environment; 1 when not under mpirun),
// whether or not this build has MPI.
int launched_ranks();
// MPI_Finalize when active; safe to call when not. After a rank of the job
// was lost (mark_rank_lost, here or on rank 0), the surviving ranks leave
// without MPI_Finalize: Open MPI 4.1's finalize waits on the dead rank now
// and then and hangs the job, while a rank that exits without it under
// --enable-recovery ends the job with rank 0's exit code.
void finalize();
// This job lost a rank: finalize() skips MPI_Finalize.
void mark_rank_lost();
bool rank_lost();
// Ends every rank of the job with `code` (MPI_Abort); plain exit when MPI is not active.
[[noreturn]] void abort_job(int code);

// True when mpirun was given --enable-recovery (Open MPI: the job outlives a
// rank that dies). MPI errors then return to the caller instead of aborting.
bool recovery_enabled();

bool active();
int rank();  // 0 when not active
int size();  // 1 when not active
bool is_worker();  // active and rank() > 0

// Point-to-point messages with a tag. recv_from_any returns the source rank.
void send(int to, int tag, const std::string& message);
std::string recv(int from, int tag);
std::string recv_from_any(int tag, int* source);
// Like recv_from_any, but gives up after `timeout_s` seconds (nullopt).
std::optional<std::string> recv_from_any_within(int tag, int* source, double timeout_s);
// Rank 0's `message` to every rank; the others pass anything and get rank 0's.
std::string broadcast(const std::string& message);

}  // namespace autoprec::mpi
